"""The Dagster instance the command line works on: ``$DAGSTER_HOME``'s, or the embedded SQLite one.

The embedded instance (``<data dir>/dagster_home``, created on first use) is for demos and research on one
machine; production sets ``DAGSTER_HOME`` to the directory of ./dagster.yaml (PostgreSQL).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from dagster import DagsterInstance

from trading_assets.defs.partitions import add_symbols
from trading_assets.processes import exclusive
from trading_assets.redaction import redact
from trading_assets.settings import dagster_home, data_dir, default_tracking_uri, embedded_dagster_home

log = logging.getLogger(__name__)


# The embedded instance: SQLite storage (Dagster's default), run monitoring and retries as in
# ./dagster.yaml, no telemetry, no pop-ups. Log messages below INFO (the IO managers' "Loading
# partition ..." lines) are not stored: each stored event costs a SQLite commit (~6 ms here).
_GUARDED_COORDINATOR = """\
run_coordinator:
  module: trading_assets.defs.run_guard
  class: GuardedRunCoordinator
"""
EMBEDDED_INSTANCE_YAML = (
    _GUARDED_COORDINATOR
    + """\
python_logs:
  python_log_level: INFO
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_runtime_seconds: 86400
  max_resume_run_attempts: 0
  poll_interval_seconds: 30
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
telemetry:
  enabled: false
nux:
  enabled: false
"""
)


# What earlier versions wrote (replaced on first use): telemetry and nux only; then all but the run coordinator.
_EARLIER_EMBEDDED_YAML = (
    "telemetry:\n  enabled: false\nnux:\n  enabled: false\n",
    EMBEDDED_INSTANCE_YAML.replace(_GUARDED_COORDINATOR, ""),
)


def get_instance(symbols: list[str] | None = None) -> DagsterInstance:
    """The instance of ``$DAGSTER_HOME``, or the local embedded one (created on first use), with ``symbols``
    registered as partitions.

    Creating the embedded instance's databases and registering symbols happen under one lock in the data
    folder: commands started together on a fresh folder create them once, one after the other. The
    embedded config of older versions (no run monitoring, no guarded run coordinator) is replaced.
    """
    with exclusive(first_use_lock()):
        home = instance_home()
        embedded = home == embedded_dagster_home()
        if embedded:
            home.mkdir(parents=True, exist_ok=True)
            config = home / "dagster.yaml"
            if not config.exists() or config.read_text() in _EARLIER_EMBEDDED_YAML:
                config.write_text(EMBEDDED_INSTANCE_YAML)
            sqlite_normal_sync(home)
        instance = DagsterInstance.from_config(str(home))  # the SQLite storages create their tables here
        if embedded:  # no daemon may be watching: end what killed commands left running
            fail_dead_runs_and_their_tracking(instance)
        if symbols:
            add_symbols(instance, symbols)
    return instance


def instance_home() -> Path:
    """``$DAGSTER_HOME``, or the embedded instance's home."""
    return (dagster_home() or embedded_dagster_home()).resolve()


def first_use_lock() -> Path:
    """The lock under which first uses create the embedded databases and register symbols."""
    return data_dir() / ".first_use.lock"


def fail_dead_runs_and_their_tracking(instance: DagsterInstance) -> list[str]:
    """Mark failed the embedded instance's runs whose worker process (a command on this host) is gone, and
    end their MLflow runs left RUNNING as FAILED; returns the Dagster run ids."""
    from trading_assets.defs.sensors import fail_dead_runs

    dead = fail_dead_runs(instance, grace_seconds=0.0)
    if dead:
        from trading_assets.training.tracking import connect, end_stale_runs

        try:
            client, experiment_id = connect(default_tracking_uri(), "trading_assets")
            end_stale_runs(client, experiment_id, {}, lambda run_id: run_id not in dead)
        except Exception as exc:  # noqa: BLE001 - the next training of the partition ends them too
            log.warning("could not end the MLflow runs of dead runs %s: %s", dead, redact(str(exc)))
        log.warning("marked failed %d run(s) whose process was gone: %s", len(dead), ", ".join(dead))
    return dead


_NORMAL_SYNC_DIRECTORIES: set[str] = set()


def sqlite_normal_sync(directory: Path) -> None:
    """Open Dagster's SQLite databases under ``directory`` with ``synchronous=NORMAL``.

    Dagster runs them in WAL mode but leaves ``synchronous=FULL``, so each event it stores (a run
    stores ~175, each in its own commit) syncs the disk. In WAL mode NORMAL syncs only at checkpoints:
    a power cut may lose the last events, never corrupts a database. Dagster has no setting for it,
    so a SQLAlchemy ``connect`` listener sets it on the connections to those files.
    """
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not _NORMAL_SYNC_DIRECTORIES:

        @event.listens_for(Engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            if not isinstance(dbapi_connection, sqlite3.Connection):
                return
            path = next((row[2] for row in dbapi_connection.execute("PRAGMA database_list") if row[1] == "main"), "")
            if path and any(path.startswith(d) for d in _NORMAL_SYNC_DIRECTORIES):
                dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    _NORMAL_SYNC_DIRECTORIES.add(str(directory.resolve()) + os.sep)
