import pandas as pd
import pytest

from trading_assets.timeframes import TIMEFRAMES, get_timeframe, validate_symbol


def test_timeframes_and_grid():
    assert TIMEFRAMES == ("1m", "5m", "15m", "30m", "60m", "240m", "1d")
    tf = get_timeframe("240m")
    grid = tf.grid(pd.Timestamp("2024-01-01 01:00", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC"))
    assert [t.hour for t in grid] == [4, 8, 12, 16, 20]
    assert get_timeframe("1d").freq == "1D"
    with pytest.raises(ValueError, match="unknown timeframe '2h'"):
        get_timeframe("2h")


@pytest.mark.parametrize("bad", ["KRW|BTC", "krw-btc", "KRWBTC", "KRW-BTC|1m", ""])
def test_symbol_validation_rejects_partition_breaking_names(bad):
    with pytest.raises(ValueError, match="invalid symbol"):
        validate_symbol(bad)
    assert validate_symbol("USDT-ETH") == "USDT-ETH"
