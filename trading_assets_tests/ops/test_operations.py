"""Operating the platform on the production instance (dagster.yaml, PostgreSQL): a CLI backfill run
by the daemon, the web UI and its GraphQL API, a real browser, and a daemon restart."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from dagster import DagsterEventType, DagsterInstance

from trading_assets.defs.partitions import partition_key
from trading_assets_tests.conftest import END
from trading_assets_tests.defs.test_checks import run
from trading_assets_tests.servers import DagsterProcess, free_port, webserver_up

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"
SYMBOLS, TIMEFRAMES = ("KRW-BTC", "KRW-ETH"), ("5m", "15m")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=20000",
]


@pytest.fixture(scope="module")
def platform(postgres, tmp_path_factory):
    """The project's own dagster.yaml on a fresh PostgreSQL database, with its daemon running."""
    # two private levels above the home: a traversal climbing out of it lands where the test looks, never among
    # other tests' files (the suite's temporary folders share one parent)
    root = tmp_path_factory.mktemp("platform")
    home = root / "up" / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    postgres.create_database("dagster_ops")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "TRADING_DATA_DIR": str(home / "data"),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USER": "postgres",
        "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
        "DAGSTER_PG_DB": "dagster_ops",
        "TRADING_ALERT_SENSOR_INTERVAL": "3",
        "PYTHONWARNINGS": "ignore",
        "PLANTED_SECRET": "PlantedAwsKey0123",  # a secret in the servers' environment that no run may read
    }
    for var in ("TRADING_DB_URL", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    daemon = DagsterProcess(
        [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, str(ROOT), str(home / "daemon.log")
    ).start()
    yield {
        "env": env,
        "home": home,
        "root": root,
        "daemon": daemon,
        "db": f"postgresql+psycopg2://postgres@127.0.0.1:{postgres.port}/dagster_ops",
    }
    daemon.stop()


@pytest.fixture(scope="module")
def backfill(platform):
    """`trading-assets backfill` of 2 symbols x 2 timeframes through to features, waited for."""
    out = subprocess.run(
        [
            str(BIN / "trading-assets"),
            "backfill",
            "--symbols",
            ",".join(SYMBOLS),
            "--timeframes",
            ",".join(TIMEFRAMES),
            "--select",
            "+features",
            "--days",
            "3",
            "--end",
            END.isoformat(),
            "--wait",
            "--timeout",
            "480",
        ],
        env=platform["env"],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:] + platform["daemon"].log_tail()
    return re.search(r"^backfill (\w+):", out.stdout, re.M).group(1)


def test_cli_backfill_runs_every_partition_on_postgres(platform, backfill):
    engine = sa.create_engine(platform["db"])
    with engine.connect() as conn:
        runs = conn.execute(
            sa.text(
                "select r.status, t2.value from runs r join run_tags t on t.run_id = r.run_id "
                "join run_tags t2 on t2.run_id = r.run_id and t2.key = 'dagster/partition' "
                "where t.key = 'dagster/backfill' and t.value = :b"
            ),
            {"b": backfill},
        ).all()
        checks = conn.execute(
            sa.text(
                "select asset_key, check_name, partition, execution_status from asset_check_executions "
                "where run_id in (select run_id from run_tags where key = 'dagster/backfill' and value = :b)"
            ),
            {"b": backfill},
        ).all()
        backfill_row = conn.execute(sa.text("select status from bulk_actions where key = :b"), {"b": backfill}).one()
    engine.dispose()
    expected_partitions = {str(partition_key(s, t)) for s in SYMBOLS for t in TIMEFRAMES}
    assert sorted(p for _, p in runs) == sorted(expected_partitions) and {s for s, _ in runs} == {"SUCCESS"}
    assert backfill_row.status == "COMPLETED_SUCCESS" or backfill_row.status == "COMPLETED"
    per_partition = {}
    for asset_key, check_name, part, status in checks:
        per_partition.setdefault(part, {})[(json.loads(asset_key)[0], check_name)] = status
    assert set(per_partition) == expected_partitions
    for part, statuses in per_partition.items():
        assert len(statuses) == 17, (part, statuses)  # 11 data-quality, 3 look-ahead/warm-up, 3 incremental
        assert set(statuses.values()) == {"SUCCEEDED"}, (part, statuses)


def _webserver(platform, port):
    web = DagsterProcess(
        [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        platform["env"],
        str(ROOT),
        str(platform["home"] / "webserver.log"),
    ).start()
    if webserver_up(port, web.proc, web.log_tail, timeout=120):
        return web
    web.stop()
    raise AssertionError("webserver did not come up: " + web.log_tail())


def _graphql(port, query):
    response = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def test_webserver_graphql_and_browser(platform, backfill):
    port = free_port()
    web = _webserver(platform, port)
    try:
        nodes = _graphql(
            port,
            "{ assetNodes { assetKey { path } isPartitioned "
            "partitionDefinition { dimensionTypes { name } } hasAssetChecks } }",
        )["assetNodes"]
        by_name = {n["assetKey"]["path"][0]: n for n in nodes}
        assert set(by_name) == {
            "raw_candles",
            "indicators",
            "features",
            "trained_model",
            "tuning",
            "predictions",
            "evaluation",
            "leaderboard",
            "champion",
            "signals",
        }
        assert [n for n, node in by_name.items() if not node["isPartitioned"]] == ["leaderboard"]
        assert [d["name"] for d in by_name["features"]["partitionDefinition"]["dimensionTypes"]] == [
            "symbol",
            "timeframe",
        ]
        stats = _graphql(
            port,
            '{ assetNodeOrError(assetKey: {path: ["features"]}) { ... on AssetNode { '
            "partitionStats { numMaterialized numPartitions numFailed } } } }",
        )
        partition_stats = stats["assetNodeOrError"]["partitionStats"]
        assert partition_stats["numMaterialized"] == 4 and partition_stats["numFailed"] == 0
        assert partition_stats["numPartitions"] == len(SYMBOLS) * 7
        checks = _graphql(
            port,
            '{ assetNodeOrError(assetKey: {path: ["features"]}) { ... on AssetNode { '
            "assetChecksOrError { ... on AssetChecks { checks { name blocking "
            "executionForLatestMaterialization { status partition } } } } } } }",
        )
        listed = checks["assetNodeOrError"]["assetChecksOrError"]["checks"]
        names = {"schema", "dtype_pollution", "nan_rate", "no_look_ahead", "incremental_matches_full"}
        assert {c["name"] for c in listed} == names
        assert all(c["blocking"] for c in listed)
        for c in listed:  # the latest evaluation of every check, with its partition
            latest = c["executionForLatestMaterialization"]
            assert latest["status"] == "SUCCEEDED" and latest["partition"] in {
                str(partition_key(s, t)) for s in SYMBOLS for t in TIMEFRAMES
            }
        backfills = _graphql(
            port, "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id status } } } }"
        )
        assert any(b["id"] == backfill for b in backfills["partitionBackfillsOrError"]["results"])

        ARTIFACTS.mkdir(exist_ok=True)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        assert chromium, "Debian's chromium is needed (installed by .ci/run)"
        profile = platform["home"] / "chromium"
        dom = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}-dom",
                "--dump-dom",
                f"http://127.0.0.1:{port}/assets",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        for name in ("raw_candles", "indicators", "features", "trained_model", "predictions", "leaderboard"):
            assert name in dom, f"{name} not on the asset page"
        shot = ARTIFACTS / "features_partitions.png"
        shot.unlink(missing_ok=True)
        subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}-shot",
                "--window-size=1600,1000",
                f"--screenshot={shot}",
                f"http://127.0.0.1:{port}/assets/features?view=partitions",
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
        assert shot.stat().st_size > 20_000
    finally:
        web.stop()


def _alerts(platform):
    path = platform["home"] / "data" / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_for_alerts(platform, count, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(_alerts(platform)) >= count:
            time.sleep(4)  # one more sensor interval: nothing further must arrive
            return _alerts(platform)
        time.sleep(1)
    raise AssertionError(f"expected {count} alerts, got {_alerts(platform)}\n" + platform["daemon"].log_tail())


def _fail_a_partition(platform, monkeypatch, symbol, corrupt):
    for key, value in platform["env"].items():
        if key.startswith(("DAGSTER_", "TRADING_")):
            monkeypatch.setenv(key, value)
    with DagsterInstance.get() as instance:
        return run(instance, corrupt, symbol=symbol)


def test_daemon_restart_neither_loses_nor_repeats_alerts(platform, backfill, monkeypatch):
    assert not _fail_a_partition(platform, monkeypatch, "KRW-BTC", "negative_volume").success
    first = _wait_for_alerts(platform, 1)
    assert [(a["asset"], a["check"], a["partition"]) for a in first] == [("raw_candles", "schema", "KRW-BTC|5m")]

    platform["daemon"].stop()
    # a 10-bar hole while the daemon is down: a break, WARNed on raw_candles and indicators
    assert _fail_a_partition(platform, monkeypatch, "KRW-ETH", "missing").success
    platform["daemon"].start()
    after = _wait_for_alerts(platform, 3)
    assert [(a["asset"], a["check"], a["partition"]) for a in after] == [
        ("raw_candles", "schema", "KRW-BTC|5m"),
        ("raw_candles", "continuity", "KRW-ETH|5m"),
        ("indicators", "continuity", "KRW-ETH|5m"),
    ]
    assert len({a["event_id"] for a in after}) == 3
    engine = sa.create_engine(platform["db"])
    with engine.connect() as conn:
        cursor = conn.execute(
            sa.text("select instigator_body from instigators where instigator_body like :n"),
            {"n": "%asset_check_alerts%"},
        ).scalar_one()
    engine.dispose()
    assert "raw_candles:continuity" in cursor  # the cursor lives in PostgreSQL


ADD_PARTITION = """
mutation Add($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on Error { message }
  }
}
"""


def test_traversal_symbol_added_through_graphql_writes_nothing_outside(platform, monkeypatch):
    """A symbol that GraphQL accepts as a dynamic partition (``../../../outside``) fails its run with a clear
    error before anything is read or written; the data folder's neighbours stay untouched."""
    from trading_assets.defs.backfill import backfill_params, launch_backfill, wait_for_backfill

    for key, value in platform["env"].items():
        if key.startswith(("DAGSTER_", "TRADING_")):
            monkeypatch.setenv(key, value)
    symbol, home, root = "../../../outside", platform["home"], platform["root"]
    before = {p for p in root.rglob("*") if "outside" in p.name}
    port = free_port()
    web = _webserver(platform, port)
    try:
        selector = {"repositoryLocationName": "trading_assets", "repositoryName": "__repository__"}
        response = requests.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": ADD_PARTITION, "variables": {"selector": selector, "name": "symbol", "key": symbol}},
            timeout=60,
        ).json()
        assert response["data"]["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess", response
        with DagsterInstance.get() as instance:
            params = backfill_params([f"{symbol}|5m"], ["raw_candles", "indicators"], {"ops": {"raw_candles": {
                "config": {"days": 3.0, "end": END.isoformat()}}}})  # fmt: skip
            backfill_id = launch_backfill(instance, params, url=f"http://127.0.0.1:{port}")
            statuses = wait_for_backfill(instance, backfill_id, timeout=240)
            assert set(statuses.values()) == {"FAILURE"}, statuses
            for run_id in statuses:
                failures = instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
                assert failures and all(
                    "invalid symbol '../../../outside'" in f.dagster_event.event_specific_data.error.to_string()
                    for f in failures
                )
            instance.delete_dynamic_partition("symbol", symbol)
    finally:
        web.stop()
    assert {p for p in root.rglob("*") if "outside" in p.name} == before == set()
    written = [p for p in (home / "data").rglob("*.parquet")]
    assert all("outside" not in str(p) for p in written)


LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""


def test_a_run_config_reading_the_environment_is_refused_at_launch(platform, monkeypatch):
    """The reported attack: launchRun over GraphQL with `calendar: {env: ...}`. The guarded run coordinator
    fails the run before it is queued; the secret shows nowhere: not in the run, its events or the alerts."""
    port = free_port()
    web = _webserver(platform, port)
    try:
        config = {
            "ops": {"raw_candles": {"config": {"days": 3.0, "end": END.isoformat()}}},
            "resources": {"candle_source": {"config": {"calendar": {"env": "PLANTED_SECRET"}}}},
        }
        selector = {
            "repositoryLocationName": "trading_assets",
            "repositoryName": "__repository__",
            "jobName": "market_data_job",
        }
        tags = [{"key": "dagster/partition", "value": "KRW-BTC|5m"}]
        params = {"selector": selector, "runConfigData": config, "executionMetadata": {"tags": tags}}
        response = requests.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": LAUNCH_RUN, "variables": {"params": params}}, timeout=60
        ).json()
        assert response["data"]["launchRun"]["__typename"] == "LaunchRunSuccess", response
        run_id = response["data"]["launchRun"]["run"]["runId"]
    finally:
        web.stop()
    for key, value in platform["env"].items():
        if key.startswith(("DAGSTER_", "TRADING_")):
            monkeypatch.setenv(key, value)
    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        assert run.status.value == "FAILURE"
        text = "\n".join(str(e.message) + str(e.dagster_event) for e in instance.all_logs(run_id))
        assert "run config may not read environment variables" in text and "calendar" in text
        assert not any(
            e.dagster_event and e.dagster_event.event_type_value == "STEP_START" for e in instance.all_logs(run_id)
        )
    for path in platform["home"].rglob("*"):
        if path.is_file() and path.suffix in (".log", ".jsonl", ".txt", ".parquet"):
            assert b"PlantedAwsKey0123" not in path.read_bytes(), path
