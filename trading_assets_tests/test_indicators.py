import numpy as np
import pandas as pd
import pytest
import talib

from trading_assets.candles import fill_candle_grid
from trading_assets.errors import CandleDataError
from trading_assets.indicators import (
    compute_indicators,
    indicator_bounds,
    indicator_names,
    indicator_warmups,
    prepare_candles,
    warmup_bars,
)
from trading_assets.partition import Partition
from trading_assets.sources import SyntheticSource
from trading_assets_tests.conftest import END


@pytest.fixture(scope="module")
def candles():
    src = SyntheticSource(seed=9, flat_rate=0.0)
    raw = src.fetch("KRW-BTC", "5m", END - pd.Timedelta(days=10), END)
    return fill_candle_grid(raw, "5m", raw.index[0], END).frame


def _arrays(c):
    return [c[k].to_numpy() for k in ("open", "high", "low", "close", "volume")]


def test_all_23_indicators_named_as_designed(candles):
    assert len(indicator_names()) == 23
    out = compute_indicators(candles).frame
    assert list(out.columns[6:]) == list(indicator_names())
    assert (out.dtypes == "float64").all()


def test_each_indicator_equals_talib_directly(candles):
    o, h, lo, c, v = _arrays(candles)
    out = compute_indicators(candles).frame
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    slowk, slowd = talib.STOCH(h, lo, c, 5, 3, 0, 3, 0)
    expected = {
        "sma_5": talib.SMA(c, 5),
        "sma_20": talib.SMA(c, 20),
        "ema_12": talib.EMA(c, 12),
        "ema_26": talib.EMA(c, 26),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": hist,
        "rsi_14": talib.RSI(c, 14),
        "bb_upper_20": upper,
        "bb_middle_20": middle,
        "bb_lower_20": lower,
        "atr_14": talib.ATR(h, lo, c, 14),
        "stoch_k": slowk,
        "stoch_d": slowd,
        "mfi_14": talib.MFI(h, lo, c, v, 14),
        "obv": talib.OBV(c, v) - talib.OBV(c, v)[0],
        "sar": talib.SAR(h, lo, 0.02, 0.2),
        "cci_20": talib.CCI(h, lo, c, 20),
        "adx_14": talib.ADX(h, lo, c, 14),
        "willr_14": talib.WILLR(h, lo, c, 14),
        "volume_rsi_14": talib.RSI(v, 14),
        "roc_10": talib.ROC(c, 10),
        "volume_sma_20": talib.SMA(v, 20),
    }
    assert set(expected) == set(indicator_names())
    for col, values in expected.items():
        np.testing.assert_allclose(out[col].to_numpy(), values, rtol=1e-10, equal_nan=True, err_msg=col)


def test_flat_market_gives_neutral_values_not_zero():
    idx = pd.date_range("2024-01-01", periods=120, freq="1min", tz="UTC", name="open_time")
    price = np.r_[np.linspace(100, 110, 60), np.full(60, 110.0)]
    volume = np.r_[np.linspace(1, 2, 60), np.zeros(60)]
    frame = pd.DataFrame(
        {"open": price, "high": price, "low": price, "close": price, "volume": volume, "value": volume * price},
        index=idx,
    )
    result = compute_indicators(frame)
    tail = result.frame.iloc[-30:]
    assert (tail["mfi_14"] == 50).all() and (tail["willr_14"] == -50).all()
    assert (tail["stoch_k"] == 50).all() and (tail["stoch_d"] == 50).all()
    assert (tail["cci_20"] == 0).all()
    assert not tail[list(indicator_names())].isna().any().any()
    assert result.flat_replacements["willr_14"] >= 30 and result.flat_replacements["mfi_14"] >= 30
    # a series that never moved has an undefined RSI: neutral
    still = frame.assign(volume=1.0)
    assert (compute_indicators(still).frame["volume_rsi_14"].iloc[20:] == 50).all()
    # TA-Lib itself answers 0 (extremely oversold) on those windows
    assert (talib.WILLR(price, price, price, 14)[-30:] == 0).all()


def test_warmup_comes_from_talib_lookback_plus_smoothing_memory():
    warm = indicator_warmups()
    assert warm["adx_14"] == 27 + 2 * 187 and warm["rsi_14"] == 14 + 187
    assert warmup_bars() == max(warm.values()) == warm["adx_14"]
    assert warmup_bars(1e-3) < warmup_bars(1e-6)


def test_values_in_span_do_not_depend_on_extra_history():
    src = SyntheticSource(seed=1)
    span_start = END - pd.Timedelta(days=2)
    w = warmup_bars()
    short_start = span_start - w * pd.Timedelta(minutes=15)
    long_start = span_start - 3 * w * pd.Timedelta(minutes=15)
    frames = []
    for start in (short_start, long_start):
        raw = src.fetch("KRW-ETH", "15m", start, END)
        frames.append(compute_indicators(fill_candle_grid(raw, "15m", start, END).frame, span_start).frame)
    a, b = frames
    assert a.index[0] == span_start and a.index.equals(b.index)
    assert not a.isna().any().any()
    scale = b.abs().max()
    assert ((a - b).abs().max() / scale).max() < 1e-5


def test_prepare_candles_coerces_few_strings_and_rejects_many(candles):
    polluted = candles.astype({"close": object})
    polluted.iloc[100, polluted.columns.get_loc("close")] = "KRW-BTC"
    polluted["symbol"] = "KRW-BTC"
    clean, report = prepare_candles(polluted, Partition("KRW-BTC", "5m"))
    assert report.coerced == {"close": 1} and "symbol" in report.dropped_columns
    assert clean["close"].iloc[100] == candles["close"].iloc[99]
    polluted["close"] = "KRW-BTC"
    with pytest.raises(CandleDataError, match=r"KRW-BTC 5m column 'close': \d+ of \d+ values are not numeric"):
        prepare_candles(polluted, Partition("KRW-BTC", "5m"))


def test_bounded_oscillators_stay_in_range_on_tiny_choppy_prices():
    """Real 1m data at 0.0016 per unit pushed TA-Lib's running SMAs to 100.00000000000006."""
    rng = np.random.default_rng(5)
    n = 20_000
    steps = rng.choice([-1, 0, 0, 0, 1], size=n) * 1e-8
    close = 0.0016 + np.cumsum(steps)
    high = close + rng.choice([0, 0, 1e-8], size=n)
    low = close - rng.choice([0, 0, 1e-8], size=n)
    idx = pd.date_range("2017-11-05", periods=n, freq="1min", tz="UTC", name="open_time")
    volume = rng.exponential(50, n) * (rng.random(n) > 0.2)
    frame = pd.DataFrame(
        {"open": close, "high": high, "low": low, "close": close, "volume": volume, "value": volume * close}, index=idx
    )
    out = compute_indicators(frame).frame
    for col, (low_bound, high_bound) in indicator_bounds().items():
        values = out[col].dropna()
        assert values.between(low_bound, high_bound).all(), col
