"""The project command line, run in-process against a temporary DAGSTER_HOME-less data folder."""

from pathlib import Path

from click.testing import CliRunner

from trading_assets.cli import main
from trading_assets_tests.conftest import END


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
