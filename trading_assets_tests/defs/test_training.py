"""trained_model end to end on the CPU with a real local MLflow store."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from trading_assets.defs import defs
from trading_assets.defs.partitions import partition_key
from trading_assets.features import TARGET
from trading_assets.splits import chronological_split
from trading_assets_tests.conftest import END

RUN_CONFIG = {
    "ops": {
        "raw_candles": {"config": {"days": 20.0, "end": END.isoformat()}},
        "trained_model": {"config": {"epochs": 3, "seq_len": 24, "hidden_size": 16, "model": "gru"}},
    }
}


def _run(instance, run_config=RUN_CONFIG, job="full_pipeline_job"):
    return defs.resolve_job_def(job).execute_in_process(
        partition_key=partition_key("KRW-ETH", "15m"), instance=instance, run_config=run_config, raise_on_error=False
    )


def test_trained_model_tracked_registered_and_loadable(instance, data_dir):
    result = _run(instance)
    assert result.success
    meta = {k: v.value for k, v in result.asset_materializations_for_node("trained_model")[0].metadata.items()}
    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    run = client.get_run(meta["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["symbol"] == "KRW-ETH" and run.data.tags["timeframe"] == "15m"
    assert run.data.tags["partition_key"] == "KRW-ETH|15m" and run.data.tags["dagster_run_id"] == result.run_id
    assert run.data.params["model.kind"] == "gru" and run.data.params["seq_len"] == "24"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == list(range(1, meta["epochs_run"] + 1))
    for key in (
        "train_loss",
        "val_loss",
        "test_loss",
        "best_epoch",
        "samples_per_second",
        "wall_seconds",
        "seconds_per_epoch",
        "baseline_zero_val_loss",
        "baseline_last_return_test_loss",
    ):
        assert f"final_{key}" in run.data.metrics
    assert run.data.metrics["final_val_loss"] == pytest.approx(meta["val_loss"])
    assert run.data.metrics["final_val_loss"] == min(m.value for m in history)
    assert run.inputs.dataset_inputs[0].dataset.digest == meta["features_sha256"][:32]

    version = client.get_model_version("trading_assets-KRW-ETH-15m", meta["registered_version"])
    assert version.run_id == run.info.run_id

    feats = pd.read_parquet(data_dir / "assets" / "features" / "KRW-ETH" / "15m.parquet")
    mlflow.set_registry_uri(uri)
    predictions = mlflow.pyfunc.load_model("models:/trading_assets-KRW-ETH-15m/latest").predict(feats)
    assert len(predictions) == len(feats) and predictions["prediction"].iloc[:23].isna().all()
    assert np.isfinite(predictions["prediction"].iloc[23:]).all()

    split = chronological_split(len(feats), 0.7, 0.15, 64)
    assert split.train.stop + 64 <= split.validation.start and split.validation.stop + 64 <= split.test.start
    assert feats.attrs["scaler"]["fit_end"] == feats.index[split.train.stop - 1].isoformat()

    backtest = meta["test_backtest"]  # one trade per test sample (horizon 1, seq_len 24)
    assert backtest["trades"] == len(split.test) - 24 + 1
    assert run.data.metrics["backtest_total_log_return"] == pytest.approx(backtest["total_log_return"])
    assert 0 <= backtest["hit_rate"] <= 1 and backtest["max_drawdown"] >= 0

    [check] = [e for e in result.get_asset_check_evaluations() if e.asset_key.to_user_string() == "trained_model"]
    assert check.check_name == "beats_baseline" and check.severity.value == "WARN"
    check_meta = {k: v.value for k, v in check.metadata.items()}
    assert check.passed == (check_meta["val_loss"] < check_meta["best_baseline_val_loss"])
    assert meta["val_loss"] == check_meta["val_loss"] and TARGET not in run.data.params


def test_unreachable_mlflow_fails_before_training(instance, monkeypatch):
    assert _run(instance, {"ops": {"raw_candles": RUN_CONFIG["ops"]["raw_candles"]}}, job="market_data_job").success
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = _run(instance, {"ops": {"trained_model": RUN_CONFIG["ops"]["trained_model"]}}, job="training_job")
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "MlflowUnavailableError" in error and "http://127.0.0.1:9 is unreachable" in error
    logs = [e.message for e in result.all_events if e.message]
    assert not any("epoch 1" in m for m in logs)


def test_scaler_fit_past_the_train_span_is_refused(instance):
    config = {
        "ops": {
            **RUN_CONFIG["ops"],
            "features": {
                "config": {
                    "fit_start": (END - pd.Timedelta(days=20)).isoformat(),
                    "fit_end": (END - pd.Timedelta(days=1)).isoformat(),
                }
            },
        }
    }
    result = _run(instance, config)
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "KRW-ETH 15m" in error and "leaked into the scaling" in error
