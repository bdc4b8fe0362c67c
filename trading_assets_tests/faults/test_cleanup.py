"""What a kill -9 leaves behind is cleaned up by the next run: temporary Parquet files of a dead writer,
an MLflow run left RUNNING; and both instances have run monitoring on and retry only dead workers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from trading_assets.defs.instance import get_instance
from trading_assets.training.tracking import connect
from trading_assets_tests.defs.test_checks import run
from trading_assets_tests.defs.test_training import _run as train

ROOT = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_next_write_removes_temp_files_of_dead_writers(instance, data_dir):
    assert run(instance).success
    folder = data_dir / "assets" / "features" / "KRW-BTC"
    orphan = folder / f".5m.parquet.{_dead_pid()}.0123abcd.tmp"  # as a writer killed mid-write leaves it
    orphan.write_bytes(b"PAR1 half a file")
    assert run(instance).success
    assert not list((data_dir / "assets").rglob("*.tmp"))


def test_next_training_ends_killed_mlflow_runs_as_failed(instance, data_dir):
    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    client, experiment_id = connect(uri, "trading_assets")
    stale = client.create_run(
        experiment_id,
        tags={"partition_key": "KRW-ETH|15m", "dagster_asset": "trained_model", "dagster_run_id": "killed"},
    )
    walk_forward = client.create_run(
        experiment_id,
        tags={"partition_key": "KRW-ETH|15m", "dagster_asset": "predictions", "dagster_run_id": "killed"},
    )
    fold = client.create_run(experiment_id, tags={"mlflow.parentRunId": walk_forward.info.run_id, "fold": "0"})
    other = client.create_run(
        experiment_id, tags={"partition_key": "KRW-BTC|15m", "dagster_asset": "trained_model", "dagster_run_id": "x"}
    )
    assert train(instance).success
    client = MlflowClient(uri)
    assert client.get_run(stale.info.run_id).info.status == "FAILED"
    assert client.get_run(walk_forward.info.run_id).info.status == "FAILED"  # the predictions' runs too,
    assert client.get_run(fold.info.run_id).info.status == "FAILED"  # with their nested fold runs
    assert client.get_run(other.info.run_id).info.status == "RUNNING"  # another partition: not ours to end


def test_both_instances_monitor_runs_and_retry_only_dead_workers(data_dir, monkeypatch):
    production = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    instance = get_instance()
    try:
        for config in (production, yaml.safe_load((data_dir / "dagster_home" / "dagster.yaml").read_text())):
            assert config["run_monitoring"]["enabled"] is True
            assert config["run_retries"]["retry_on_asset_or_op_failure"] is False
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_runtime_seconds == 86400
        assert not instance.run_retries_retry_on_asset_or_op_failure
    finally:
        instance.dispose()


@pytest.mark.slow
def test_readme_single_partition_commands_run_as_written(data_dir, tmp_path):
    """The operator guide's `dagster asset materialize` recipe, verbatim, on a fresh data folder."""
    readme = (ROOT / "docs" / "operator.md").read_text()
    block = readme.split("export DAGSTER_HOME=$PWD/data/dagster_home\n", 1)[1].split("```", 1)[0]
    script = "set -e\nexport DAGSTER_HOME=$PWD/data/dagster_home\nmkdir -p $DAGSTER_HOME\n" + block
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TRADING_DATA_DIR": "data"}
    env.pop("DAGSTER_HOME", None)
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    for asset in ("raw_candles", "indicators", "features"):
        assert (tmp_path / "data" / "assets" / asset / "KRW-BTC" / "1m.parquet").exists()
