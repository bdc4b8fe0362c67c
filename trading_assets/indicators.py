"""TA-Lib indicators on a candle frame, with an explicit warm-up rule and flat-market handling.

Warm-up. TA-Lib's ``lookback`` is only the number of bars before the first value. Indicators
built on exponential (or Wilder) smoothing keep a memory of where the history started that decays
like ``(1 - alpha) ** bars``; they need extra bars before their values stop depending on the
history's start. :func:`warmup_bars` adds, to each indicator's TA-Lib lookback, the bars it takes
that memory to fall below ``tolerance`` (once per smoothing stage), and takes the maximum.

Flat markets. On a window without price movement or without volume, several oscillators are
undefined (0/0) and TA-Lib returns 0, which a model would read as "extremely oversold". Here:

* ``rsi_14`` / ``volume_rsi_14``: no change at all since the first bar -> 50 (neutral);
* ``mfi_14``: no money flow in the window (no typical-price change with volume) -> 50;
* ``willr_14``: highest high == lowest low over the window -> -50;
* ``stoch_k`` / ``stoch_d``: fast %K on a window with zero range -> 50, then TA-Lib's SMA
  smoothing as in ``STOCH`` (identical to ``talib.STOCH`` wherever the range is non-zero);
* ``cci_20``: zero mean deviation -> TA-Lib's 0 is kept: it already is CCI's neutral value;
* ``adx_14``: TA-Lib's value is kept (0 = no trend is the right reading of a flat market).

Bounded oscillators are clipped to their range (:data:`BOUNDS`): TA-Lib's running sums land
values like 100.00000000000006 or -4e-14 on real data, which a range check would reject.

Every replacement is counted per column in :class:`IndicatorResult.flat_replacements`.

``obv`` is On-Balance Volume anchored at 0 on the first bar of the requested span: the raw running
total depends on where the history starts, its changes do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import talib
from talib import abstract

from trading_assets.candles import CANDLE_COLUMNS
from trading_assets.cleaning import PollutionReport, coerce_numeric
from trading_assets.errors import CandleDataError
from trading_assets.timeframes import to_utc

INDICATOR_COLUMNS: tuple[str, ...] = (
    "sma_5",
    "sma_20",
    "ema_12",
    "ema_26",
    "macd",
    "macd_signal",
    "macd_hist",
    "rsi_14",
    "bb_upper_20",
    "bb_middle_20",
    "bb_lower_20",
    "atr_14",
    "stoch_k",
    "stoch_d",
    "mfi_14",
    "obv",
    "sar",
    "cci_20",
    "adx_14",
    "willr_14",
    "volume_rsi_14",
    "roc_10",
    "volume_sma_20",
)

BOUNDS: dict[str, tuple[float, float]] = {
    "rsi_14": (0.0, 100.0),
    "volume_rsi_14": (0.0, 100.0),
    "mfi_14": (0.0, 100.0),
    "stoch_k": (0.0, 100.0),
    "stoch_d": (0.0, 100.0),
    "adx_14": (0.0, 100.0),
    "willr_14": (-100.0, 0.0),
}

# (TA-Lib function, its parameters, smoothing stages as (alpha, stages)) per indicator family.
_WILDER = 1 / 14
_EMA = lambda n: 2 / (n + 1)  # noqa: E731
WARMUP_SPECS: dict[str, tuple[str, dict[str, float], list[tuple[float, int]]]] = {
    "sma_20": ("SMA", {"timeperiod": 20}, []),
    "ema_26": ("EMA", {"timeperiod": 26}, [(_EMA(26), 1)]),
    "macd": ("MACD", {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9}, [(_EMA(26), 1), (_EMA(9), 1)]),
    "rsi_14": ("RSI", {"timeperiod": 14}, [(_WILDER, 1)]),
    "bb_20": ("BBANDS", {"timeperiod": 20}, []),
    "atr_14": ("ATR", {"timeperiod": 14}, [(_WILDER, 1)]),
    "stoch": ("STOCH", {"fastk_period": 5, "slowk_period": 3, "slowd_period": 3}, []),
    "mfi_14": ("MFI", {"timeperiod": 14}, []),
    "sar": ("SAR", {"acceleration": 0.02, "maximum": 0.2}, []),
    "cci_20": ("CCI", {"timeperiod": 20}, []),
    "adx_14": ("ADX", {"timeperiod": 14}, [(_WILDER, 2)]),
    "willr_14": ("WILLR", {"timeperiod": 14}, []),
    "roc_10": ("ROC", {"timeperiod": 10}, []),
}


def _memory_bars(alpha: float, tolerance: float) -> int:
    """Bars until an exponential smoother's memory of its start falls below ``tolerance``."""
    return math.ceil(math.log(tolerance) / math.log(1 - alpha))


def indicator_warmups(tolerance: float = 1e-6) -> dict[str, int]:
    """Warm-up bars per indicator: TA-Lib's lookback plus the smoothing memory."""
    out = {}
    for name, (func, params, stages) in WARMUP_SPECS.items():
        lookback = abstract.Function(func, **params).lookback
        out[name] = lookback + sum(_memory_bars(alpha, tolerance) * n for alpha, n in stages)
    return out


def warmup_bars(tolerance: float = 1e-6) -> int:
    """Bars of history to load before the requested span so that every indicator has converged."""
    return max(indicator_warmups(tolerance).values())


@dataclass
class IndicatorResult:
    frame: pd.DataFrame
    flat_replacements: dict[str, int] = field(default_factory=dict)
    warmup_rows_trimmed: int = 0


def _rolling_count(mask: np.ndarray, window: int) -> np.ndarray:
    """Trailing count of True over ``window`` bars (fewer at the start)."""
    csum = np.cumsum(mask, dtype=np.int64)
    out = csum.copy()
    out[window:] -= csum[:-window]
    return out


def prepare_candles(
    candles: pd.DataFrame, symbol: str, timeframe: str, max_polluted_fraction: float = 0.01, ffill_limit: int = 5
) -> tuple[pd.DataFrame, PollutionReport]:
    """Candles fit for TA-Lib: float64, no holes.

    Non-numeric cells (see :func:`~trading_assets.cleaning.coerce_numeric`) are forward-filled
    from the previous bar, at most ``ffill_limit`` in a row; any value still missing stops the
    step, because TA-Lib would turn everything after it into NaN.
    """
    frame, report = coerce_numeric(candles, CANDLE_COLUMNS, symbol, timeframe, max_polluted_fraction)
    frame = frame.ffill(limit=ffill_limit)
    for col in CANDLE_COLUMNS:
        holes = frame[col].isna()
        if holes.any():
            raise CandleDataError(
                symbol,
                timeframe,
                f"{int(holes.sum())} missing value(s) that cannot be forward-filled (limit {ffill_limit})",
                col,
                [t.isoformat() for t in frame.index[holes][:5]],
            )
    return frame, report


def compute_indicators(candles: pd.DataFrame, span_start: pd.Timestamp | None = None) -> IndicatorResult:
    """Candles plus the 23 indicator columns, trimmed to rows at or after ``span_start``.

    ``candles`` must be the gap-filled canonical frame (no interior holes: TA-Lib turns everything
    after a NaN into NaN). Every value at time t uses only candles at or before t.
    """
    o, h, lo, c, v = (candles[col].to_numpy(dtype="float64") for col in ("open", "high", "low", "close", "volume"))
    n = len(c)
    first = 0 if span_start is None else int(candles.index.searchsorted(to_utc(span_start)))
    out: dict[str, np.ndarray] = {}
    flat: dict[str, np.ndarray] = {}

    out["sma_5"] = talib.SMA(c, 5)
    out["sma_20"] = talib.SMA(c, 20)
    out["ema_12"] = talib.EMA(c, 12)
    out["ema_26"] = talib.EMA(c, 26)
    out["macd"], out["macd_signal"], out["macd_hist"] = talib.MACD(c, 12, 26, 9)
    out["bb_upper_20"], out["bb_middle_20"], out["bb_lower_20"] = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    out["atr_14"] = talib.ATR(h, lo, c, 14)
    out["sar"] = talib.SAR(h, lo, 0.02, 0.2)
    out["adx_14"] = talib.ADX(h, lo, c, 14)
    out["roc_10"] = talib.ROC(c, 10)
    out["volume_sma_20"] = talib.SMA(v, 20)

    for col, series in (("rsi_14", c), ("volume_rsi_14", v)):
        values = talib.RSI(series, 14)
        moved = np.concatenate([[False], series[1:] != series[:-1]])
        flat[col] = np.cumsum(moved) == 0
        out[col] = np.where(flat[col] & ~np.isnan(values), 50.0, values)

    tp = (h + lo + c) / 3
    flows = np.concatenate([[False], (tp[1:] != tp[:-1]) & (v[1:] > 0)])
    mfi = talib.MFI(h, lo, c, v, 14)
    flat["mfi_14"] = _rolling_count(flows, 14) == 0
    out["mfi_14"] = np.where(flat["mfi_14"] & ~np.isnan(mfi), 50.0, mfi)

    willr = talib.WILLR(h, lo, c, 14)
    flat["willr_14"] = talib.MAX(h, 14) == talib.MIN(lo, 14)
    out["willr_14"] = np.where(flat["willr_14"], -50.0, willr)

    fastk = talib.STOCHF(h, lo, c, 5, 1, 0)[0]
    flat_k = talib.MAX(h, 5) == talib.MIN(lo, 5)
    fastk = np.where(flat_k, 50.0, fastk)
    out["stoch_k"] = talib.SMA(fastk, 3)
    out["stoch_d"] = talib.SMA(out["stoch_k"], 3)
    out["stoch_k"][np.isnan(out["stoch_d"])] = np.nan  # both start where STOCH starts, as in TA-Lib
    flat["stoch_k"] = flat_k

    out["cci_20"] = talib.CCI(h, lo, c, 20)
    flat["cci_20"] = talib.MAX(tp, 20) == talib.MIN(tp, 20)

    obv = talib.OBV(c, v)
    out["obv"] = obv - obv[first] if first < n else obv

    for col, (low, high) in BOUNDS.items():  # running sums round a hair past the bounds (1e-14)
        np.clip(out[col], low, high, out=out[col])

    frame = candles[list(CANDLE_COLUMNS)].copy()
    for col in INDICATOR_COLUMNS:
        frame[col] = out[col]
    frame = frame.iloc[first:]
    replacements = {col: int(mask[first:].sum()) for col, mask in flat.items()}
    return IndicatorResult(frame, replacements, first)
