import numpy as np
import pandas as pd
import pytest

from trading_assets.candles import CANDLE_COLUMNS, candle_problems, fill_candle_grid, normalize_candles
from trading_assets.errors import CandleDataError


def _frame(n=5, start="2024-01-01"):
    idx = pd.date_range(start, periods=n, freq="1min", tz="UTC", name="open_time")
    close = 100 + np.arange(n, dtype=float)
    return pd.DataFrame(
        {
            "open": close - 0.5,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": np.ones(n),
            "value": close,
        },
        index=idx,
    )


def test_normalize_keeps_good_candles_as_float64_utc():
    frame = _frame()
    frame["volume"] = frame["volume"].astype(int).astype(object)
    out = normalize_candles(frame, "KRW-BTC", "1m")
    assert list(out.columns) == list(CANDLE_COLUMNS)
    assert all(out.dtypes == "float64")
    assert str(out.index.tz) == "UTC" and out.index.name == "open_time"


@pytest.mark.parametrize(
    "column,value,message",
    [
        ("close", "KRW-BTC", "non-numeric"),
        ("high", 50.0, "high < low"),
        ("volume", -1.0, "negative volume"),
        ("open", np.nan, "missing value"),
    ],
)
def test_normalize_names_symbol_timeframe_column_and_rows(column, value, message):
    frame = _frame().astype(object)
    frame.iloc[2, frame.columns.get_loc(column)] = value
    with pytest.raises(CandleDataError) as exc:
        normalize_candles(frame, "KRW-BTC", "5m" if False else "1m")
    text = str(exc.value)
    assert "KRW-BTC 1m" in text and message in text and "2024-01-01T00:02:00" in text
    assert exc.value.column in (column, "high")


def test_duplicates_identical_collapse_conflicting_raise():
    frame = _frame()
    doubled = pd.concat([frame, frame.iloc[[1]]])
    assert len(normalize_candles(doubled, "KRW-BTC", "1m")) == 5
    conflicting = frame.iloc[[1]].copy()
    conflicting["close"] += 0.1
    with pytest.raises(CandleDataError, match="delivered twice with different values"):
        normalize_candles(pd.concat([frame, conflicting]), "KRW-BTC", "1m")


def test_off_grid_bar_rejected():
    frame = _frame()
    frame.index = frame.index + pd.Timedelta(seconds=30)
    with pytest.raises(CandleDataError, match="not on the 1m grid"):
        normalize_candles(frame, "KRW-BTC", "1m")


def test_candle_problems_lists_each_rule():
    frame = _frame()
    frame.loc[frame.index[1], "low"] = frame["close"].iloc[1] + 0.1  # low above close
    names = {p.name: p.count for p in candle_problems(frame)}
    assert names == {"low_above_open_close": 1}


def test_fill_grid_makes_missing_bars_explicit():
    frame = _frame(10).drop(index=_frame(10).index[[3, 4, 7]])
    start = pd.Timestamp("2023-12-31 23:58", tz="UTC")
    filled = fill_candle_grid(frame, "1m", start, pd.Timestamp("2024-01-01 00:10", tz="UTC"))
    out = filled.frame
    assert len(out) == 10 and filled.filled == 3 and filled.leading_missing == 2
    gap = out.iloc[3]
    assert gap["open"] == gap["high"] == gap["low"] == gap["close"] == frame["close"].iloc[2]
    assert gap["volume"] == 0 and gap["value"] == 0
    assert list(np.flatnonzero(filled.filled_mask)) == [3, 4, 7]
    assert out.drop(index=out.index[[3, 4, 7]]).equals(frame)  # real candles untouched
