"""TA-Lib indicators on a candle frame, with an explicit warm-up rule and flat-market handling.

Each indicator is declared once, in :data:`INDICATORS`: its columns (with a description and value
rules), its TA-Lib function and parameters, its smoothing stages. The column list, the warm-up,
the clipping and the Pandera schema of the ``indicators`` asset all derive from that registry.

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

Bounded oscillators are clipped to their range (``Column.bounds``): TA-Lib's running sums land
values like 100.00000000000006 or -4e-14 on real data, which a range check would reject.

Every replacement is counted per column in :class:`IndicatorResult.flat_replacements`.

``obv`` is On-Balance Volume anchored at 0 on the first bar of the requested span: the raw running
total depends on where the history starts, its changes do not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import talib
from talib import abstract

from trading_assets.candles import CANDLE_COLUMNS
from trading_assets.cleaning import PollutionReport, coerce_numeric
from trading_assets.errors import CandleDataError
from trading_assets.partition import Partition
from trading_assets.timeframes import to_utc


@dataclass(frozen=True)
class Column:
    """One output column: what it means and the values it may take (the Pandera schema checks them)."""

    description: str
    bounds: tuple[float, float] | None = None  # a bounded oscillator: clipped into the range, then checked
    ge: float | None = None  # value rules of an unbounded column (schema only)
    gt: float | None = None


@dataclass
class Bars:
    """What an indicator reads: float64 candle arrays and the first row of the requested span.

    An indicator that replaces undefined values on flat windows records its mask in ``flat``,
    keyed by column (counted in :attr:`IndicatorResult.flat_replacements`).
    """

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    first: int
    flat: dict[str, np.ndarray] = field(default_factory=dict)

    @cached_property
    def typical(self) -> np.ndarray:
        return (self.high + self.low + self.close) / 3


@dataclass(frozen=True)
class Indicator:
    """One indicator, declared once: its columns, its TA-Lib function and parameters, its smoothing.

    ``function`` and ``params`` give TA-Lib's lookback (the start of the warm-up); ``smoothing`` lists
    the exponential smoothers inside as ``(alpha, stages)``, whose memory of the history's start
    lengthens the warm-up. Without ``compute`` the columns are TA-Lib's outputs of ``function`` on
    ``inputs``, in order; ``compute`` replaces that call (flat-market handling, anchoring).
    """

    function: str
    params: dict[str, float]
    columns: dict[str, Column]
    inputs: tuple[str, ...] = ("close",)
    smoothing: tuple[tuple[float, int], ...] = ()
    compute: Callable[[Bars, Indicator], tuple[np.ndarray, ...]] | None = None
    anchored: bool = False  # a running total anchored at 0 on the first kept row: not start-invariant as it is

    def warmup(self, tolerance: float) -> int:
        """TA-Lib's lookback plus the bars until each smoother's memory of the start falls below ``tolerance``."""
        lookback = abstract.Function(self.function, **self.params).lookback
        return lookback + sum(_memory_bars(alpha, tolerance) * n for alpha, n in self.smoothing)

    def values(self, bars: Bars) -> dict[str, np.ndarray]:
        """Column name -> float64 values over every bar."""
        if self.compute is not None:
            out = self.compute(bars, self)
        else:
            out = getattr(talib, self.function)(*(getattr(bars, name) for name in self.inputs), **self.params)
        return dict(zip(self.columns, out if isinstance(out, tuple) else (out,), strict=True))

    @property
    def first_column(self) -> str:
        """The column a flat-window mask is counted under."""
        return next(iter(self.columns))


def _memory_bars(alpha: float, tolerance: float) -> int:
    """Bars until an exponential smoother's memory of its start falls below ``tolerance``."""
    return math.ceil(math.log(tolerance) / math.log(1 - alpha))


def _rolling_count(mask: np.ndarray, window: int) -> np.ndarray:
    """Trailing count of True over ``window`` bars (fewer at the start)."""
    csum = np.cumsum(mask, dtype=np.int64)
    out = csum.copy()
    out[window:] -= csum[:-window]
    return out


def _neutral_rsi(bars: Bars, ind: Indicator) -> tuple[np.ndarray]:
    """RSI, 50 while the series has not changed since the first bar (TA-Lib says 0)."""
    series = getattr(bars, ind.inputs[0])
    values = talib.RSI(series, **ind.params)
    moved = np.concatenate([[False], series[1:] != series[:-1]])
    flat = bars.flat[ind.first_column] = np.cumsum(moved) == 0
    return (np.where(flat & ~np.isnan(values), 50.0, values),)


def _neutral_stoch(bars: Bars, ind: Indicator) -> tuple[np.ndarray, np.ndarray]:
    """STOCH with fast %K = 50 on a window with zero range, smoothed as TA-Lib's STOCH (SMA)."""
    window = ind.params["fastk_period"]
    fastk = talib.STOCHF(bars.high, bars.low, bars.close, window, 1, 0)[0]
    flat = bars.flat[ind.first_column] = talib.MAX(bars.high, window) == talib.MIN(bars.low, window)
    slow_k = talib.SMA(np.where(flat, 50.0, fastk), ind.params["slowk_period"])
    slow_d = talib.SMA(slow_k, ind.params["slowd_period"])
    slow_k[np.isnan(slow_d)] = np.nan  # both start where STOCH starts, as in TA-Lib
    return slow_k, slow_d


def _neutral_mfi(bars: Bars, ind: Indicator) -> tuple[np.ndarray]:
    """MFI, 50 when no bar of the window moved the typical price with volume."""
    tp = bars.typical
    flows = np.concatenate([[False], (tp[1:] != tp[:-1]) & (bars.volume[1:] > 0)])
    mfi = talib.MFI(bars.high, bars.low, bars.close, bars.volume, **ind.params)
    flat = bars.flat[ind.first_column] = _rolling_count(flows, ind.params["timeperiod"]) == 0
    return (np.where(flat & ~np.isnan(mfi), 50.0, mfi),)


def _neutral_willr(bars: Bars, ind: Indicator) -> tuple[np.ndarray]:
    """Williams %R, -50 when the window's highest high equals its lowest low."""
    window = ind.params["timeperiod"]
    flat = bars.flat[ind.first_column] = talib.MAX(bars.high, window) == talib.MIN(bars.low, window)
    return (np.where(flat, -50.0, talib.WILLR(bars.high, bars.low, bars.close, **ind.params)),)


def _counted_cci(bars: Bars, ind: Indicator) -> tuple[np.ndarray]:
    """TA-Lib's CCI (its 0 on a flat window is already neutral); flat windows are counted."""
    window = ind.params["timeperiod"]
    bars.flat[ind.first_column] = talib.MAX(bars.typical, window) == talib.MIN(bars.typical, window)
    return (talib.CCI(bars.high, bars.low, bars.close, **ind.params),)


def _anchored_obv(bars: Bars, ind: Indicator) -> tuple[np.ndarray]:
    """OBV anchored at 0 on the first bar of the requested span."""
    obv = talib.OBV(bars.close, bars.volume)
    return (obv - obv[bars.first] if bars.first < len(obv) else obv,)


_WILDER = 1 / 14
_PERCENT = (0, 100)  # ints: the schema's rule names read as before, e.g. less_than_or_equal_to(100)


def _ema(n: int) -> float:
    return 2 / (n + 1)


# Every indicator, in column order. Adding one is one entry here: the asset, indicator_names(), the warm-up,
# the clipping and the Pandera schema (trading_assets.schemas.indicators_schema) follow from it.
INDICATORS: dict[str, Indicator] = {
    "sma_5": Indicator("SMA", {"timeperiod": 5}, {"sma_5": Column("5-bar simple moving average of close")}),
    "sma_20": Indicator("SMA", {"timeperiod": 20}, {"sma_20": Column("20-bar simple moving average of close")}),
    "ema_12": Indicator(
        "EMA",
        {"timeperiod": 12},
        {"ema_12": Column("12-bar exponential moving average of close")},
        smoothing=((_ema(12), 1),),
    ),
    "ema_26": Indicator(
        "EMA",
        {"timeperiod": 26},
        {"ema_26": Column("26-bar exponential moving average of close")},
        smoothing=((_ema(26), 1),),
    ),
    "macd": Indicator(
        "MACD",
        {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9},
        {
            "macd": Column("EMA12 - EMA26 of close"),
            "macd_signal": Column("9-bar EMA of macd"),
            "macd_hist": Column("macd - macd_signal"),
        },
        smoothing=((_ema(26), 1), (_ema(9), 1)),
    ),
    "rsi_14": Indicator(
        "RSI",
        {"timeperiod": 14},
        {"rsi_14": Column("14-bar Wilder RSI of close; 50 before the first change", bounds=_PERCENT)},
        smoothing=((_WILDER, 1),),
        compute=_neutral_rsi,
    ),
    "bb_20": Indicator(
        "BBANDS",
        {"timeperiod": 20, "nbdevup": 2.0, "nbdevdn": 2.0, "matype": 0},
        {
            "bb_upper_20": Column("Bollinger upper band: sma_20 + 2 std"),
            "bb_middle_20": Column("Bollinger middle band: sma_20"),
            "bb_lower_20": Column("Bollinger lower band: sma_20 - 2 std"),
        },
    ),
    "atr_14": Indicator(
        "ATR",
        {"timeperiod": 14},
        {"atr_14": Column("14-bar Wilder average true range", ge=0)},
        inputs=("high", "low", "close"),
        smoothing=((_WILDER, 1),),
    ),
    "stoch": Indicator(
        "STOCH",
        {"fastk_period": 5, "slowk_period": 3, "slowd_period": 3},
        {
            "stoch_k": Column("slow stochastic %K (5, 3); 50 on a window with zero range", bounds=_PERCENT),
            "stoch_d": Column("slow stochastic %D: 3-bar SMA of stoch_k", bounds=_PERCENT),
        },
        compute=_neutral_stoch,
    ),
    "mfi_14": Indicator(
        "MFI",
        {"timeperiod": 14},
        {"mfi_14": Column("14-bar money flow index; 50 without money flow", bounds=_PERCENT)},
        compute=_neutral_mfi,
    ),
    "obv": Indicator(
        "OBV",
        {},
        {"obv": Column("on-balance volume, 0 at the first bar of the requested span")},
        compute=_anchored_obv,
        anchored=True,
    ),
    "sar": Indicator(
        "SAR",
        {"acceleration": 0.02, "maximum": 0.2},
        {"sar": Column("parabolic SAR (0.02, 0.2)", gt=0)},
        inputs=("high", "low"),
    ),
    "cci_20": Indicator(
        "CCI",
        {"timeperiod": 20},
        {"cci_20": Column("20-bar commodity channel index; 0 on a flat window")},
        compute=_counted_cci,
    ),
    "adx_14": Indicator(
        "ADX",
        {"timeperiod": 14},
        {"adx_14": Column("14-bar average directional index (trend strength)", bounds=_PERCENT)},
        inputs=("high", "low", "close"),
        smoothing=((_WILDER, 2),),
    ),
    "willr_14": Indicator(
        "WILLR",
        {"timeperiod": 14},
        {"willr_14": Column("14-bar Williams %R; -50 on a window with zero range", bounds=(-100, 0))},
        compute=_neutral_willr,
    ),
    "volume_rsi_14": Indicator(
        "RSI",
        {"timeperiod": 14},
        {"volume_rsi_14": Column("14-bar Wilder RSI of volume; 50 before the first change", bounds=_PERCENT)},
        inputs=("volume",),
        smoothing=((_WILDER, 1),),
        compute=_neutral_rsi,
    ),
    "roc_10": Indicator("ROC", {"timeperiod": 10}, {"roc_10": Column("10-bar rate of change of close, in %")}),
    "volume_sma_20": Indicator(
        "SMA",
        {"timeperiod": 20},
        {"volume_sma_20": Column("20-bar simple moving average of volume", ge=0)},
        inputs=("volume",),
    ),
}


def indicator_columns() -> dict[str, Column]:
    """Every registered indicator column, in order, with its declaration."""
    return {name: column for ind in INDICATORS.values() for name, column in ind.columns.items()}


def indicator_names() -> tuple[str, ...]:
    """The registered indicators' column names, in order (read from the registry when asked)."""
    return tuple(indicator_columns())


def indicator_bounds() -> dict[str, tuple[float, float]]:
    """The bounded indicator columns' ranges, as declared."""
    return {name: column.bounds for name, column in indicator_columns().items() if column.bounds is not None}


def indicator_warmups(tolerance: float = 1e-6) -> dict[str, int]:
    """Warm-up bars per indicator: TA-Lib's lookback plus the smoothing memory."""
    return {name: ind.warmup(tolerance) for name, ind in INDICATORS.items()}


def warmup_bars(tolerance: float = 1e-6) -> int:
    """Bars of history to load before the requested span so that every indicator has converged."""
    return max(indicator_warmups(tolerance).values())


@dataclass
class IndicatorResult:
    frame: pd.DataFrame
    flat_replacements: dict[str, int] = field(default_factory=dict)
    warmup_rows_trimmed: int = 0


CANDLE_FFILL_LIMIT = 5  # non-numeric candle cells forward filled in a row, at most


def prepare_candles(
    candles: pd.DataFrame,
    partition: Partition,
    max_polluted_fraction: float = 0.01,
    ffill_limit: int = CANDLE_FFILL_LIMIT,
) -> tuple[pd.DataFrame, PollutionReport]:
    """Candles fit for TA-Lib: float64, no holes.

    Non-numeric cells (see :func:`~trading_assets.cleaning.coerce_numeric`) are forward-filled
    from the previous bar, at most ``ffill_limit`` in a row; any value still missing stops the
    step, because TA-Lib would turn everything after it into NaN.
    """
    symbol, timeframe = partition.symbol, partition.timeframe
    frame, report = coerce_numeric(candles, CANDLE_COLUMNS, partition, max_polluted_fraction)
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


def compute_indicators(
    candles: pd.DataFrame, span_start: pd.Timestamp | None = None, trim: bool = True
) -> IndicatorResult:
    """Candles plus every registered indicator column, trimmed to rows at or after ``span_start``.

    ``trim=False`` keeps the rows before ``span_start`` too (anchored columns still start at it).

    ``candles`` must be the gap-filled canonical frame (no interior holes: TA-Lib turns everything
    after a NaN into NaN). Every value at time t uses only candles at or before t.
    """
    first = 0 if span_start is None else int(candles.index.searchsorted(to_utc(span_start)))
    bars = Bars(*(candles[col].to_numpy(dtype="float64") for col in ("open", "high", "low", "close", "volume")), first)
    frame = candles[list(CANDLE_COLUMNS)].copy()
    for ind in INDICATORS.values():
        for col, values in ind.values(bars).items():
            if (limits := ind.columns[col].bounds) is not None:  # running sums round a hair past the bounds (1e-14)
                np.clip(values, *limits, out=values)
            frame[col] = values
    if trim:
        frame = frame.iloc[first:]
    replacements = {col: int(mask[first:].sum()) for col, mask in bars.flat.items()}
    return IndicatorResult(frame, replacements, first)


def anchored_columns() -> list[str]:
    """The columns of the registered anchored indicators (running totals restarted at 0 on the first kept row)."""
    return [c for ind in INDICATORS.values() if ind.anchored for c in ind.columns]


def extend_indicators(
    previous: pd.DataFrame, candles: pd.DataFrame, keep_from: pd.Timestamp | None, resume: pd.Timestamp, history: int
) -> IndicatorResult | None:
    """What :func:`compute_indicators` gives for ``candles`` from ``keep_from`` on, computing only the rows from
    ``resume`` on (from ``history`` candles before it: every indicator is start-invariant within the warm-up
    tolerance) and keeping ``previous``' rows before it. Anchored running totals continue ``previous``' level
    and move to 0 on the first kept row. None when ``previous`` has no row before ``resume`` to continue from."""
    from trading_assets.incremental import input_rows_from, splice

    first = input_rows_from(candles.index, resume, history)
    before = previous.index[previous.index < resume]
    if before.empty or before[-1] < candles.index[first] or (keep_from is not None and before[-1] < keep_from):
        return None
    tail = compute_indicators(candles.iloc[first:], resume, trim=False)
    anchored = anchored_columns()
    for column in anchored:  # continue the previous running total from the last row both have
        tail.frame[column] += previous.at[before[-1], column] - tail.frame.at[before[-1], column]
    frame = splice(previous, tail.frame, keep_from, resume)
    for column in anchored:
        frame[column] -= frame[column].iloc[0]
    skipped = 0 if keep_from is None else int(candles.index.searchsorted(keep_from))
    return IndicatorResult(frame, tail.flat_replacements, skipped)
