"""trained_model and the research loop end to end on the CPU with a real local MLflow store."""

import json
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from trading_assets.defs import defs
from trading_assets.features import TARGET
from trading_assets.timeframes import DEFAULT_SPAN_DAYS, TIMEFRAMES, get_timeframe
from trading_assets.training.config import build_spec
from trading_assets.training.sequences import required_rows
from trading_assets_tests.conftest import END
from trading_assets_tests.defs.pipeline import KEY, MODEL, RESEARCH, RUN_CONFIG, run
from trading_assets_tests.defs.pipeline import checks_of as _checks
from trading_assets_tests.defs.pipeline import meta as _meta


def _run(instance, run_config=RUN_CONFIG, job="full_pipeline_job", key=KEY):
    return run(instance, run_config, job, key)


def test_trained_model_tracked_registered_and_servable(pipeline):
    data_dir, result, _ = pipeline
    assert result.success
    meta = _meta(result, "trained_model")
    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    run = client.get_run(meta["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["partition_key"] == "KRW-ETH|15m" and run.data.tags["dagster_run_id"] == result.run_id
    assert run.data.params["model.kind"] == "gru" and run.data.params["seq_len"] == "24"
    assert run.data.params["split.gap"] == "25" and run.data.params["execution.fee_bp"] == "5.0"  # 24 + 1 + 1 - 1
    assert run.data.params["execution.fill"] == "open" and run.data.params["execution.side"] == "long_only"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == list(range(1, meta["epochs_run"] + 1))
    for key in ("final_val_loss", "final_baseline_ar1_test_loss", "test_dm_pvalue", "test_backtest_net_log_return"):
        assert key in run.data.metrics
    assert run.inputs.dataset_inputs[0].dataset.digest == meta["features_sha256"][:32]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"training_curves.png", "report.json"} <= artifacts
    assert meta["training_curves"].startswith("![training curves](data:image/png;base64,")

    # the registered model: no pickle, carries its scaler, serves the features frame
    version = client.get_model_version("trading_assets-KRW-ETH-15m", meta["registered_version"])
    assert version.run_id == run.info.run_id
    model_dir = data_dir / "mlflow" / "served"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    local = mlflow.artifacts.download_artifacts(
        f"models:/trading_assets-KRW-ETH-15m/{version.version}", dst_path=str(model_dir)
    )
    files = {p.name for p in model_dir.rglob("*")}
    assert "python_model.pkl" not in files and {"weights.pt", "bundle.json", "serving.py"} <= files
    bundle = json.loads(next(model_dir.rglob("bundle.json")).read_text())
    feats = pd.read_parquet(data_dir / "assets" / "features" / "KRW-ETH" / "15m.parquet")
    assert bundle["scaler"]["fit_start"] == feats.index[0].isoformat()
    assert bundle["scaler"]["fit_end"] == meta["scaler_fit_end"]
    assert "scaler" not in feats.attrs  # the features asset stays unscaled
    predictions = mlflow.pyfunc.load_model(local).predict(feats)
    assert len(predictions) == len(feats) and predictions["prediction"].iloc[:23].isna().all()
    assert np.isfinite(predictions["prediction"].iloc[23:]).all()
    requirements = (next(model_dir.rglob("requirements.txt"))).read_text()
    assert "torch==" in requirements and "mlflow-skinny==" in requirements and "trading" not in requirements

    # identical to what the asset computed on the held-out test span
    test = pd.read_parquet(client.download_artifacts(run.info.run_id, "test_predictions.parquet", str(model_dir)))
    np.testing.assert_allclose(predictions["prediction"].reindex(test.index), test["prediction"], rtol=1e-5, atol=1e-9)

    [check] = _checks(result, "trained_model").values()
    check_meta = {k: v.value for k, v in check.metadata.items()}
    assert check.check_name == "beats_baseline" and check.severity.value == "WARN"
    assert check.passed == (check_meta["test_mse"] < check_meta["best_baseline_test_mse"])
    assert check_meta["best_baseline"] in {"zero", "train_mean", "ar1"} and TARGET not in run.data.params


def test_walk_forward_predictions_are_out_of_sample(pipeline):
    data_dir, result, _ = pipeline
    preds = pd.read_parquet(data_dir / "assets" / "predictions" / "KRW-ETH" / "15m.parquet")
    feats = pd.read_parquet(data_dir / "assets" / "features" / "KRW-ETH" / "15m.parquet")
    assert set(preds["model"]) == {"gru", "linear"} and set(preds["fold"]) == {1, 2, 3, 4}
    assert set(preds[preds["holdout"]]["fold"]) == {4}  # the last day: the hold-out
    for (model, fold), rows in preds.groupby(["model", "fold"]):
        assert (rows["train_end"] < rows["validation_start"]).all() and (
            rows["validation_end"] < rows.index.min()
        ).all()
        assert rows.index.min().floor("D") == rows.index.min()  # a fold starts on the calendar grid
        assert rows["stop_reason"].iloc[0] == ("closed_form" if model == "linear" else "epoch_cap")  # 3 epochs here
        gap = feats.index.get_loc(rows.index.min()) - feats.index.get_loc(rows["train_end"].iloc[0])
        assert gap > 24  # purge gap + validation span in between
        assert rows["mlflow_run_id"].nunique() == 1
    labels = feats[TARGET].reindex(preds.index)
    np.testing.assert_allclose(preds["label"], labels, rtol=1e-6)  # horizon 1: the trade's one-bar return
    research = preds.attrs["research"]
    assert research["seq_len"] == 24 and research["fold_grid"]["period"] == "D" and research["holdout_start"]
    assert preds.attrs["execution"]["fee_bp"] == 5.0 and preds.attrs["execution"]["fill"] == "open"
    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(uri)
    parent = _meta(result, "predictions")["mlflow_parent_run_id"]
    child = client.get_run(preds["mlflow_run_id"].iloc[0])
    assert child.data.tags["mlflow.parentRunId"] == parent and child.info.status == "FINISHED"


def test_evaluation_checks_and_leaderboard(pipeline):
    data_dir, result, board = pipeline
    table = pd.read_parquet(data_dir / "assets" / "evaluation" / "KRW-ETH" / "15m.parquet")
    overall = table[table["scope"] == "overall"].set_index("model")
    assert set(overall.index) == {"gru", "linear"}
    assert (overall["delay_bars"] == 1).all() and (overall["fee_bp"] == 5).all() and (overall["fill"] == "open").all()
    for column in ("oos_r2_zero", "oos_r2_ar1", "rank_ic", "rank_ic_t", "period_rank_icir", "dm_pvalue_adj"):
        assert column in overall.columns
    assert (overall["backtest_sharpe_se"] > 0).all() and (overall["backtest_days"] > 2).all()
    holdout = table[table["scope"] == "holdout"]
    assert len(holdout) == 1 and holdout["chosen"].all()  # the chosen model, evaluated once on the hold-out
    meta = _meta(result, "evaluation")
    assert meta["equity_curves"].startswith("![equity curves](data:image/png;base64,")
    assert meta["chosen_model"] == holdout["model"].iloc[0] and meta["execution"]["fee_bp"] == 5.0
    assert "fee 5 + half-spread 1 + slippage 1 bp per side" in meta["overall"]
    checks = _checks(result, "evaluation")
    assert set(checks) == {"edge_significant", "survives_costs"}
    assert checks["edge_significant"].passed == (overall["dm_pvalue_adj"] <= 0.05).any()
    assert checks["survives_costs"].passed  # the planted edge survives the default costs
    assert all(c.severity.value == "WARN" for c in checks.values())
    assert board.success
    lb = pd.read_parquet(data_dir / "assets" / "leaderboard.parquet")
    assert list(lb["rank"]) == [1, 2] and lb["survives"].iloc[0]
    board_meta = _meta(board, "leaderboard")
    assert board_meta["verdict"].startswith(("1 of 2 entries", "2 of 2 entries"))
    assert board_meta["leaderboard"].splitlines()[0] == f"**{board_meta['verdict']}**"
    header = board_meta["leaderboard"].splitlines()[2]
    assert [c.strip() for c in header.strip("|").split("|")][:4] == ["rank", "symbol", "timeframe", "model"]


def test_training_is_reproducible_in_fresh_processes(pipeline):
    """Same seed and data in two new interpreters give identical weights and metrics (no pre-seeding)."""
    data_dir, _, _ = pipeline
    script = (
        "import sys, pandas as pd, torch;"
        "from trading_assets.training.config import build_spec;"
        "from trading_assets.training.pipeline import fit_model;"
        f"f = pd.read_parquet(r'{data_dir / 'assets' / 'features' / 'KRW-ETH' / '15m.parquet'}');"
        "r = fit_model(f, build_spec({'epochs': 2, 'seq_len': 16, 'hidden_size': 8, 'device': 'cpu'}));"
        "w = sum(float(p.double().sum()) for p in r.bundle.network.parameters());"
        "print(repr((r.report.val_loss, r.report.test_loss, w)))"
    )
    outputs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert outputs[0] == outputs[1] and outputs[0].strip()


def test_too_short_span_names_partition_rows_and_need(instance):
    config = {"ops": {**RUN_CONFIG["ops"], "raw_candles": {"config": {"days": 1.0, "end": END.isoformat()}}}}
    result = _run(instance, config)
    assert not result.success
    errors = {e.step_key: e.event_specific_data.error.to_string() for e in result.get_step_failure_events()}
    assert "KRW-ETH 15m" in errors["trained_model"] and "feature rows are too few to train" in errors["trained_model"]
    assert "needs at least" in errors["trained_model"]
    assert "KRW-ETH 15m" in errors["predictions"] and "too few for a test fold" in errors["predictions"]


@pytest.mark.parametrize("timeframe", TIMEFRAMES)
def test_readme_span_advice_is_enough_for_every_timeframe(timeframe):
    """The default span per timeframe (README) fits the split, 4 folds on the calendar grid and the hold-out,
    wherever in the period it ends."""
    from trading_assets.execution import Execution
    from trading_assets.splits import FOLD_PERIODS, FoldGrid, time_folds

    spec = build_spec({"horizon": 1, "entry_lag": Execution().entry_lag})
    tf = get_timeframe(timeframe)
    for end in (pd.Timestamp("2026-10-01 00:00", tz="UTC"), pd.Timestamp("2026-10-17 13:00", tz="UTC")):
        index = pd.date_range(
            end=end, periods=int(DEFAULT_SPAN_DAYS[timeframe] * 1440 / tf.minutes) - 21, freq=tf.delta
        )
        assert len(index) >= required_rows(32, 1, spec.split.train_fraction, spec.split.validation_fraction, spec.gap)
        folds = time_folds(index, FoldGrid(FOLD_PERIODS[timeframe]), spec.gap)
        assert len(folds) >= 4 and folds[-1].holdout, (timeframe, end, len(folds))


def test_unreachable_mlflow_fails_before_training(instance, monkeypatch):
    assert _run(instance, {"ops": {"raw_candles": RUN_CONFIG["ops"]["raw_candles"]}}, job="market_data_job").success
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = _run(instance, {"ops": {"trained_model": RUN_CONFIG["ops"]["trained_model"]}}, job="training_job")
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "MlflowUnavailableError" in error and "http://127.0.0.1:9 is unreachable" in error
    assert not any("epoch 1" in (e.message or "") for e in result.all_events)


@pytest.mark.slow
def test_registered_model_serves_from_a_clean_virtualenv(pipeline, tmp_path):
    """A venv with only the requirements MLflow recorded loads the model and predicts the same values."""
    data_dir, result, _ = pipeline
    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.artifacts.download_artifacts(
        "models:/trading_assets-KRW-ETH-15m/latest", dst_path=str(tmp_path / "m")
    )
    requirements = mlflow.pyfunc.get_model_dependencies(model)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", requirements],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    feats = pd.read_parquet(data_dir / "assets" / "features" / "KRW-ETH" / "15m.parquet")
    feats.to_json(tmp_path / "features.json", orient="split", date_unit="ns", double_precision=15)
    script = (
        "import sys, pandas as pd, mlflow;"
        "f = pd.read_json(sys.argv[1], orient='split', precise_float=True).astype('float32');"
        "mlflow.pyfunc.load_model(sys.argv[2]).predict(f).to_json(sys.argv[3], orient='split', double_precision=15)"
    )
    out = tmp_path / "predictions.json"
    served = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script, str(tmp_path / "features.json"), model, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    frozen = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True)
    assert "trading" not in frozen.stdout.lower() and "dagster" not in frozen.stdout.lower()
    clean = pd.read_json(out, orient="split", precise_float=True)["prediction"].to_numpy()
    here = mlflow.pyfunc.load_model(model).predict(feats)["prediction"].to_numpy()
    np.testing.assert_allclose(clean, here, rtol=1e-6, equal_nan=True)


def toy_model(n_features, config):
    """A registered toy architecture: the mean of the window's last row through one weight."""
    import torch

    class Toy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x[:, -1].mean(dim=-1) * self.weight

    return Toy()


def test_a_registered_toy_model_is_walk_forward_evaluated(instance, data_dir, monkeypatch):
    from trading_assets.training.config import MODELS, ModelEntry

    monkeypatch.setitem(MODELS, "toy", ModelEntry("toy", "trading_assets_tests.defs.test_training:toy_model"))
    assert _run(instance, {"ops": {"raw_candles": RUN_CONFIG["ops"]["raw_candles"]}}, job="market_data_job").success
    config = {"ops": {"predictions": {"config": {**MODEL, **RESEARCH, "epochs": 1, "max_folds": 2, "models": ["toy"]}}}}
    result = _run(instance, config, job="research_job")
    assert result.success
    table = pd.read_parquet(data_dir / "assets" / "evaluation" / "KRW-ETH" / "15m.parquet")
    assert set(table["model"]) == {"toy"} and list(table["scope"]) == ["fold 1", "fold 2", "overall", "holdout"]
    bad = _run(instance, {"ops": {"predictions": {"config": {"models": ["nope"]}}}}, job="research_job")
    error = bad.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "KRW-ETH 15m: unknown models ['nope']" in error and "linear" in error


def test_an_execution_that_cannot_hold_is_refused_before_any_training(instance):
    from dagster import DagsterResourceFunctionError

    negative = {**RUN_CONFIG, "resources": {"execution": {"config": {"fee_bp": -1.0}}}}
    with pytest.raises(DagsterResourceFunctionError) as refused:  # at resource setup: before any step
        defs.resolve_job_def("full_pipeline_job").execute_in_process(
            partition_key=KEY, instance=instance, run_config=negative
        )
    assert "fee_bp" in str(refused.value.__cause__) and "greater than or equal to 0" in str(refused.value.__cause__)
    assert _run(instance, {"ops": {"raw_candles": RUN_CONFIG["ops"]["raw_candles"]}}, job="market_data_job").success
    too_long = {"ops": {"predictions": RUN_CONFIG["ops"]["predictions"]}, "resources": {"execution": {"config": {}}}}
    too_long["resources"]["execution"]["config"]["horizon"] = 500  # a daily fold of 15m has at most 96 bars
    result = _run(instance, too_long, job="research_job")
    errors = [e.event_specific_data.error.to_string() for e in result.get_step_failure_events()]
    # the label of the stored features is the default fill's, so only the horizon is wrong: refused by name
    assert any("execution.horizon = 500" in e and "allowed horizon <= 92" in e for e in errors), errors
    assert not any("fold 1" in (e.message or "") for e in result.all_events)  # nothing was trained
    refill = {**too_long, "resources": {"execution": {"config": {"fill": "close"}}}}
    error = _run(instance, refill, job="research_job").get_step_failure_events()[0].event_specific_data.error
    assert "KRW-ETH 15m: the label upstream was built for the execution {'fill': 'open'" in error.to_string()


def test_a_registered_model_loads_without_running_its_stored_code(pipeline, tmp_path):
    """The trusted loader checks every stored file against the digests recorded at registration and runs
    nothing from the artifact store; an edited serving.py (which mlflow.pyfunc would import) is refused."""
    from trading_assets.training.tracking import TamperedModelError, load_registered_bundle

    data_dir, result, _ = pipeline
    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    meta = _meta(result, "trained_model")
    name, version = meta["registered_model"], meta["registered_version"]
    bundle = load_registered_bundle(name, version, uri, tmp_path / "a")
    feats = pd.read_parquet(data_dir / "assets" / "features" / "KRW-ETH" / "15m.parquet")
    served = mlflow.pyfunc.load_model(f"models:/{name}/{version}").predict(feats)["prediction"]
    np.testing.assert_allclose(bundle.predict(feats).to_numpy(), served.to_numpy(), rtol=1e-6, equal_nan=True)
    [stored] = [p for p in (data_dir / "mlflow" / "artifacts").rglob("serving.py") if "code" not in p.parts]
    original = stored.read_bytes()
    marker = tmp_path / "ran"
    try:
        stored.write_bytes(original + f"\nopen({str(marker)!r}, 'w').write('x')\n".encode())
        with pytest.raises(TamperedModelError, match="serving.py"):
            load_registered_bundle(name, version, uri, tmp_path / "b")
        assert not marker.exists()  # nothing stored was imported
    finally:
        stored.write_bytes(original)
