import numpy as np
import pandas as pd

from trading_assets.candles import candle_problems
from trading_assets.sources import SyntheticSource
from trading_assets_tests.conftest import END


def test_candles_are_a_pure_function_of_time():
    src = SyntheticSource(seed=11)
    a = src.fetch("KRW-ETH", "5m", END - pd.Timedelta(days=5), END)
    b = src.fetch("KRW-ETH", "5m", END - pd.Timedelta(days=2, hours=3), END + pd.Timedelta(days=1))
    overlap = a.index.intersection(b.index)
    assert len(overlap) > 500
    pd.testing.assert_frame_equal(a.loc[overlap], b.loc[overlap])
    other = SyntheticSource(seed=12).fetch("KRW-ETH", "5m", END - pd.Timedelta(days=5), END)
    assert not np.allclose(other["close"].to_numpy()[:100], a["close"].to_numpy()[:100])


def test_realistic_texture(candles_1m):
    c = candles_1m
    assert not candle_problems(c)
    expected = pd.date_range(c.index[0], c.index[-1], freq="1min")
    missing = len(expected) - len(c)
    assert 0 < missing < 0.05 * len(expected)  # occasional missing minutes
    assert ((c["high"] == c["low"]).sum()) > 0  # some flat bars
    assert (c["value"] > 0).all() and (c["volume"] > 0).all()
    # volatility regimes: daily volatility differs across days on a long daily series
    daily = SyntheticSource(seed=3).fetch("KRW-BTC", "1d", END - pd.Timedelta(days=720), END)
    vol = np.log(daily["close"]).diff().rolling(60).std().dropna()
    assert vol.max() > 2 * vol.min()


def test_timeframes_share_day_boundaries():
    src = SyntheticSource(seed=5)
    start = END - pd.Timedelta(days=3)
    daily = src.fetch("KRW-BTC", "1d", start, END)
    hourly = src.fetch("KRW-BTC", "60m", start, END)
    day_open = hourly.loc[hourly.index.hour == 0, "open"]
    np.testing.assert_allclose(daily["open"].to_numpy(), day_open.reindex(daily.index).to_numpy(), rtol=1e-9)
