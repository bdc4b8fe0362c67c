"""The alert sensors under a real dagster-daemon on the embedded instance: a webhook that is down,
then hangs, then accepts gets every alert exactly once; a run killed with -9 is marked failed,
alerted, and its re-run resumes the fetch."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, DagsterRunStatus, materialize

from trading_assets.defs.assets import raw_candles
from trading_assets.defs.instance import get_instance
from trading_assets.defs.partitions import add_symbols, partition_key
from trading_assets.defs.resources import (
    CandleSourceResource,
    CandleStoreResource,
    Locations,
)
from trading_assets.partition import Partition
from trading_assets.sources import SyntheticSource
from trading_assets.store import CandleStore
from trading_assets_tests.conftest import END, data_resources
from trading_assets_tests.defs.test_checks import run
from trading_assets_tests.servers import DagsterProcess, FakeUpbit, WebhookReceiver

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
def hook():
    receiver = WebhookReceiver(hang_seconds=3)
    yield receiver
    receiver.stop()


@pytest.fixture
def exchange():
    frames = {("KRW-BTC", "5m"): SyntheticSource(seed=5).fetch("KRW-BTC", "5m", END - pd.Timedelta(days=10), END)}
    server = FakeUpbit(frames, per_second=1000)
    yield server
    server.stop()


@pytest.fixture
def platform(data_dir, tmp_path, monkeypatch, hook):
    """The embedded instance (as `trading-assets` writes it) with a daemon running the alert sensors."""
    instance = get_instance()
    add_symbols(instance, ["KRW-BTC"])
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)  # the daemon's instance; restored after the test
    monkeypatch.setenv("TRADING_ALERT_WEBHOOK_URL", hook.url)
    assert instance.run_monitoring_enabled and not instance.run_retries_retry_on_asset_or_op_failure
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: trading_assets_tests.faults.alert_location\n"
        f"      working_directory: {ROOT}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    daemon = DagsterProcess(
        [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env, str(ROOT), str(tmp_path / "daemon.log")
    ).start()
    yield {"instance": instance, "daemon": daemon, "data": data_dir, "env": env}
    daemon.stop()
    instance.dispose()


def _wait(what, predicate, platform, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n" + platform["daemon"].log_tail())


def _outbox(platform):
    path = platform["data"] / "alerts_outbox.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT event_id, state, attempts FROM outbox ORDER BY created").fetchall()


def _tried(rows):
    """How many outbox rows were tried at least once (or 0 while some row was never tried)."""
    return len(rows) if rows and all(attempts >= 1 for _, _, attempts in rows) else 0


def _sensor_ticking(instance, name):
    states = [s for s in instance.all_instigator_state() if s.name == name]
    return states and states[0].instigator_data and states[0].instigator_data.cursor


def _upbit_raw_candles(instance, exchange, data_dir):
    return materialize(
        [raw_candles],
        partition_key=partition_key("KRW-BTC", "5m"),
        instance=instance,
        resources=data_resources(
            candle_source=CandleSourceResource(
                locations=Locations(upbit_base_url=exchange.url), kind="upbit", upbit_requests_per_second=1000
            ),
            candle_store=CandleStoreResource(locations=Locations(db_url=f"sqlite:///{data_dir / 'upbit.sqlite'}")),
        ),
        run_config={"ops": {"raw_candles": {"config": {"days": 1.0, "end": END.isoformat()}}}},
        raise_on_error=False,
    )


def test_webhook_down_then_hanging_then_up_gets_each_alert_exactly_once(platform, hook, exchange):
    instance = platform["instance"]
    _wait("the run-failure sensor's first tick", lambda: _sensor_ticking(instance, "run_failure_alerts"), platform)
    hook.mode = "down"
    assert not run(instance, "strings").success  # two failed checks
    # The sensor queues each evaluation as soon as it is stored, so a tick may queue (and try) the first
    # alert while the run is still evaluating the second: wait for both to be queued and tried.
    _wait("two alerts tried while the webhook is down", lambda: _tried(_outbox(platform)) == 2, platform)
    assert len(_outbox(platform)) == 2 and hook.bodies == []

    hook.mode = "hang"
    attempts = hook.attempts
    exchange.fail_next.append(418)  # a source failure: alerted by the run-failure sensor
    failed = _upbit_raw_candles(instance, exchange, platform["data"])
    assert not failed.success
    _wait("the run failure queued", lambda: len(_outbox(platform)) == 3, platform)
    _wait("attempts against the hanging webhook", lambda: hook.attempts >= attempts + 2, platform)
    assert hook.bodies == []

    hook.mode = "up"
    _wait("every alert delivered", lambda: len(hook.bodies) >= 3, platform)
    time.sleep(5)  # several more ticks: nothing is sent again
    assert len(hook.bodies) == 3 and len(set(hook.ids)) == 3
    assert {state for _, state, _ in _outbox(platform)} == {"delivered"}
    texts = sorted(b["text"] for b in hook.bodies)
    assert sum("failed on `raw_candles` partition `KRW-BTC|5m`" in t for t in texts) == 2
    [run_alert] = [t for t in texts if t.startswith(":x: run failed")]
    assert "partition `KRW-BTC|5m` (source as configured in code), step `raw_candles`: " in run_alert
    assert "SourceUnavailableError: Upbit KRW-BTC 5m window [" in run_alert
    assert "HTTP 418" in run_alert
    assert failed.run_id[:8] in run_alert
    log = [json.loads(line) for line in (platform["data"] / "alerts.jsonl").read_text().splitlines()]
    assert len(log) == 3  # one line per alert, written when it was raised


def test_killed_run_is_marked_failed_alerted_and_its_rerun_resumes(platform, hook, exchange):
    instance = platform["instance"]
    _wait("the run-failure sensor's first tick", lambda: _sensor_ticking(instance, "run_failure_alerts"), platform)
    exchange.hold_after = 3  # the fourth page is held: the kill lands mid-fetch, however busy the machine
    cli = [sys.executable, "-m", "trading_assets.app.cli", "materialize", "--symbols", "KRW-BTC", "--timeframes", "5m"]
    cli += ["--days", "1", "--end", END.isoformat(), "--upbit-url", exchange.url, "--assets", "data"]
    proc = subprocess.Popen(cli, env=platform["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait("two pages fetched", lambda: len(exchange.requests) >= 3, platform)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    exchange.hold_after = None
    exchange.release.set()  # the held page answers a dead client
    [killed] = instance.get_runs()
    assert killed.status == DagsterRunStatus.STARTED  # nobody told Dagster

    def marked_failed():
        current = DagsterInstance.get().get_run_by_id(killed.run_id)
        return current.status == DagsterRunStatus.FAILURE

    _wait("the dead run marked failed", marked_failed, platform, timeout=60)
    _wait("the dead run alerted", lambda: any("worker (pid" in b["text"] for b in hook.bodies), platform, timeout=60)
    store = CandleStore(f"sqlite:///{platform['data'] / 'candles.sqlite'}")
    kept = store.coverage(Partition("KRW-BTC", "5m"))
    assert kept is not None and kept.end == END  # the pages fetched before the kill stayed
    store.dispose()

    exchange.requests.clear()
    out = subprocess.run(cli, env=platform["env"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "KRW-BTC|5m: success" in out.stdout  # the progress line of a finished partition (no terminal)
    assert exchange.requests and all(pd.Timestamp(r["to"]) <= kept.start for r in exchange.requests)
    assert not list((platform["data"] / "assets").rglob("*.tmp"))
    time.sleep(3)
    assert len([b for b in hook.bodies if "worker (pid" in b["text"]]) == 1
