"""The project command line, run in-process against a temporary DAGSTER_HOME-less data folder."""

from click.testing import CliRunner

from trading_assets.cli import main
from trading_assets_tests.conftest import END


def test_materialize_default_partitions_and_symbols(data_dir, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(
        main, ["materialize", "--days", "1", "--end", END.isoformat(), "--timeframes", "5m", "--assets", "data"]
    )
    assert result.exit_code == 0, result.output
    assert "KRW-BTC|5m: ok" in result.output and "KRW-ETH|5m: ok" in result.output
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
