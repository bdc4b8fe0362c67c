"""From indicators to a model-ready float32 matrix: pollution, derivation, gaps, outliers, scaling.

Every step is causal: the value of a feature at time t uses indicator rows at or before t only.

1. Dtype pollution (:mod:`trading_assets.cleaning`): non-numeric cells in expected columns
   become missing and are counted; above ``max_polluted_fraction`` of a column the step stops
   with an error naming symbol, timeframe, column and examples. Unexpected columns are dropped
   and reported.
2. Derivation: stationary, scale-free features (log returns, prices relative to close,
   oscillators as they are, OBV as a 20-bar flow ratio).
3. Missing values (coerced cells, 0/0): forward fill with a limit; never a backward fill.
   Rows still incomplete after that are dropped and counted.
4. Outliers: each column is clipped to ``median +- k x scale`` (scale: MAD-sigma, floored by the
   mean absolute deviation, see :func:`clip_matrix`) of the previous block of ``clip_window``
   bars, blocks aligned to absolute time (the Unix epoch), not to the first loaded row: a value
   does not depend on where the loaded history starts once :func:`lead_in_bars` precede it.

Feature sets are declared in :data:`FEATURE_SETS` (named, selected by ``FeatureConfig.feature_set``);
each :class:`Feature` is a function of the candle and indicator columns, which it reads by name.
5. No scaling here: the model fits its scaler on its own training span and carries it
   (:mod:`trading_assets.training.bundle`), so a refresh that extends the span changes no stored row.
6. ``target``: the one-bar log return of the trade decided at t's close, under the execution model
   (:func:`trading_assets.execution.trade_returns`; by default ``log(open[t+2] / open[t+1])``: the
   label is the trade). The only column that looks ahead, by definition; the last rows have none and
   are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import talib

from trading_assets.candles import CANDLE_COLUMNS
from trading_assets.cleaning import PollutionReport, coerce_numeric
from trading_assets.errors import CandleDataError
from trading_assets.execution import Execution, trade_returns
from trading_assets.indicators import indicator_names
from trading_assets.labels import TARGET
from trading_assets.partition import Partition
from trading_assets.timeframes import get_timeframe

MAD_TO_SIGMA = 1.4826
MEAN_AD_TO_SIGMA = 1.2533  # sqrt(pi / 2): mean absolute deviation -> sigma for a normal distribution


def input_columns() -> tuple[str, ...]:
    """What a feature may read: the candle columns and the registered indicators' columns."""
    return (*CANDLE_COLUMNS, *indicator_names())


DEFAULT_FEATURE_SET = "default"  # the feature set of a run that names none


@dataclass(frozen=True)
class FeatureConfig:
    ffill_limit: int = 5
    clip_window: int = 240
    clip_k: float = 6.0
    max_polluted_fraction: float = 0.01
    feature_set: str = DEFAULT_FEATURE_SET


@dataclass
class FeatureReport:
    """What preprocessing did, per column."""

    pollution: PollutionReport = field(default_factory=PollutionReport)
    non_finite: dict[str, int] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)
    clipped: dict[str, int] = field(default_factory=dict)
    rows_dropped: int = 0


@dataclass
class FeatureResult:
    frame: pd.DataFrame
    report: FeatureReport


def _diff(a: np.ndarray, lag: int) -> np.ndarray:
    out = np.full_like(a, np.nan)
    out[lag:] = a[lag:] - a[:-lag]
    return out


Columns = dict[str, np.ndarray]


@dataclass(frozen=True)
class Feature:
    """One model input: ``fn`` maps the candle and indicator columns (float64 arrays by name) to a column.

    It must be trailing (row t reads rows <= t only): the look-ahead check on ``features`` fails otherwise.
    """

    name: str
    fn: Callable[[Columns], np.ndarray]
    description: str = ""


def _log_close(c: Columns) -> np.ndarray:
    return np.log(c["close"])


def _rel(column: str) -> Callable[[Columns], np.ndarray]:
    return lambda c: c[column] / c["close"] - 1


def _per_close(column: str) -> Callable[[Columns], np.ndarray]:
    return lambda c: c[column] / c["close"]


def _same(column: str) -> Callable[[Columns], np.ndarray]:
    return lambda c: c[column]


def _bb_position(c: Columns) -> np.ndarray:
    width = c["bb_upper_20"] - c["bb_lower_20"]
    return np.where(width > 0, (c["close"] - c["bb_lower_20"]) / width, 0.5)


def _obv_flow(c: Columns) -> np.ndarray:
    vol_sum_20 = talib.SUM(c["volume"], 20)
    flow = np.where(vol_sum_20 > 0, _diff(c["obv"], 20) / vol_sum_20, 0.0)
    flow[np.isnan(vol_sum_20)] = np.nan
    return flow


DEFAULT_FEATURES: tuple[Feature, ...] = (
    Feature("ret_1", lambda c: _diff(_log_close(c), 1), "log return over 1 bar"),
    Feature("ret_5", lambda c: _diff(_log_close(c), 5), "log return over 5 bars"),
    Feature("ret_20", lambda c: _diff(_log_close(c), 20), "log return over 20 bars"),
    Feature("range_hl", lambda c: np.log(c["high"] / c["low"]), "log high/low range"),
    Feature("body", lambda c: np.log(c["close"] / c["open"]), "log close/open"),
    Feature("log_volume", lambda c: np.log1p(c["volume"]), "log(1 + volume)"),
    Feature("volume_ratio", lambda c: c["volume"] / c["volume_sma_20"], "volume / its 20-bar SMA"),
    Feature("sma_5_rel", _rel("sma_5"), "SMA 5 relative to close"),
    Feature("sma_20_rel", _rel("sma_20"), "SMA 20 relative to close"),
    Feature("ema_12_rel", _rel("ema_12"), "EMA 12 relative to close"),
    Feature("ema_26_rel", _rel("ema_26"), "EMA 26 relative to close"),
    Feature("macd_rel", _per_close("macd"), "MACD / close"),
    Feature("macd_signal_rel", _per_close("macd_signal"), "MACD signal / close"),
    Feature("macd_hist_rel", _per_close("macd_hist"), "MACD histogram / close"),
    Feature("rsi_14", _same("rsi_14"), "RSI 14"),
    Feature("bb_position", _bb_position, "close within the Bollinger band (0 lower, 1 upper)"),
    Feature("bb_width", lambda c: (c["bb_upper_20"] - c["bb_lower_20"]) / c["bb_middle_20"], "Bollinger width"),
    Feature("atr_rel", _per_close("atr_14"), "ATR 14 / close"),
    Feature("stoch_k", _same("stoch_k"), "stochastic %K"),
    Feature("stoch_d", _same("stoch_d"), "stochastic %D"),
    Feature("mfi_14", _same("mfi_14"), "money flow index 14"),
    Feature("obv_flow_20", _obv_flow, "20-bar OBV change / 20-bar volume"),
    Feature("sar_rel", _rel("sar"), "parabolic SAR relative to close"),
    Feature("cci_20", _same("cci_20"), "CCI 20"),
    Feature("adx_14", _same("adx_14"), "ADX 14"),
    Feature("willr_14", _same("willr_14"), "Williams %R 14"),
    Feature("volume_rsi_14", _same("volume_rsi_14"), "RSI 14 of volume"),
    Feature("roc_10", _same("roc_10"), "rate of change 10"),
)


def _volatility_20(c: Columns) -> np.ndarray:
    return talib.STDDEV(_diff(_log_close(c), 1), 20)


def _candle_volume_ratio(c: Columns) -> np.ndarray:
    return c["volume"] / talib.SMA(c["volume"], 20)


def _pick(*names: str) -> tuple[Feature, ...]:
    by_name = {f.name: f for f in DEFAULT_FEATURES}
    return tuple(by_name[n] for n in names)


# What a coarser timeframe lends: computed on its indicators, joined as of each coarser bar's close.
COARSER_FEATURES: tuple[Feature, ...] = _pick(
    "ret_1", "ret_5", "range_hl", "volume_ratio", "macd_hist_rel", "rsi_14", "bb_position", "atr_rel", "adx_14"
)

# What a reference symbol lends: computed on its candles of the same timeframe, joined bar by bar.
REFERENCE_FEATURES: tuple[Feature, ...] = (
    *_pick("ret_1", "ret_5", "ret_20", "range_hl"),
    Feature("volatility_20", _volatility_20, "std of the 1-bar log return over 20 bars"),
    Feature("volume_ratio", _candle_volume_ratio, "volume / its 20-bar SMA"),
)

# The coarser timeframes a multi-timeframe set joins to a timeframe's bars, nearest first.
COARSER: dict[str, tuple[str, ...]] = {
    "1m": ("15m", "60m"),
    "5m": ("60m", "240m"),
    "15m": ("60m", "240m"),
    "30m": ("240m", "1d"),
    "60m": ("240m", "1d"),
    "240m": ("1d",),
    "1d": (),
}


@dataclass(frozen=True)
class FeatureSet:
    """A named set of model inputs: ``own`` features of the partition's candles and indicators, and features
    other partitions lend it, each joined as of that partition's bar close (a bar is visible once it closed):

    * ``coarser``: computed on the indicators of the ``levels`` nearest coarser timeframes of the same symbol
      (:data:`COARSER`), named ``htf1_<name>``, ``htf2_<name>``, ...;
    * ``reference``: computed on the candles of the market's reference symbol (``TRADING_REFERENCE_SYMBOLS``, one
      per quote currency) of the same timeframe, named ``ref_<name>``.
    """

    own: tuple[Feature, ...]
    coarser: tuple[Feature, ...] = ()
    levels: int = 0
    reference: tuple[Feature, ...] = ()
    description: str = ""

    def outputs(self) -> tuple[Feature, ...]:
        """Every column of the set, named as in the features frame."""
        lent = [
            Feature(f"htf{level}_{f.name}", f.fn, f"{f.description}, of the coarser timeframe {level} (closed bars)")
            for level in range(1, self.levels + 1)
            for f in self.coarser
        ]
        lent += [Feature(f"ref_{f.name}", f.fn, f"{f.description}, of the reference symbol") for f in self.reference]
        return (*self.own, *lent)

    def coarser_timeframes(self, partition: Partition) -> tuple[str, ...]:
        """The coarser timeframes this set joins to ``partition``'s bars (none for a set without them)."""
        if not self.levels:
            return ()
        timeframe = partition.timeframe
        ladder = COARSER[timeframe]
        if len(ladder) < self.levels:
            served = ", ".join(t for t, c in COARSER.items() if len(c) >= self.levels)
            raise CandleDataError(
                partition.symbol,
                timeframe,
                f"{timeframe} has {len(ladder)} coarser timeframe(s) ({', '.join(ladder) or 'none'}), the feature set "
                f"needs {self.levels}; timeframes it serves: {served}",
            )
        return ladder[: self.levels]

    def reads(self, partition: Partition, references: tuple[str, ...]) -> list[tuple[str, Partition]]:
        """The other partitions this set reads for ``partition``, each with the asset it reads of it: the coarser
        timeframes' ``indicators``, the reference symbol's ``raw_candles`` (one of ``references``). Raises
        CandleDataError for a partition it does not serve."""
        read = [("indicators", Partition(partition.symbol, tf)) for tf in self.coarser_timeframes(partition)]
        if self.reference:
            read.append(("raw_candles", Partition(reference_for(partition, references), partition.timeframe)))
        return read


# The named feature sets; a run picks one with FeatureConfig.feature_set. A plain tuple declares own features only.
FEATURE_SETS: dict[str, FeatureSet | tuple[Feature, ...]] = {
    DEFAULT_FEATURE_SET: FeatureSet(DEFAULT_FEATURES, description="the partition's own candles and indicators"),
    "multi_timeframe": FeatureSet(
        DEFAULT_FEATURES,
        coarser=COARSER_FEATURES,
        levels=2,
        description="default + the two nearest coarser timeframes of the same symbol (for 5m: 60m and 240m)",
    ),
    "cross_asset": FeatureSet(
        DEFAULT_FEATURES,
        reference=REFERENCE_FEATURES,
        description="default + the reference symbol of the market's quote currency (KRW-BTC for KRW markets)",
    ),
}


def feature_set(name: str) -> FeatureSet:
    """The feature set ``name``, validated: unique column names, none of them the label."""
    if name not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {name!r}; expected one of {', '.join(FEATURE_SETS)}")
    declared = FEATURE_SETS[name]
    features = declared if isinstance(declared, FeatureSet) else FeatureSet(tuple(declared))
    names = [f.name for f in features.outputs()]
    if len(set(names)) != len(names) or TARGET in names:
        raise ValueError(f"feature set {name!r} repeats a name or uses {TARGET!r}: {names}")
    return features


def feature_columns(name: str = DEFAULT_FEATURE_SET) -> list[str]:
    return [f.name for f in feature_set(name).outputs()]


COARSER_JOIN_BARS = 2  # a coarser bar joins the rows closing less than two of its bars after it: one may be missing


@dataclass(frozen=True)
class LentFrame:
    """One frame another partition lends: a coarser timeframe's indicators, or the reference symbol's candles."""

    name: str
    timeframe: str
    frame: pd.DataFrame
    reference: bool

    @property
    def columns(self) -> tuple[str, ...]:
        return CANDLE_COLUMNS if self.reference else input_columns()

    @property
    def join_age(self) -> int:
        """How old a bar may be to join a row, in its own bars (0: only the bar closing with the row)."""
        return 0 if self.reference else COARSER_JOIN_BARS


@dataclass(frozen=True)
class FeatureContext:
    """The other partitions a feature set reads (see :class:`FeatureSet`): the indicators of coarser timeframes
    of the same symbol, nearest first, and the reference symbol's candles of the same timeframe."""

    coarser: tuple[tuple[str, pd.DataFrame], ...] = ()  # (timeframe, indicators)
    reference: tuple[str, pd.DataFrame] | None = None  # (symbol, raw candles)

    @classmethod
    def from_reads(cls, reads: list[tuple[str, Partition]], frames: list[pd.DataFrame]) -> FeatureContext:
        """The context of the stored ``frames`` of :meth:`FeatureSet.reads`."""
        coarser = tuple((p.timeframe, frame) for (asset, p), frame in zip(reads, frames) if asset == "indicators")
        reference = next(((p.symbol, f) for (asset, p), f in zip(reads, frames) if asset == "raw_candles"), None)
        return cls(coarser, reference)

    def lent(self, timeframe: str) -> list[LentFrame]:
        """The frames joined to ``timeframe``'s bars: the coarser timeframes' first, then the reference's."""
        lent = [LentFrame(f"{tf} indicators", tf, frame, False) for tf, frame in self.coarser]
        if self.reference is not None:
            symbol, frame = self.reference
            lent.append(LentFrame(f"{symbol} {timeframe} candles", timeframe, frame, True))
        return lent

    def until(self, cut: pd.Timestamp, timeframe: str) -> FeatureContext:
        """What was known at the close of ``timeframe``'s bar ``cut``: the bars closed by then."""
        close = cut + get_timeframe(timeframe).delta
        coarser = tuple((tf, frame.loc[: close - get_timeframe(tf).delta]) for tf, frame in self.coarser)
        reference = None if self.reference is None else (self.reference[0], self.reference[1].loc[:cut])
        return FeatureContext(coarser, reference)


def reference_for(partition: Partition, references: tuple[str, ...]) -> str:
    """The reference symbol of ``partition``'s market: the one of ``references`` with its quote currency."""
    quote = partition.symbol.split("-")[0]
    for symbol in references:
        if symbol.split("-")[0] == quote:
            return symbol
    raise CandleDataError(
        partition.symbol,
        partition.timeframe,
        f"no reference symbol for quote currency {quote} (TRADING_REFERENCE_SYMBOLS: {', '.join(references)})",
    )


def context_shortfalls(
    context: FeatureContext, index: pd.DatetimeIndex, timeframe: str, ffill_limit: int = FeatureConfig.ffill_limit
) -> list[str]:
    """Where ``context`` does not cover the bars of ``index`` (``timeframe``): its first bar joined must have
    :data:`MAX_FEATURE_LAG` bars before it (the lent features' look-back); the last bar must have a bar to join (a
    coarser one closed less than two of its bars before, the reference's at most ``ffill_limit`` bars before: forward
    filled); and the columns must be there. See :func:`older_lent_rows` for the rows joined to an older bar."""
    if not len(index):
        return []
    ends = index[[0, -1]]
    problems = []
    for lent in context.lent(timeframe):
        frame = lent.frame
        missing = [c for c in lent.columns if c not in frame.columns]
        if missing:
            problems.append(
                f"the {lent.name} lack the columns {missing} (stored by older code? materialize them again)"
            )
            continue
        first = closed_as_of(ends[:1], timeframe, frame.index, lent.timeframe, COARSER_JOIN_BARS)[0]
        last_age = ffill_limit + 1 if lent.reference else lent.join_age
        last = closed_as_of(ends[1:], timeframe, frame.index, lent.timeframe, last_age)[0]
        have = f"stored from {frame.index[0].isoformat()} to {frame.index[-1].isoformat()}" if len(frame) else "empty"
        if first < MAX_FEATURE_LAG or last < 0:
            problems.append(
                f"the {lent.name} do not cover the bars from {ends[0].isoformat()} to {ends[-1].isoformat()} "
                f"({have}; {MAX_FEATURE_LAG} bars are read before the first)"
            )
    return problems


def older_lent_rows(context: FeatureContext, index: pd.DatetimeIndex, timeframe: str) -> dict[str, int]:
    """Per lent partition, the rows of ``index`` joined to an older bar than the one closing with them (a coarser bar
    closed one of its bars before, or a reference bar missing: forward filled), the newest rows first of all when
    the other partition was not collected up to them yet (they change when it is: the next computation in full)."""
    counts = {}
    for lent in context.lent(timeframe):
        # the bar closing with the row: the reference's of the same time, a coarser one closed within one of its bars
        closing = closed_as_of(index, timeframe, lent.frame.index, lent.timeframe, 0 if lent.reference else 1)
        counts[lent.name] = int((closing < 0).sum())
    return counts


def closed_as_of(
    index: pd.DatetimeIndex, timeframe: str, other: pd.Index, other_timeframe: str, max_age_bars: int
) -> np.ndarray:
    """For each bar of ``index`` (``timeframe``), the position in ``other`` (bar open times of ``other_timeframe``)
    of the last bar closed by that bar's close, or -1: none, or it closed ``max_age_bars`` of its bars or more
    before (0: only a bar closing at the same time). A bar closes at its open time plus its timeframe."""
    other_delta = get_timeframe(other_timeframe).delta.value
    close = index.as_unit("ns").asi8 + get_timeframe(timeframe).delta.value
    other_close = pd.DatetimeIndex(other).as_unit("ns").asi8 + other_delta
    position = np.searchsorted(other_close, close, side="right") - 1
    found = position >= 0
    age = close[found] - other_close[position[found]]
    found[found] = age <= 0 if max_age_bars == 0 else age < max_age_bars * other_delta
    return np.where(found, position, -1)


def _joined(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    out = np.full((len(positions), values.shape[1]), np.nan)
    found = positions >= 0
    out[found] = values[positions[found]]
    return out


def _columns(frame: pd.DataFrame, names: tuple[str, ...]) -> Columns:
    return {c: frame[c].to_numpy(dtype="float64") for c in names}


def _evaluate(col: Columns, features: tuple[Feature, ...], rows: int) -> np.ndarray:
    out = np.empty((rows, len(features)), dtype="float64", order="F")
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, feature in enumerate(features):
            out[:, j] = np.asarray(feature.fn(col), dtype="float64")
    return out


class _Recorder(dict):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.read: set[str] = set()
        self.n = n

    def __missing__(self, key: str) -> np.ndarray:
        if key not in input_columns():
            raise KeyError(f"{key!r} is neither a candle nor an indicator column")
        self.read.add(key)
        return np.linspace(1.0, 2.0, self.n)


def inputs_of(features: tuple[Feature, ...]) -> set[str]:
    """The candle and indicator columns a feature set reads (by evaluating it on dummy data)."""
    recorder = _Recorder(64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for feature in features:
            feature.fn(recorder)
    return recorder.read


def derive_matrix(
    ind: pd.DataFrame, features: FeatureSet, partition: Partition, context: FeatureContext | None = None
) -> tuple[list[str], np.ndarray]:
    """The features of a set from candles and indicators (all trailing), as a column-major matrix; the lent
    columns joined from ``context`` as of each bar's close (see :class:`FeatureSet`)."""
    values = _evaluate(_columns(ind, input_columns()), features.own, len(ind))
    blocks = [values]
    if features.coarser or features.reference:
        timeframe = partition.timeframe
        for lent in checked_context(features, partition, context).lent(timeframe):
            frame = lent.frame
            computed = _evaluate(
                _columns(frame, lent.columns), features.reference if lent.reference else features.coarser, len(frame)
            )
            blocks.append(
                _joined(computed, closed_as_of(ind.index, timeframe, frame.index, lent.timeframe, lent.join_age))
            )
    out = np.asfortranarray(np.hstack(blocks)) if len(blocks) > 1 else values
    return [f.name for f in features.outputs()], out


def checked_context(features: FeatureSet, partition: Partition, context: FeatureContext | None) -> FeatureContext:
    """``context``, checked to hold what ``features`` reads for ``partition``."""
    wanted = features.coarser_timeframes(partition)
    given = tuple(tf for tf, _ in context.coarser) if context else ()
    if given != wanted or (features.reference and (context is None or context.reference is None)):
        reference = "" if not features.reference else " and the reference symbol's candles"
        raise CandleDataError(
            partition.symbol,
            partition.timeframe,
            f"the feature set reads the indicators of {', '.join(wanted) or 'no coarser timeframe'}{reference} of "
            f"other partitions; given {', '.join(given) or 'none'}",
        )
    return context


def feature_breaks(
    source_index: pd.DatetimeIndex, feature_index: pd.DatetimeIndex, breaks: pd.DatetimeIndex
) -> tuple[str, ...]:
    """First feature row after each discontinuity: a recorded break of the candles, or rows dropped in between.

    No sequence window or label may span one (see trading_assets.training.sequences).
    """
    if len(feature_index) < 2:
        return ()
    positions = source_index.get_indexer(feature_index)
    dropped = feature_index[1:][np.diff(positions) > 1]
    inside = breaks[(breaks > feature_index[0]) & (breaks <= feature_index[-1])]
    recorded = feature_index[feature_index.searchsorted(inside)]
    return tuple(t.isoformat() for t in dropped.union(recorded))


MAX_FEATURE_LAG = 20  # the longest look-back of a derived feature (ret_20, obv_flow_20): its first rows are NaN


def lead_in_bars(config: FeatureConfig) -> int:
    """Bars of indicator history a feature row needs before it: the clipping block before its own, covered from
    its start by complete feature rows (the derived features' look-back and the forward fill come first)."""
    return 2 * config.clip_window + MAX_FEATURE_LAG + config.ffill_limit


def lead_in_shortfall(partition: Partition, lead_in: int, config: FeatureConfig) -> str | None:
    """Why ``lead_in`` bars of indicators before the span are too few for ``config``'s clipping, or None."""
    symbol, timeframe = partition.symbol, partition.timeframe
    if lead_in >= lead_in_bars(config):
        return None
    return (
        f"{symbol} {timeframe}: {lead_in} lead-in bars before the span, clip_window {config.clip_window} "
        f"needs {lead_in_bars(config)}: early rows may depend on where the history starts"
    )


def feature_memory_bars(config: FeatureConfig) -> int:
    """An upper bound on how far back a feature row reads indicators: the clipping block before its own
    (:func:`lead_in_bars`) plus the forward fill and the derived features' lags (20 bars), rounded up to
    twice the lead-in."""
    return 2 * lead_in_bars(config)


def clip_matrix(values: np.ndarray, times_ns: np.ndarray, block_ns: int, k: float) -> np.ndarray:
    """Clip ``values`` (rows x columns) in place to median +- k x scale of the previous time block.

    Blocks are ``block_ns`` long and aligned to the Unix epoch. Rows of a block are clipped with the
    statistics of the nearest earlier block that holds rows, if the data covers that block from its
    start (so the thresholds never depend on where the loaded history starts); otherwise they are
    left as they are. scale = max(1.4826 x MAD, 1.2533 x mean absolute deviation from the median):
    both estimate sigma for normal data; the second keeps zero-inflated columns (flat and filled
    bars) from being clipped to nothing. A block without spread gives no scale and no clipping.

    Returns the number of clipped cells per column.
    """
    n, n_cols = values.shape
    clipped = np.zeros(n_cols, dtype=np.int64)
    if n == 0:
        return clipped
    block = times_ns // block_ns
    starts = np.flatnonzero(np.concatenate([[True], block[1:] != block[:-1]]))
    sizes = np.diff(np.concatenate([starts, [n]]))
    complete = block[starts] * block_ns >= times_ns[0]
    # blocks of equal row count are gathered together: one (blocks, rows) array per size
    groups = [(ids, starts[ids, None] + np.arange(size)) for size in np.unique(sizes) for ids in [sizes == size]]
    previous = np.repeat(np.arange(len(starts)), sizes) - 1  # per row: the nearest earlier block with rows
    usable = (previous >= 0) & complete[np.maximum(previous, 0)]
    rows = np.flatnonzero(usable)
    source = previous[rows]
    median, scale = np.empty(len(starts)), np.empty(len(starts))
    for j in range(n_cols):
        column = np.ascontiguousarray(values[:, j])  # gathers from one contiguous column, not a strided one
        for ids, block_rows in groups:
            median[ids], scale[ids] = _block_stats(column[block_rows])
        active = scale[source] > 0
        target_rows, src = rows[active], source[active]
        low = median[src] - k * scale[src]
        high = median[src] + k * scale[src]
        target = column[target_rows]
        clipped[j] = np.count_nonzero((target < low) | (target > high))
        values[target_rows, j] = np.clip(target, low, high)
    return clipped


def _median_inplace(blocks: np.ndarray) -> np.ndarray:
    """Median of each row of ``blocks``, partitioning it in place (much faster than ``np.median``)."""
    w = blocks.shape[1]
    if w % 2:
        blocks.partition(w // 2, axis=1)
        return blocks[:, w // 2].copy()
    blocks.partition((w // 2 - 1, w // 2), axis=1)
    return (blocks[:, w // 2 - 1] + blocks[:, w // 2]) / 2


def _block_stats(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and scale of each row of ``blocks`` (a copy, reordered in place)."""
    median = _median_inplace(blocks)
    deviation = np.abs(blocks - median[:, None])
    mean_ad = deviation.mean(axis=1) * MEAN_AD_TO_SIGMA
    return median, np.maximum(_median_inplace(deviation) * MAD_TO_SIGMA, mean_ad)


def clip_outliers(frame: pd.DataFrame, timeframe: str, window: int, k: float) -> tuple[pd.DataFrame, dict[str, int]]:
    """:func:`clip_matrix` on a copy of a time-indexed ``frame``; returns it with the clipped counts per column."""
    values = frame.to_numpy(dtype="float64", copy=True)
    block_ns = window * get_timeframe(timeframe).delta.value
    clipped = clip_matrix(values, frame.index.as_unit("ns").asi8, block_ns, k)
    return pd.DataFrame(values, index=frame.index, columns=frame.columns), dict(zip(frame.columns, clipped.tolist()))


def _forward_fill(values: np.ndarray, limit: int) -> np.ndarray:
    """Forward-fill NaN in place, at most ``limit`` in a row, column by column; returns counts filled."""
    filled = np.zeros(values.shape[1], dtype=np.int64)
    for j in np.flatnonzero(np.isnan(values).any(axis=0)):
        column = pd.Series(values[:, j])
        before = int(column.isna().sum())
        values[:, j] = column.ffill(limit=limit).to_numpy() if limit else column.to_numpy()
        filled[j] = before - int(np.isnan(values[:, j]).sum())
    return filled


def build_features(
    indicators: pd.DataFrame,
    partition: Partition,
    config: FeatureConfig = FeatureConfig(),
    span_start: pd.Timestamp | None = None,
    execution: Execution = Execution(),
    keep_unlabelled: bool = False,
    context: FeatureContext | None = None,
) -> FeatureResult:
    """The features frame (unscaled float32 features of ``config.feature_set`` + ``target``, the trade's
    one-bar return under ``execution``) for one partition.

    The last rows have no target (their trade has not ended in the data) and are dropped, unless
    ``keep_unlabelled`` (the look-ahead check compares the features of every row up to a cut).

    Rows before ``span_start`` (the lead-in, see :func:`lead_in_bars`) only feed the clipping
    statistics and are dropped from the result.

    ``context``: the other partitions the feature set reads (:class:`FeatureContext`), if it reads any.
    """
    symbol, timeframe = partition.symbol, partition.timeframe
    report = FeatureReport()
    ind, report.pollution = coerce_numeric(indicators, input_columns(), partition, config.max_polluted_fraction)
    if len(ind) < 3:
        raise CandleDataError(symbol, timeframe, f"only {len(ind)} indicator rows; cannot build features")
    names, values = derive_matrix(ind, feature_set(config.feature_set), partition, context)
    non_finite = np.isinf(values)
    report.non_finite = {c: int(n) for c, n in zip(names, non_finite.sum(axis=0)) if n}
    if report.non_finite:
        values[non_finite] = np.nan
    report.filled = {c: int(n) for c, n in zip(names, _forward_fill(values, config.ffill_limit)) if n}

    target = trade_returns(ind["open"].to_numpy(dtype="float64"), ind["close"].to_numpy(dtype="float64"), execution)
    no_target = execution.entry_lag + 1  # the last rows: their trade has not ended in the data
    complete = ~np.isnan(values).any(axis=1) & ~np.isnan(target)
    if keep_unlabelled:
        complete[len(complete) - no_target :] = ~np.isnan(values[len(complete) - no_target :]).any(axis=1)
        no_target = 0
    first = int(np.argmax(complete))
    if complete[first:].sum() == len(complete) - first - no_target:  # usual case: a leading run of incomplete rows
        rows = slice(first, len(complete) - no_target)
    else:
        rows = np.flatnonzero(complete)
    values, target, index = values[rows], target[rows], ind.index[rows]

    block_ns = config.clip_window * get_timeframe(timeframe).delta.value
    clipped = clip_matrix(values, index.as_unit("ns").asi8, block_ns, config.clip_k)
    keep = slice(None) if span_start is None else slice(int(index.searchsorted(span_start)), None)
    values, target, index = values[keep], target[keep], index[keep]
    in_span = np.ones(len(ind), dtype=bool) if span_start is None else ind.index >= span_start
    report.rows_dropped = int((~complete[in_span]).sum()) - no_target  # the last rows never have a target
    report.clipped = {c: int(n) for c, n in zip(names, clipped) if n}
    out = np.empty((len(index), len(names) + 1), dtype="float32", order="F")
    out[:, :-1] = values
    out[:, -1] = target
    return FeatureResult(pd.DataFrame(out, index=index, columns=[*names, TARGET]), report)


def feature_resume(index: pd.DatetimeIndex, changed_from: pd.Timestamp, execution: Execution) -> pd.Timestamp:
    """The first feature row a change of the indicators from ``changed_from`` on may alter: the label of a row
    reads the bars of its trade, so the rows whose trade reaches into the change are computed again too."""
    at = int(index.searchsorted(changed_from)) - execution.label_reach
    return min(changed_from, index[max(at, 0)])


def extend_features(
    previous: pd.DataFrame,
    indicators: pd.DataFrame,
    partition: Partition,
    config: FeatureConfig,
    span_start: pd.Timestamp | None,
    execution: Execution,
    resume: pd.Timestamp,
) -> FeatureResult:
    """What :func:`build_features` gives, computing only the rows from ``resume`` on, from the
    :func:`feature_memory_bars` of indicators before them, and keeping ``previous``' rows before it. The rows
    whose trade reaches into the changed bars (the label's horizon before ``resume``) are computed again too.
    The report counts the recomputed rows."""
    from trading_assets.incremental import input_rows_from, splice

    resume = feature_resume(indicators.index, resume, execution)
    first = input_rows_from(indicators.index, resume, feature_memory_bars(config))
    tail = build_features(indicators.iloc[first:], partition, config, resume, execution)
    return FeatureResult(splice(previous, tail.frame, span_start, resume), tail.report)
