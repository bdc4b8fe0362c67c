"""The project command line, run in-process against a temporary DAGSTER_HOME-less data folder."""

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from trading_assets.app.cli import main
from trading_assets_tests.conftest import END
from trading_assets_tests.servers import FakeUpbit


def test_materialize_default_partitions_and_symbols(data_dir, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(
        main, ["materialize", "--days", "1", "--end", END.isoformat(), "--timeframes", "5m", "--assets", "data"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) < 25, result.output  # progress and one table, not Dagster's event log
    rows = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in lines if line.startswith("│")
    }
    for key in ("KRW-BTC|5m", "KRW-ETH|5m"):  # status, rows, checks passed/warned/failed, duration, MLflow run
        status, row_count, checks, duration, _ = rows[key]
        assert status == "success" and int(row_count.replace(",", "")) > 200 and checks == "17/0/0" and duration
    log_path = Path(next(line for line in lines if line.startswith("Dagster event log:")).split(": ", 1)[1])
    log = log_path.read_text()
    assert "RUN_SUCCESS" in log and "ASSET_CHECK_EVALUATION" in log and "STEP_START" in log
    assert "DEBUG" not in result.output

    verbose = runner.invoke(
        main,
        [
            "-v",
            "materialize",
            "--bars",
            "300",
            "--end",
            END.isoformat(),
            "--timeframes",
            "5m",
            "--symbols",
            "KRW-BTC",
            "--assets",
            "data",
        ],
    )
    assert verbose.exit_code == 0 and "STEP_START" in verbose.output
    both = runner.invoke(main, ["materialize", "--days", "1", "--bars", "300"])
    assert both.exit_code == 2 and "not both" in both.output
    for asset in ("raw_candles", "indicators", "features"):
        assert (data_dir / "assets" / asset / "KRW-ETH" / "5m.parquet").exists()
    assert (data_dir / "dagster_home").is_dir()

    assert runner.invoke(main, ["symbols", "add", "KRW-SOL"]).output.strip() == "added: KRW-SOL"
    assert runner.invoke(main, ["symbols", "list"]).output.split() == ["KRW-BTC", "KRW-ETH", "KRW-SOL"]
    bad = runner.invoke(main, ["symbols", "add", "KRW|SOL"])
    assert bad.exit_code != 0 and "invalid symbol" in bad.output
    assert runner.invoke(main, ["symbols", "remove", "KRW-SOL"]).exit_code == 0
    assert "KRW-SOL" not in runner.invoke(main, ["symbols", "list"]).output
    bad_tf = runner.invoke(main, ["materialize", "--timeframes", "2h"])
    assert bad_tf.exit_code != 0 and "unknown timeframe" in bad_tf.output


def test_models_and_feature_set_become_run_config_of_their_steps():
    from trading_assets.app.cli import market_run_config, merge_run_config, research_run_config

    config = merge_run_config(market_run_config(days=2, refresh=True), research_run_config(["gru"], "default"))
    assert config == {
        "ops": {"raw_candles": {"config": {"days": 2}}, "predictions": {"config": {"models": ["gru"]}}},
        "resources": {
            "candle_store": {"config": {"refresh": True}},
            "incremental": {"config": {"enabled": False}},  # fetched again: computed again in full
            "feature_config": {"config": {"feature_set": "default"}},
        },
    }
    assert research_run_config(None, None) == {}
    assert research_run_config(["gru"], None, tuned=True)["ops"] == {  # both take the tuned settings
        "predictions": {"config": {"models": ["gru"], "tuned": True}},
        "trained_model": {"config": {"tuned": True}},
    }


def test_a_feature_set_registered_by_an_extension_is_chosen_from_the_command_line(data_dir, monkeypatch):

    from trading_assets.features import DEFAULT_FEATURES, FEATURE_SETS

    monkeypatch.setitem(FEATURE_SETS, "narrow", DEFAULT_FEATURES[:5])
    args = ["materialize", "--assets", "data", "--symbols", "KRW-BTC", "--timeframes", "15m", "--days", "3"]
    result = CliRunner().invoke(main, [*args, "--end", END.isoformat(), "--feature-set", "narrow"])
    assert result.exit_code == 0, result.output
    features = pd.read_parquet(data_dir / "assets" / "features" / "KRW-BTC" / "15m.parquet")
    assert features.attrs["feature_set"] == "narrow"
    assert list(features.columns) == [f.name for f in DEFAULT_FEATURES[:5]] + ["target"]


def test_refresh_re_collects_through_the_candle_store_resource():
    from trading_assets.app.cli import market_run_config

    config = market_run_config(days=2, source="files", refresh=True)
    assert config["resources"] == {
        "candle_source": {"config": {"kind": "files"}},
        "candle_store": {"config": {"refresh": True}},
        "incremental": {"config": {"enabled": False}},
    }
    assert "resources" not in market_run_config(days=2)


SPAN_ERRORS = [
    (["--days", "0"], "--days must be a positive number of days, got 0.0"),
    (["--days", "-1"], "--days must be a positive number of days, got -1.0"),
    (["--bars", "0"], "--bars must be a positive number of bars, got 0"),
    (["--days", "1", "--bars", "300"], "give the span with --days or --bars, not both"),
    (["--end", "yesterday-ish"], "--end 'yesterday-ish' is not an ISO 8601 time"),
    (["--timeframes", "2h"], "unknown timeframe(s) ['2h']"),
    # span limits are checked before anything is launched (the default 1m partitions)
    (["--bars", "2000000"], "1m: the span is 2,000,000 bars, more than max_span_bars=1,051,200"),
    (["--days", "1000"], "1m: the span is 1,440,000 bars, more than max_span_bars=1,051,200"),
]
SOURCE_ERRORS = [  # materialize only: a backfill takes no source or research options
    (["--source", "files", "--upbit-url", "http://127.0.0.1:1"], "need --source upbit"),
    (["--requests-per-second", "0"], "--requests-per-second must be positive"),
    (["--source", "nasdaq"], "--source 'nasdaq' is not a registered source; expected one of synthetic"),
    (
        ["--models", "gru,xgboost"],
        "--models xgboost: unknown; expected some of bilstm, lstm, gru, transformer, timesnet, lightgbm, linear",
    ),
    (["--models", ","], "--models (none): unknown"),
    (["--feature-set", "wide"], "--feature-set 'wide' is not a feature set; expected one of default"),
]


@pytest.mark.parametrize(
    "command,args,message",
    [(c, a, m) for c in ("materialize", "backfill") for a, m in SPAN_ERRORS]
    + [("materialize", a, m) for a, m in SOURCE_ERRORS],
)
def test_bad_arguments_are_rejected_before_launching(data_dir, command, args, message):
    result = CliRunner().invoke(main, [command, *args])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ") and message in result.output
    assert not (data_dir / "dagster_home").exists()  # nothing launched, not even an instance


def test_materialize_summary_names_failing_step_and_error(data_dir, monkeypatch):
    monkeypatch.delenv("TRADING_UPBIT_BASE_URL", raising=False)  # --upbit-url sets it; unset again afterwards
    exchange = FakeUpbit({})
    try:
        result = CliRunner().invoke(
            main,
            ["materialize", "--symbols", "KRW-NOPE", "--timeframes", "5m", "--days", "1", "--end", END.isoformat()]
            + ["--upbit-url", exchange.url, "--requests-per-second", "50", "--assets", "data"],
        )
    finally:
        exchange.stop()
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) < 25, result.output
    # one place names the failing step and the error's first line: the line under the summary table
    [line] = [x for x in lines if "failed at" in x]
    assert line.startswith("KRW-NOPE|5m failed at raw_candles: UnknownSymbolError: KRW-NOPE 5m: ")
    assert "Upbit does not know this market" in line
    assert "failed partitions: KRW-NOPE|5m" in lines[-1]
    assert exchange.requests[0]["path"] == "/v1/candles/minutes/5"  # --upbit-url reached the run (a location)


def _summary_row(output: str, key: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(f"│ {key}"))
    return [c.strip() for c in line.split("│")[2:-1]]


def test_a_partition_whose_candles_did_not_change_is_not_recomputed(data_dir, tmp_path, monkeypatch):
    """Dagster's data versions: the same candles again leave indicators and features fresh; a corrected
    candle makes them stale; --force recomputes regardless. The raw candles' chart is drawn only for new data."""
    import pandas as pd
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

    from trading_assets import charts
    from trading_assets.sources import SyntheticSource

    drawn: list[str] = []
    candlestick = charts.candlestick
    monkeypatch.setattr(
        charts, "candlestick", lambda frame, title, *a: drawn.append(title) or candlestick(frame, title, *a)
    )

    files = tmp_path / "files"
    files.mkdir()
    candles = SyntheticSource(seed=3).fetch("KRW-BTC", "60m", END - pd.Timedelta(days=60), END)
    candles.to_parquet(files / "KRW-BTC_60m.parquet")
    args = ["materialize", "--source", "files", "--files-dir", str(files), "--days", "3", "--end", END.isoformat()]
    args += ["--symbols", "KRW-BTC", "--timeframes", "60m", "--assets", "data"]
    runner = CliRunner()

    def run(*extra: str) -> list[str]:
        result = runner.invoke(main, [*args, *extra])
        assert result.exit_code == 0, result.output
        return _summary_row(result.output, "KRW-BTC|60m")

    def computed() -> dict[str, int]:
        instance = DagsterInstance.from_config(str(data_dir / "dagster_home"))
        return {
            asset: len(
                instance.fetch_materializations(
                    AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=["KRW-BTC|60m"]), limit=100
                ).records
            )
            for asset in ("raw_candles", "indicators", "features")
        }

    def charts_of_raw_candles() -> list[str]:
        instance = DagsterInstance.from_config(str(data_dir / "dagster_home"))
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("raw_candles"), asset_partitions=["KRW-BTC|60m"]), limit=100
        ).records
        return [r.asset_materialization.metadata["chart"].value for r in records]

    raw, with_indicators = "KRW-BTC 60m raw candles", "KRW-BTC 60m candles and indicators"
    assert run()[0] == "success" and computed() == {"raw_candles": 1, "indicators": 1, "features": 1}
    assert drawn == [raw, with_indicators]
    status, _, checks, *_ = run()
    assert status == "success, 2 up to date" and checks == "17/0/0"  # the earlier run's checks still count
    assert computed() == {"raw_candles": 2, "indicators": 1, "features": 1}
    assert len(drawn) == 2  # the same candles: the chart of the last materialization, not drawn again
    second, first = charts_of_raw_candles()
    assert second == first and first.startswith(f"![{raw}](data:image/png;base64,")
    logs = "".join(p.read_text() for p in (data_dir / "logs").glob("materialize-*.log"))
    assert "up to date, not run again: features, indicators (computed by run " in logs

    corrected = candles.copy()
    last = corrected.index[-2]
    corrected.loc[last, "close"] = (corrected.loc[last, "high"] + corrected.loc[last, "low"]) / 2
    corrected.to_parquet(files / "KRW-BTC_60m.parquet")
    assert run("--refresh")[0] == "success"  # a candle changed: everything after it is computed again
    assert computed() == {"raw_candles": 3, "indicators": 2, "features": 2}
    assert drawn[2:] == [raw, with_indicators]
    assert charts_of_raw_candles()[0] != first
    assert run("--force")[0] == "success"
    assert computed() == {"raw_candles": 4, "indicators": 3, "features": 3}
    assert drawn[4:] == [with_indicators]  # the candles are those of the run before
    from trading_assets.defs import assets

    monkeypatch.setattr(assets, "CODE_VERSION", "another code version")  # the last chart was drawn by other code
    assert run()[0].startswith("success")
    assert drawn[5:] == [raw]


def test_the_raw_candles_chart_is_keyed_on_which_bars_were_filled():
    """Equal data versions can still differ in which bars were filled; the chart marks them, so its key does."""
    import numpy as np
    from dagster import DataVersion

    from trading_assets.defs.assets import chart_inputs

    version, mask = DataVersion("v"), np.zeros(300, dtype=bool)
    mask[10] = True
    moved = np.roll(mask, 1)
    assert chart_inputs(version, "t", mask) == chart_inputs(version, "t", mask.copy())
    assert (
        len({chart_inputs(version, "t", mask), chart_inputs(version, "t", moved), chart_inputs(version, "u", mask)})
        == 3
    )
    assert chart_inputs(version, "t", mask) != chart_inputs(DataVersion("w"), "t", mask)


def test_the_embedded_instance_commits_without_syncing_every_event(tmp_path):
    import sqlalchemy as sa

    from trading_assets.defs.instance import sqlite_normal_sync

    (tmp_path / "home").mkdir()
    (tmp_path / "other").mkdir()
    sqlite_normal_sync(tmp_path / "home")
    for folder, expected in (("home", 1), ("other", 2)):  # NORMAL under the instance, FULL (the default) elsewhere
        engine = sa.create_engine(f"sqlite:///{tmp_path / folder / 'runs.db'}", poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == expected
        engine.dispose()


def test_a_failed_check_says_why_on_its_line(data_dir, tmp_path):
    """Too little history for the warm-up: the line names the check and gives its own explanation, not
    Dagster's 'blocking asset check failed' wrapper."""
    from trading_assets.sources import SyntheticSource

    files = tmp_path / "files"
    files.mkdir()
    SyntheticSource(seed=3).fetch("KRW-BTC", "60m", END - pd.Timedelta(days=3), END).to_parquet(
        files / "KRW-BTC_60m.parquet"
    )
    args = ["materialize", "--source", "files", "--files-dir", str(files), "--days", "2", "--end", END.isoformat()]
    result = CliRunner().invoke(main, [*args, "--symbols", "KRW-BTC", "--timeframes", "60m", "--assets", "data"])
    assert result.exit_code == 1, result.output
    [line] = [x for x in result.output.splitlines() if "failed at" in x]
    assert line.startswith("KRW-BTC|60m failed at indicators_nan_rate: indicators check nan_rate failed: "), line
    assert "Dagster" not in line and "blocking asset check" not in line


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "dagster.example"])
def test_ui_refuses_to_bind_anything_but_loopback(data_dir, host):
    result = CliRunner().invoke(main, ["ui", "--host", host])
    assert result.exit_code == 2 and "is not a loopback address" in result.output
    assert not (data_dir / "dagster_home").exists()  # refused before anything started


def test_an_unwritable_event_log_degrades_to_one_warning(data_dir):
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "logs").write_text("a file where the log folder should be")  # no log can be written there
    args = ["materialize", "--days", "1", "--end", END.isoformat(), "--timeframes", "5m", "--assets", "data"]
    result = CliRunner().invoke(main, [*args, "--symbols", "KRW-BTC"])
    assert result.exit_code == 0, result.output
    assert result.output.count("warning: cannot write the event log") == 1
    assert "Traceback" not in result.output and "KRW-BTC|5m" in result.output


PLANTED = {  # a credential in every location and on the command line
    "TRADING_CCXT_API_URL": "https://mirror:PlantedCcxtPw@127.0.0.1:9/api",
    "TRADING_ASSETS_PATH": None,  # set below: a real folder
    "DAGSTER_WEBUI_URL": "https://ui:PlantedWebUiPw@dagster.internal",
    "TRADING_ALERT_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/PlantedHookToken",
}


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "-v"])
def test_planted_credentials_never_reach_the_output(data_dir, tmp_path, monkeypatch, verbose):
    """Locations with credentials and `--upbit-url` / `backfill --url` with a password, against a server that
    fails and one that refuses: nothing planted shows, also with -v (Dagster's events, urllib3's debug lines)."""
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value or str(tmp_path / "assets"))
    monkeypatch.delenv("TRADING_UPBIT_BASE_URL", raising=False)
    flags = ["-v"] if verbose else []
    exchange = FakeUpbit({})  # knows no market: the run fails at once, quoting the URL it called
    with_password = exchange.url.replace("http://", "http://user:PlantedUpbitPw@")
    try:
        run = CliRunner().invoke(
            main,
            [*flags, "materialize", "--symbols", "KRW-NOPE", "--timeframes", "5m", "--days", "1"]
            + [
                "--end",
                END.isoformat(),
                "--upbit-url",
                with_password,
                "--requests-per-second",
                "50",
                "--assets",
                "data",
            ],
        )
    finally:
        exchange.stop()
    backfill = CliRunner().invoke(
        main, [*flags, "backfill", "--timeframes", "5m", "--days", "1", "--url", "https://u:PlantedProxy@127.0.0.1:9"]
    )
    assert run.exit_code == 1 and backfill.exit_code != 0
    text = run.output + backfill.output + str(backfill.exception or "")
    logs = "".join(p.read_text() for p in (data_dir / "logs").glob("*.log"))
    for secret in ("PlantedCcxtPw", "PlantedWebUiPw", "PlantedHookToken", "PlantedUpbitPw", "PlantedProxy"):
        assert secret not in text and secret not in logs, secret
