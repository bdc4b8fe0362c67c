import numpy as np
import pytest
import torch

from trading_assets.training.config import ModelConfig, TrainConfig
from trading_assets.training.models import build_model
from trading_assets.training.sequences import build_sequences
from trading_assets.training.trainer import TrainingError, baseline_losses, evaluate, select_device, train
from trading_assets_tests.training.test_sequences import _frame

CONFIG = TrainConfig(epochs=6, batch_size=64, patience=2, device="cpu")


def _fit(kind="lstm", config=CONFIG):
    data = build_sequences(_frame(n=900, seed=1), seq_len=12)
    torch.manual_seed(0)
    return train(build_model(5, ModelConfig(kind, hidden_size=8)), data, config), data


def test_reproducible_on_cpu():
    (_, a), _ = _fit()
    (_, b), _ = _fit()
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    assert a.test_loss == b.test_loss


def test_early_stopping_restores_the_best_checkpoint():
    (model, report), data = _fit(
        config=TrainConfig(epochs=30, batch_size=64, patience=2, device="cpu", learning_rate=3e-2)
    )
    vals = [h["val_loss"] for h in report.history]
    assert report.epochs_run == len(vals) < 30 and report.stop_reason == "early_stopping"  # stopped early on noise
    assert report.best_epoch == 1 + vals.index(min(vals)) and report.val_loss == min(vals)
    assert report.epochs_run - report.best_epoch == 2
    restored = evaluate(
        model, data, data.validation_ends, 256, report.target_mean, report.target_std, torch.device("cpu"), False
    )
    assert restored == pytest.approx(report.val_loss, rel=1e-6)
    assert next(model.parameters()).device.type == "cpu"
    assert report.samples_per_second > 0 and report.peak_gpu_memory_mb is None and report.device == "cpu"


def test_epoch_cap_is_reported_as_the_reason():
    (_, report), _ = _fit(config=TrainConfig(epochs=1, batch_size=64, patience=5, device="cpu"))
    assert report.epochs_run == 1 and report.stop_reason == "epoch_cap"


def test_linear_floor_is_closed_form_ridge_chosen_on_validation():
    """No SGD: the exact ridge solution, its penalty picked on validation, never worse there than the
    train-mean forecast (the heaviest penalty is that forecast)."""
    (model, report), data = _fit("linear")
    assert report.stop_reason == "closed_form" and report.epochs_run == 0 and report.history == []
    assert report.val_loss <= report.baselines["train_mean"]["val_loss"] * (1 + 1e-6)
    # the normal equations hold for the chosen penalty: refit each alpha by hand and find the same weights
    x = data.features[data.train_ends].double().numpy()
    y = ((data.labels[data.train_ends].double() - report.target_mean) / report.target_std).numpy()
    w = model.linear.weight.detach().double().numpy().ravel()
    xc, yc = x - x.mean(axis=0), y - y.mean()
    from trading_assets.training.trainer import RIDGE_ALPHAS

    solutions = [np.linalg.solve(xc.T @ xc + a * len(x) / 1e3 * np.eye(x.shape[1]), xc.T @ yc) for a in RIDGE_ALPHAS]
    assert min(np.abs(s - w).max() for s in solutions) < 1e-5
    (_, again), _ = _fit("linear")
    assert again.val_loss == report.val_loss  # deterministic


def test_baselines_reported():
    (_, report), data = _fit()
    expected_zero = float((data.labels[data.validation_ends].double() ** 2).mean())
    assert report.baselines["zero"]["val_loss"] == pytest.approx(expected_zero)
    assert set(report.baselines) == {"zero", "train_mean", "ar1"}
    assert baseline_losses(data)["ar1"]["test_loss"] > 0
    train_mean = float(data.labels[data.train_ends].double().mean())
    y = data.labels[data.validation_ends].double()
    assert report.baselines["train_mean"]["val_loss"] == pytest.approx(float(((y - train_mean) ** 2).mean()))


def test_device_selection_falls_back_to_cpu():
    if torch.cuda.is_available():
        assert select_device("auto").type == "cuda"
    else:
        assert select_device("auto") == torch.device("cpu")
        with pytest.raises(TrainingError, match="CUDA is not available"):
            select_device("cuda:0")


def test_out_of_memory_becomes_a_clear_error(monkeypatch):
    data = build_sequences(_frame(), seq_len=8)
    model = build_model(5, ModelConfig("gru", hidden_size=4))

    def explode(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(model, "forward", explode)
    with pytest.raises(TrainingError, match="CUDA out of memory on cpu .*reduce batch_size"):
        train(model, data, CONFIG)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (checked on the device machine)")
def test_cuda_bf16_training_leaves_the_gpu_clean():
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    (model, report), _ = _fit("bilstm", TrainConfig(epochs=2, batch_size=64, device="cuda", amp=True))
    assert report.device.startswith("cuda") and report.peak_gpu_memory_mb > 0
    assert next(model.parameters()).device.type == "cpu"
    assert torch.cuda.memory_allocated() == before
    assert torch.cuda.memory_reserved() == 0 or torch.cuda.memory_reserved() <= before
    assert torch.cuda.max_memory_allocated() == torch.cuda.memory_allocated()  # peak statistics reset
