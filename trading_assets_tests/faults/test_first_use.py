"""A fresh install survives its first parallel use: the Dagster instance and the MLflow store are created
once, under a lock, whoever comes first; a half-created MLflow store is repaired or named with its fix."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from trading_assets.training.tracking import MlflowUnavailableError, connect, repair_half_created
from trading_assets_tests.conftest import END

PARALLEL = 4


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "TRADING_DB_URL", "MLFLOW_TRACKING_URI")}
    return {**env, "TRADING_DATA_DIR": str(data_dir), "PYTHONWARNINGS": "ignore"}


def _start(args: list[str], data_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], env=_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(processes: list[subprocess.Popen]) -> list[tuple[int, str]]:
    return [(p.wait(timeout=300), p.stdout.read()) for p in processes]


MATERIALIZE = [
    *("-m", "trading_assets.app.cli", "materialize", "--assets", "data", "--timeframes", "1d"),
    *("--days", "30", "--end", END.isoformat()),
]


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(3))  # a race: three tries
def test_four_first_runs_at_once_on_a_fresh_folder_all_succeed(tmp_path, trial):
    data_dir = tmp_path / "data"  # brand new: no instance, no store yet
    symbols = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL"]
    runs = _finish([_start([*MATERIALIZE, "--symbols", symbol], data_dir) for symbol in symbols])
    assert [code for code, _ in runs] == [0] * PARALLEL, "\n\n".join(out[-2500:] for _, out in runs)
    # the folder stays usable: a later command works and sees every symbol
    code, out = _finish([_start(["-m", "trading_assets.app.cli", "symbols", "list"], data_dir)])[0]
    assert code == 0 and set(out.split()) >= set(symbols), out


CONNECT = (
    "import sys; from trading_assets.training.tracking import connect;"
    "client, experiment = connect(sys.argv[1], 'trading_assets');"
    "client.create_run(experiment); print('ok', experiment)"
)


@pytest.mark.parametrize("trial", range(3))
def test_four_processes_creating_the_mlflow_store_at_once_all_succeed(tmp_path, trial):
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    runs = _finish([_start(["-c", CONNECT, uri], tmp_path / "data") for _ in range(PARALLEL)])
    assert [code for code, _ in runs] == [0] * PARALLEL, "\n\n".join(out[-2500:] for _, out in runs)
    experiments = {out.split()[-1] for _, out in runs}
    assert len(experiments) == 1  # one experiment, created once
    client, experiment = connect(uri, "trading_assets")
    assert len(client.search_runs([experiment])) == PARALLEL


def test_a_store_cut_short_before_its_schema_is_created_again(tmp_path):
    path = tmp_path / "mlflow.db"
    path.write_bytes(b"")  # the disk filled up while MLflow created its database
    client, experiment = connect(f"sqlite:///{path}", "trading_assets")
    assert client.get_experiment(experiment).name == "trading_assets"


def test_a_leftover_migration_table_is_dropped_or_named_with_its_repair(tmp_path):
    path = tmp_path / "mlflow.db"
    client, experiment = connect(f"sqlite:///{path}", "trading_assets")
    client.create_run(experiment)
    with sqlite3.connect(path) as db:
        db.execute("create table _alembic_tmp_runs (run_uuid text)")  # an interrupted batch migration
    repair_half_created(path)
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
    assert "_alembic_tmp_runs" not in tables and "runs" in tables
    assert len(connect(f"sqlite:///{path}", "trading_assets")[0].search_runs([experiment])) == 1
    with sqlite3.connect(path) as db:  # worse: the original table is gone, its rows only in the leftover
        db.execute("alter table tags rename to _alembic_tmp_tags")
    with pytest.raises(MlflowUnavailableError, match=r"table 'tags' is missing.*ALTER TABLE \"_alembic_tmp_tags\""):
        connect(f"sqlite:///{path}", "trading_assets")


@pytest.mark.slow
def test_a_killed_command_is_cleaned_up_by_the_next_one_without_a_daemon(tmp_path):
    """kill -9 during training: the next command (any) marks the run failed and ends its MLflow runs FAILED."""
    import signal
    import time

    from dagster import DagsterInstance, DagsterRunStatus

    data_dir = tmp_path / "data"
    args = ["-m", "trading_assets.app.cli", "materialize", "--symbols", "KRW-BTC", "--timeframes", "5m"]
    worker = _start([*args, "--days", "8", "--end", END.isoformat()], data_dir)
    database = data_dir / "mlflow" / "mlflow.db"
    deadline = time.monotonic() + 240
    running = 0
    while time.monotonic() < deadline and worker.poll() is None and not running:
        time.sleep(0.5)
        if database.exists():
            with sqlite3.connect(database) as db:
                try:
                    running = db.execute("select count(*) from runs where status = 'RUNNING'").fetchone()[0]
                except sqlite3.OperationalError:  # tables still being created
                    running = 0
    assert running, worker.communicate()[0][-3000:]
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    code, out = _finish([_start(["-m", "trading_assets.app.cli", "symbols", "list"], data_dir)])[0]
    assert code == 0, out
    with DagsterInstance.from_config(str(data_dir / "dagster_home")) as instance:
        statuses = {r.status for r in instance.get_runs()}
    assert statuses == {DagsterRunStatus.FAILURE}
    with sqlite3.connect(database) as db:
        assert db.execute("select count(*) from runs where status = 'RUNNING'").fetchone()[0] == 0
        assert db.execute("select count(*) from runs where status = 'FAILED'").fetchone()[0] >= 1
