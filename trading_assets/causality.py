"""Look-ahead and warm-up analysis, built on the very functions the assets use.

* :func:`features_look_ahead` / :func:`indicators_look_ahead`: recompute the asset from its
  upstream truncated at a few cut points t and compare rows <= t with what was
  stored. A causal computation gives identical rows; anything else used data after t.
  After an incremental refresh (``since``: the first row it computed) the cuts lie in the rows it
  computed, and those rows are recomputed as the refresh computed them (from the warm-up or memory
  before ``since``): the audit costs the new rows, not the span. The rows before ``since`` are the
  previous output's, audited when they were computed.
* :func:`warmup_drifts`: recompute the indicators (and the features from them) with more history
  before the span and measure how far values inside the span move, and for how many bars.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from trading_assets.calendars import get_calendar
from trading_assets.candles import CANDLE_COLUMNS, fill_candle_grid
from trading_assets.errors import CandleDataError
from trading_assets.execution import Execution
from trading_assets.features import FeatureConfig, FeatureContext, build_features, feature_memory_bars
from trading_assets.incremental import input_rows_from
from trading_assets.indicators import (
    CANDLE_FFILL_LIMIT,
    INDICATORS,
    anchored_columns,
    compute_indicators,
    extend_indicators,
    indicator_warmups,
    prepare_candles,
)
from trading_assets.labels import TARGET
from trading_assets.partition import Partition
from trading_assets.provenance import Provenance
from trading_assets.timeframes import get_timeframe

# Running sums (TA-Lib's SMA keeps one) carry rounding from where they started: their last bits never
# agree between two starts. Differences below this share of a column's std are that noise.
NOISE = 1e-9

# Cut points as fractions of the span: their prefixes add up to about one extra computation.
CUT_FRACTIONS = (0.15, 0.35, 0.5)
CUT_MAX_ROWS = 50_000  # ... of at most this many rows (a year of 1m: the first five weeks)
WARMUP_AUDIT_ROWS = 5_000  # the warm-up audit's first try: this many rows from the start (3.5 days of 1m)


@dataclass(frozen=True)
class ColumnDiff:
    column: str
    first_timestamp: str
    max_abs_diff: float
    rows: int
    cut: str


def cut_points(
    index: pd.DatetimeIndex,
    key: str,
    fractions: tuple[float, ...] = CUT_FRACTIONS,
    max_rows: int | None = CUT_MAX_ROWS,
) -> list[pd.Timestamp]:
    """Deterministic cut timestamps inside ``index``: fixed fractions, jittered per partition ``key``.

    The fractions are of the first ``max_rows`` rows on a longer span: the recomputed prefixes stay a
    bounded cost, and look-ahead (a centered window, a backward fill, a statistic of the whole span)
    shows at any cut far enough past the warm-up.
    """
    if len(index) < 4:
        return []
    n = len(index) if max_rows is None else min(len(index), max_rows)
    jitter = _jitter(key)
    positions = sorted({min(len(index) - 2, max(1, int((f + jitter) * n))) for f in fractions})
    return [index[p] for p in positions]


def _jitter(key: str) -> float:
    """A fixed shift of the cut fractions per partition ``key`` (0 to 5 %): partitions are not all cut alike."""
    return (zlib.crc32(key.encode()) % 1000) / 1000 * 0.05


def refreshed_cuts(
    index: pd.DatetimeIndex, since: pd.Timestamp, key: str, fractions: tuple[float, ...] = CUT_FRACTIONS
) -> list[pd.Timestamp]:
    """Cut timestamps among the rows an incremental refresh computed (``since`` on): the newest row that has one
    after it, and the ``fractions`` of those rows jittered per partition ``key`` like :func:`cut_points` (the last
    row has nothing after it to look at)."""
    rows = index[index >= since]
    n = len(rows)
    if n < 2:
        return []
    jitter = _jitter(key)
    return [rows[p] for p in sorted({n - 2, *(min(n - 2, int((f + jitter) * n)) for f in fractions)})]


def compare_prefix(
    stored: pd.DataFrame, recomputed: pd.DataFrame, cut: pd.Timestamp, rtol: float = 1e-6, atol: float = 1e-9
) -> list[ColumnDiff]:
    """Columns whose recomputed rows differ from the stored rows (rows present in both, up to ``cut``)."""
    stored_rows = stored.iloc[: int(stored.index.searchsorted(cut, side="right"))]
    positions = stored_rows.index.get_indexer(recomputed.index)  # -1: a row the stored frame does not have
    found = positions >= 0
    common = recomputed.index[found]
    diffs = []
    shared = [col for col in stored.columns if col in recomputed.columns]
    for col in stored.columns:
        if col not in recomputed.columns:
            diffs.append(
                ColumnDiff(str(col), "column missing when recomputed", float("nan"), len(common), cut.isoformat())
            )
    a = stored_rows[shared].to_numpy(dtype="float64")[positions[found]]  # one gather for every column
    b = recomputed[shared].to_numpy(dtype="float64")[found]
    same = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    for j in np.flatnonzero(~same.all(axis=0)):
        bad = ~same[:, j]
        delta = np.abs(a[bad, j] - b[bad, j])
        diffs.append(
            ColumnDiff(
                str(shared[j]),
                common[bad][0].isoformat(),
                float(np.nanmax(delta)) if np.isfinite(delta).any() else float("inf"),
                int(bad.sum()),
                cut.isoformat(),
            )
        )
    extra_rows = recomputed.index.difference(stored.index)
    if len(extra_rows):
        diffs.append(ColumnDiff("<rows>", extra_rows[0].isoformat(), float("nan"), len(extra_rows), cut.isoformat()))
    return diffs


def _first_per_column(diffs: list[ColumnDiff]) -> list[ColumnDiff]:
    first: dict[str, ColumnDiff] = {}
    for d in sorted(diffs, key=lambda d: d.first_timestamp):
        first.setdefault(d.column, d)
    return list(first.values())


def features_look_ahead(
    indicators: pd.DataFrame,
    stored: pd.DataFrame,
    partition: Partition,
    config: FeatureConfig,
    cuts: list[pd.Timestamp],
    execution: Execution = Execution(),
    context: FeatureContext | None = None,
    since: pd.Timestamp | None = None,
) -> list[ColumnDiff]:
    """Rebuild features from indicators up to each cut; report differing columns.

    Every row up to the cut is compared, also those whose label (``target``, forward-looking by definition
    and left out of the comparison) has not ended by the cut. The other partitions a feature set reads
    (``context``) are cut too, to the bars closed by the cut bar's close: a join that sees a bar before it
    closed differs. ``since``: only the rows from it on, rebuilt from the indicator rows they read before it
    (:func:`feature_memory_bars`), as an incremental refresh computes them.
    """
    diffs: list[ColumnDiff] = []
    span_start = stored.index[0] if since is None else since
    stored = stored.loc[span_start:].drop(columns=[TARGET], errors="ignore")
    first = 0 if since is None else input_rows_from(indicators.index, since, feature_memory_bars(config))
    for cut in cuts:
        recomputed = build_features(
            indicators.iloc[first:].loc[:cut],
            partition,
            config,
            span_start=span_start,
            execution=execution,
            keep_unlabelled=True,
            context=None if context is None else context.until(cut, partition.timeframe),
        ).frame.drop(columns=[TARGET])
        diffs.extend(compare_prefix(stored, recomputed, cut))
    return _first_per_column(diffs)


def indicators_look_ahead(
    raw_candles: pd.DataFrame,
    stored: pd.DataFrame,
    partition: Partition,
    cuts: list[pd.Timestamp],
    since: pd.Timestamp | None = None,
) -> list[ColumnDiff]:
    """Recompute indicators from candles up to each cut; report differing columns. ``since``: only the rows from
    it on, recomputed as an incremental refresh does (:func:`extend_indicators` of ``stored``, from the warm-up
    before ``since``)."""
    span_start = stored.index[0]
    if since is None:
        candles, _ = prepare_candles(raw_candles, partition)
    else:  # only the candles the refresh read (and the forward fill's reach before them)
        provenance = Provenance.of(raw_candles)
        history = provenance.warmup_bars - provenance.lead_in_bars
        first = max(input_rows_from(raw_candles.index, since, history) - CANDLE_FFILL_LIMIT, 0)
        try:
            candles, _ = prepare_candles(raw_candles.iloc[first:], partition)
        except CandleDataError:  # a hole filled from before the slice, a pollution share of the slice: as the asset
            candles, _ = prepare_candles(raw_candles, partition)
    diffs: list[ColumnDiff] = []
    # the refresh continued the stored rows from the one before ``since``: so does the recomputation (anchored
    # running totals restart at 0 on the first row given, and are moved back to that row's stored level)
    head = None if since is None else stored.iloc[max(int(stored.index.searchsorted(since)) - 1, 0) :]
    audited = stored if since is None else stored.loc[since:]
    for cut in cuts:
        if head is None:
            recomputed = compute_indicators(candles.loc[:cut], span_start).frame
        else:
            extended = extend_indicators(head, candles.loc[:cut], head.index[0], since, history)
            if extended is None:  # the refresh continued rows these candles do not reach: it cannot have been one
                diffs.append(ColumnDiff("<rows>", f"not recomputable from {since.isoformat()}", float("nan"), 0, ""))
                break
            recomputed = extended.frame.loc[since:]
            for column in anchored_columns():
                recomputed[column] += head[column].iloc[0]
        diffs.extend(compare_prefix(audited, recomputed, cut))
    return _first_per_column(diffs)


@dataclass(frozen=True)
class WarmupDrift:
    column: str
    max_abs_diff: float
    max_rel_diff: float
    bars_to_converge: int  # bars of history (warm-up + span rows) until the values agree for good


def warmup_drifts(
    stored_indicators: pd.DataFrame,
    longer_candles: pd.DataFrame,
    partition: Partition,
    span_start: pd.Timestamp,
    warmup: int,
    config: FeatureConfig | None = FeatureConfig(),
    tolerance: float = 1e-4,
    context: FeatureContext | None = None,
    rows: int | None = WARMUP_AUDIT_ROWS,
) -> tuple[list[WarmupDrift], pd.Timestamp]:
    """Indicator and feature columns that move when computed from ``longer_candles`` (more history), and the last
    stored row compared.

    A value "moves" when it differs by more than ``tolerance`` x the column's spread (std).
    Indicators are compared on the stored rows (span plus the features' lead-in); features (named
    ``features.<column>``) as the ``features`` asset builds them from the stored indicators, against
    the features of the longer indicators. ``bars_to_converge`` counts from the start of the stored
    history (``warmup`` bars before its first row): that much warm-up would have been enough.

    Where the history starts matters only near the start: the indicators are recomputed and compared on the
    first ``rows`` stored rows when every difference above floating-point noise (``NOISE`` x the column's std
    over all stored rows) ends in their first half, the second half agreeing, and the features compared below
    lie in them too; otherwise (a column still moving there) on every stored row. A feature row reads
    indicators at most :func:`feature_memory_bars` back, so past the last row where any indicator differs by
    more than noise the two feature frames agree by construction: features are built and compared only up to
    there (plus that memory). The scale of a feature's ``tolerance`` is its std in the compared rows.
    ``context``: the other partitions the feature set reads, the same for both. ``config`` None: the
    indicators only.
    """
    scales = _spreads(stored_indicators)
    limits = [rows, len(stored_indicators)] if rows is not None and rows < len(stored_indicators) else [None]
    for limit in limits:
        stored = stored_indicators.iloc[:limit]
        candles, _ = prepare_candles(longer_candles.loc[: stored.index[-1]], partition)
        # anchored where the stored frame starts, as the asset computes them; the rows before feed the features
        longer_indicators = compute_indicators(candles, stored.index[0], trim=False).frame
        drifts, last = _drifts(stored, _rows_of(longer_indicators, stored.index), warmup, tolerance, scales)
        reach = max(last, 0) + (0 if config is None else feature_memory_bars(config) + 1)
        if last < len(stored) // 2 and reach < len(stored):  # the features compared below lie in it too
            break
    until = stored.index[-1]
    if config is None:
        return drifts, until
    end = stored.index[min(len(stored) - 1, reach)]
    stored = build_features(stored_indicators.loc[:end], partition, config, span_start=span_start, context=context)
    longer = build_features(longer_indicators.loc[:end], partition, config, span_start=span_start, context=context)
    stored, longer = stored.frame, longer.frame
    feature_drifts, _ = _drifts(stored, _rows_of(longer, stored.index), warmup, tolerance, _spreads(stored))
    return drifts + [
        WarmupDrift(f"features.{d.column}", d.max_abs_diff, d.max_rel_diff, d.bars_to_converge) for d in feature_drifts
    ], until


def _rows_of(frame: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """``frame.reindex(index)``; a slice, not a copy, when ``index`` is a run of ``frame``'s rows (the usual case)."""
    if (
        len(index)
        and frame.index.dtype == index.dtype
        and frame.index.is_monotonic_increasing
        and frame.index.is_unique
    ):
        first = int(frame.index.searchsorted(index[0]))
        rows = frame.iloc[first : first + len(index)]
        if rows.index.equals(index):
            return rows
    return frame.reindex(index)


def _spreads(frame: pd.DataFrame) -> dict[str, float]:
    """Each column's spread (population std, NaN left out): 1.0 where there is none. Faster than pandas' std."""
    out = {}
    for col in frame.columns:
        a = frame[col].to_numpy(dtype="float64")
        nan = np.isnan(a)
        present = a[~nan] if nan.any() else a
        spread = float(present.std()) if len(present) else 0.0
        out[col] = spread if np.isfinite(spread) and spread > 0 else 1.0
    return out


def _drifts(
    stored: pd.DataFrame, longer: pd.DataFrame, warmup: int, tolerance: float, scales: dict[str, float]
) -> tuple[list[WarmupDrift], int]:
    """Columns that moved by more than ``tolerance`` x their spread (``scales``), and the last row where any column
    differs by more than ``NOISE`` x its spread (-1: none)."""
    out, last_noise = [], -1
    for col in stored.columns:
        a, b = stored[col].to_numpy(dtype="float64"), longer[col].to_numpy(dtype="float64")
        scale = scales[col]
        delta = np.abs(a - b)
        nan_moved = np.isnan(a) != np.isnan(b)
        moved = (delta > tolerance * scale) | nan_moved
        if moved.any():
            last = int(np.flatnonzero(moved)[-1])
            out.append(
                WarmupDrift(str(col), float(np.nanmax(delta)), float(np.nanmax(delta) / scale), warmup + last + 1)
            )
        noisy = np.flatnonzero((delta > NOISE * scale) | nan_moved)
        if len(noisy):
            last_noise = max(last_noise, int(noisy[-1]))
    return out, last_noise


def longer_candles(
    extra: pd.DataFrame, raw_candles: pd.DataFrame, extra_start: pd.Timestamp, timeframe: str, provenance: Provenance
) -> pd.DataFrame:
    """``extra`` (stored candles from ``extra_start`` up to the run's first) on the session grid, followed by the
    run's ``raw_candles``: what filling both together gives. Only the extra history is filled (up to the run's
    first candle, which closes a gap before it); the run's rows are on the grid already."""
    raw = raw_candles[list(CANDLE_COLUMNS)]
    if raw.empty:
        return raw
    first = raw.index[0]
    end = first + get_timeframe(timeframe).delta
    calendar = get_calendar(provenance.calendar)
    head = fill_candle_grid(
        pd.concat([extra, raw.iloc[:1]]), timeframe, extra_start, end, calendar, provenance.max_fill_bars
    )
    return pd.concat([head.frame.loc[head.frame.index < first, list(CANDLE_COLUMNS)], raw])


@dataclass(frozen=True)
class WarmupFinding:
    """What the warm-up audit of one partition found: its problems (none: sufficient) and its figures."""

    problems: tuple[str, ...]
    figures: dict[str, object]
    short_history: bool = False  # less history than the warm-up: nothing to compare with


@dataclass(frozen=True)
class WarmupAudit:
    """The warm-up of a stored indicators partition, read from its run's raw candles.

    :meth:`short` says whether the run had less history than the warm-up needs (then there is nothing to
    compare with); otherwise :meth:`extra_start` says from where to load more history and :meth:`compare`
    recomputes with it.
    """

    frame: pd.DataFrame  # the stored indicators
    raw_candles: pd.DataFrame
    partition: Partition

    @property
    def provenance(self) -> Provenance:
        return Provenance.of(self.raw_candles)

    @property
    def before(self) -> int:
        """Bars needed before the stored frame's first row (the warm-up without the lead-in)."""
        return self.provenance.warmup_bars - self.provenance.lead_in_bars

    @property
    def available(self) -> int:
        return int(self.raw_candles.index.searchsorted(self.frame.index[0]))

    def short(self) -> WarmupFinding | None:
        """The finding when the history is shorter than the warm-up, else None."""
        available, before = self.available, self.before
        if available >= before:
            return None
        affected = sorted(
            col for name, bars in indicator_warmups().items() if bars > available for col in INDICATORS[name].columns
        )
        problem = (
            f"history is short: {available} bars available before {self.frame.index[0].isoformat()}, {before} needed "
            f"({before - available} missing); values early in the span depend on where the history starts"
        )
        figures = {
            "warmup_bars": before,
            "bars_available": available,
            "bars_missing": before - available,
            "affected_columns": affected,
            "compared_with_bars": 0,
        }
        return WarmupFinding((problem,), figures, short_history=True)

    def extra_start(self, history_factor: float) -> pd.Timestamp:
        """Where ``history_factor`` times the warm-up starts, before the stored frame's first row."""
        calendar = get_calendar(self.provenance.calendar)
        longer_warmup = int(self.provenance.warmup_bars * history_factor)
        return calendar.start_before(self.partition.timeframe, self.frame.index[0], longer_warmup)

    def compare(
        self,
        extra: pd.DataFrame,
        extra_start: pd.Timestamp,
        config: FeatureConfig | None,
        tolerance: float,
        context: FeatureContext | None = None,
        rows: int | None = WARMUP_AUDIT_ROWS,
    ) -> WarmupFinding:
        """Recompute with ``extra`` candles (from ``extra_start``) put in front of the run's, and report the
        columns that move by more than ``tolerance`` with the warm-up that would have been enough (the features of
        ``config`` too, unless None); ``rows``: the first try's rows (see :func:`warmup_drifts`)."""
        provenance, before, available = self.provenance, self.before, self.available
        span_start, _ = provenance.span
        longer = longer_candles(extra, self.raw_candles, extra_start, self.partition.timeframe, provenance)
        p = self.partition
        drifts, until = warmup_drifts(self.frame, longer, p, span_start, before, config, tolerance, context, rows)
        needed = max((d.bars_to_converge for d in drifts), default=0)
        history = int(longer.index.searchsorted(self.frame.index[0]))
        problems = []
        if drifts:
            problems.append(
                f"{p.timeframe} needs more than {before} warm-up bars: at least {needed} "
                "(lower CandleWindowConfig.warmup_tolerance or raise it by hand)"
            )
        if history <= available:
            problems.append(
                f"no history before the run's {available} warm-up bars to compare with ({history} bars in the "
                "store): convergence is unverified"
            )
        figures = {
            "warmup_bars": before,
            "lead_in_bars": provenance.lead_in_bars,
            "bars_available": available,
            "compared_with_bars": history,
            "moved_columns": [asdict(d) for d in drifts],
            "bars_needed": needed,
            "tolerance": tolerance,
            "features_compared": config is not None,
            "compared_rows": [self.frame.index[0].isoformat(), until.isoformat()],
        }
        return WarmupFinding(tuple(problems), figures)
