import pytest
import torch

from trading_assets.training.config import MODELS, PRESETS, ModelConfig, TrainConfig, build_spec
from trading_assets.training.models import build_model


@pytest.mark.parametrize("kind", ["bilstm", "lstm", "gru", "transformer"])
def test_forward_and_backward(kind):
    torch.manual_seed(0)
    model = build_model(7, ModelConfig(kind, hidden_size=16, num_layers=2, num_heads=4))
    x = torch.randn(5, 12, 7, requires_grad=True)
    out = model(x)
    assert out.shape == (5,) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_transformer_is_causal():
    torch.manual_seed(0)
    model = build_model(3, ModelConfig("transformer", hidden_size=8, num_layers=1, num_heads=2, dropout=0.0)).eval()
    x = torch.randn(1, 10, 3)
    with torch.no_grad():
        full = model.encoder(
            model.embed(x) + model.position[:10],
            mask=torch.nn.Transformer.generate_square_subsequent_mask(10),
            is_causal=True,
        )
        prefix = model.encoder(
            model.embed(x[:, :6]) + model.position[:6],
            mask=torch.nn.Transformer.generate_square_subsequent_mask(6),
            is_causal=True,
        )
    torch.testing.assert_close(full[:, :6], prefix, rtol=1e-5, atol=1e-5)


def test_research_preset_is_one_switch_away_and_explicit_values_win():
    spec = build_spec({}, preset="research")
    assert (spec.model.kind, spec.model.hidden_size, spec.model.num_layers) == ("bilstm", 1024, 4)
    assert (spec.train.learning_rate, spec.train.batch_size) == (5e-4, 128)
    mine = build_spec({"hidden_size": 64, "batch_size": 32, "seed": 7}, preset="research")
    assert (mine.model.hidden_size, mine.train.batch_size, mine.train.seed) == (64, 32, 7)
    assert mine.model.num_layers == 4 and mine.train.learning_rate == 5e-4
    assert set(PRESETS["research"]) <= {f for c in (ModelConfig, TrainConfig) for f in c.__dataclass_fields__}


def test_every_registered_model_builds_and_the_linear_floor_reads_the_last_row():
    x = torch.randn(4, 12, 7)
    for kind in MODELS:
        model = build_model(7, ModelConfig(kind, hidden_size=16, num_heads=4))
        if kind == "lightgbm":  # trees exist only once fitted
            with pytest.raises(RuntimeError, match="not fitted"):
                model(x)
            continue
        assert model(x).shape == (4,)
    linear = build_model(7, ModelConfig("linear"))
    changed = x.clone()
    changed[:, :-1] = 0
    torch.testing.assert_close(linear(x), linear(changed))
    with pytest.raises(ValueError, match="unknown model .mlp.; expected one of"):
        build_model(3, ModelConfig("mlp"))  # type: ignore[arg-type]


def test_a_bundle_is_sized_before_anything_is_allocated(tmp_path):
    """A 600-byte bundle.json once made the loader allocate 512 MiB: its shape is checked first."""
    import json
    import time

    from trading_assets.training.bundle import CONFIG, WEIGHTS, ModelBundle

    (tmp_path / WEIGHTS).write_bytes(bytes(100))
    config = {
        "format_version": 1,
        "model_config": {"kind": "bilstm", "hidden_size": 8192, "num_layers": 8, "dropout": 0.1, "num_heads": 4},
        "feature_columns": [f"f{i}" for i in range(28)],
        "scaler": {},
        "seq_len": 32,
        "horizon": 1,
        "target_mean": 0.0,
        "target_std": 1.0,
    }
    (tmp_path / CONFIG).write_text(json.dumps(config))
    started = time.perf_counter()
    with pytest.raises(ValueError, match="parameters cannot come from a 100-byte weights file"):
        ModelBundle.load(tmp_path)
    assert time.perf_counter() - started < 5  # sized on the meta device, nothing allocated
    config["model_config"]["hidden_size"] = 10**7
    (tmp_path / CONFIG).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="hidden_size 10000000 not in 1..16384"):
        ModelBundle.load(tmp_path)
    (tmp_path / CONFIG).write_text(" " * (2 << 20))
    with pytest.raises(ValueError, match="more than the 1,048,576 a bundle may hold"):
        ModelBundle.load(tmp_path)


def test_timesnet_learns_a_lagged_pattern_and_serves_each_window_alone():
    """TimesNet reads inside its window (a label 4 rows back), and in eval mode a window's forecast does not
    depend on its batchmates: its periods come from the training spectrum kept in the weights."""
    import numpy as np

    from trading_assets.features import TARGET
    from trading_assets.training.sequences import build_sequences
    from trading_assets.training.trainer import train
    from trading_assets_tests.training.test_sequences import _frame

    frame = _frame(n=1500, seed=2)
    frame[TARGET] = (np.roll(frame["f0"].to_numpy(), 4) * 1e-3).astype("float32")
    data = build_sequences(frame, seq_len=12)
    torch.manual_seed(0)
    config = TrainConfig(epochs=8, batch_size=64, patience=3, device="cpu", learning_rate=3e-3)
    model, report = train(build_model(5, ModelConfig("timesnet", hidden_size=8)), data, config)
    assert report.val_loss < 0.3 * report.baselines["zero"]["val_loss"]
    windows = data.windows()[:6]
    with torch.no_grad():
        together = model(windows)
        alone = torch.cat([model(windows[i : i + 1]) for i in range(6)])
        torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
        again = build_model(5, ModelConfig("timesnet", hidden_size=8))
        again.load_state_dict(model.state_dict())  # the kept spectrum travels with the weights
        again.eval()
        torch.testing.assert_close(again(windows), together)
        # under bf16 autocast, as trained on a GPU (amp): finite, and close to float32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(windows)
        assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
        torch.testing.assert_close(low.float(), together, rtol=0.1, atol=0.05)


def test_lightgbm_fits_itself_and_its_bundle_holds_lightgbms_text_model(tmp_path):
    """The tabular baseline: boosted with early stopping on the validation span, saved as LightGBM's own text
    model (no pickle), served from the reloaded bundle exactly; a bundle over other features is refused."""
    import json

    import numpy as np

    from trading_assets.features import TARGET
    from trading_assets.training.bundle import CONFIG, WEIGHTS, ModelBundle
    from trading_assets.training.config import ModelSpec, SequenceConfig
    from trading_assets.training.pipeline import fit_model
    from trading_assets_tests.training.test_sequences import _frame

    frame = _frame(n=3000, seed=2)
    noise = np.random.default_rng(0).standard_normal(3000)
    frame[TARGET] = (np.tanh(frame["f1"].to_numpy()) * 1e-3 + 2e-4 * noise).astype("float32")  # nonlinear
    spec = ModelSpec(ModelConfig("lightgbm"), TrainConfig(device="cpu"), SequenceConfig(seq_len=12))
    fit = fit_model(frame, spec)
    assert fit.report.stop_reason == "early_stopping" and fit.report.epochs_run == 0
    assert fit.report.val_loss < 0.3 * fit.report.baselines["zero"]["val_loss"]
    again = fit_model(frame, spec)
    assert again.report.val_loss == fit.report.val_loss  # deterministic
    path = fit.bundle.save(tmp_path / "bundle")
    trees = (path / "lightgbm.txt").read_text()
    assert trees.startswith("tree\n") and "feature_names=" in trees  # LightGBM's own text format
    assert torch.load(path / WEIGHTS, weights_only=True) == {}  # nothing else: no pickled booster
    loaded = ModelBundle.load(path)
    np.testing.assert_array_equal(loaded.predict(frame), fit.bundle.predict(frame))
    config = json.loads((path / CONFIG).read_text())
    config["feature_columns"] = config["feature_columns"][:-1]
    (path / CONFIG).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="trees over 5 features, expected 4"):
        ModelBundle.load(path)
