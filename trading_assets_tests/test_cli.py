"""The project command line, run in-process against a temporary DAGSTER_HOME-less data folder."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from trading_assets.cli import main
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
        assert status == "success" and int(row_count.replace(",", "")) > 200 and checks == "14/0/0" and duration
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


def test_refresh_re_collects_through_the_candle_store_resource():
    from trading_assets.cli import market_run_config

    config = market_run_config(days=2, source="files", refresh=True)
    assert config["resources"] == {
        "candle_source": {"config": {"kind": "files"}},
        "candle_store": {"config": {"refresh": True}},
    }
    assert "resources" not in market_run_config(days=2)


SPAN_ERRORS = [
    (["--days", "0"], "--days must be a positive number of days, got 0.0"),
    (["--days", "-1"], "--days must be a positive number of days, got -1.0"),
    (["--bars", "0"], "--bars must be a positive number of bars, got 0"),
    (["--days", "1", "--bars", "300"], "give the span with --days or --bars, not both"),
    (["--end", "yesterday-ish"], "--end 'yesterday-ish' is not an ISO 8601 time"),
    (["--timeframes", "2h"], "unknown timeframe(s) ['2h']"),
]
SOURCE_ERRORS = [  # materialize only: a backfill takes no source options
    (["--source", "files", "--upbit-url", "http://127.0.0.1:1"], "need --source upbit"),
    (["--requests-per-second", "0"], "--requests-per-second must be positive"),
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
