"""The candle window of a partition: which span it covers, how much history it loads before it, and what the
collected candles make of it (the invalid-bar policy, the warnings, the provenance).

``raw_candles`` plans a window, has the store collect it, and hands the result to :func:`assemble_window`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trading_assets.calendars import TradingCalendar
from trading_assets.candles import CANDLE_COLUMNS, Break, FilledCandles
from trading_assets.errors import CandleDataError, EmptySourceError
from trading_assets.incremental import Lineage, pack_mask, unpack_mask
from trading_assets.indicators import warmup_bars
from trading_assets.partition import Partition
from trading_assets.provenance import Provenance
from trading_assets.store import CollectResult
from trading_assets.timeframes import DEFAULT_SPAN_DAYS, MAX_SPAN_BARS, get_timeframe, span_error, to_utc

FILLED = "filled"  # raw_candles' attrs: which rows were filled (trading_assets.incremental.pack_mask)


@dataclass(frozen=True)
class WindowRequest:
    """What a run asks for: the span (``days`` or ``bars`` before ``end``) and how to treat what arrives."""

    days: float | None = None
    bars: int | None = None
    end: str | None = None
    max_span_bars: int = MAX_SPAN_BARS
    warmup_tolerance: float = 1e-6
    max_fill_bars: int = 5
    max_invalid_fraction: float = 0.01


def requested_span(
    request: WindowRequest, timeframe: str, calendar: TradingCalendar, now: pd.Timestamp | None = None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)``: ``bars`` (session bars of ``calendar``) or ``days`` (not both) before ``end`` (default:
    the bar in progress, which is not closed yet), else the timeframe's default span.

    A span over ``max_span_bars`` is refused before any work.
    """
    if request.days is not None and request.bars is not None:
        raise ValueError("give the span in days or in bars, not both")
    too_long = span_error(timeframe, request.days, request.bars, request.max_span_bars)
    if too_long:
        raise ValueError(too_long)
    tf = get_timeframe(timeframe)
    now_bar = tf.floor(now if now is not None else pd.Timestamp.now(tz="UTC"))
    end = min(tf.floor(to_utc(request.end)), now_bar) if request.end else now_bar
    if request.bars is not None:
        return calendar.start_before(timeframe, end, request.bars), end
    return tf.floor(end - pd.Timedelta(days=request.days or DEFAULT_SPAN_DAYS[timeframe])), end


@dataclass(frozen=True)
class WindowPlan:
    """The span of a partition and the history loaded before it: the indicators' warm-up plus the features'
    lead-in, counted in session bars."""

    partition: Partition
    calendar: TradingCalendar
    request: WindowRequest
    span_start: pd.Timestamp
    span_end: pd.Timestamp
    warmup: int  # session bars before span_start, lead-in included
    lead_in: int

    @classmethod
    def of(cls, partition: Partition, calendar: TradingCalendar, request: WindowRequest, lead_in: int) -> WindowPlan:
        start, end = requested_span(request, partition.timeframe, calendar)
        return cls(partition, calendar, request, start, end, warmup_bars(request.warmup_tolerance) + lead_in, lead_in)

    @property
    def fetch_start(self) -> pd.Timestamp:
        return self.calendar.start_before(self.partition.timeframe, self.span_start, self.warmup)

    def span_bars(self) -> int:
        """Session bars of the requested span."""
        return len(self.calendar.grid(self.partition.timeframe, self.span_start, self.span_end))


@dataclass(frozen=True)
class CandleWindow:
    """The candles of a planned window, with what happened on the way."""

    plan: WindowPlan
    filled: FilledCandles
    collected: CollectResult
    provenance: Provenance
    warnings: tuple[str, ...]
    span_bars: int  # session bars of the requested span

    @property
    def frame(self) -> pd.DataFrame:
        return self.filled.frame

    @property
    def history(self) -> int:
        """Bars available before the span."""
        return self.provenance.history_bars

    def summary(self, source: str) -> str:
        return (
            f"{self.plan.partition}: {len(self.frame)} bars ({self.filled.filled} filled, "
            f"{len(self.filled.breaks)} breaks), fetched {self.collected.rows_fetched} candles from {source}"
        )


def assemble_window(plan: WindowPlan, filled: FilledCandles, collected: CollectResult, source: str) -> CandleWindow:
    """The window of ``plan`` from the candles the store collected: refused when the source has none in the span
    (:class:`EmptySourceError`) or delivered too many invalid bars in it (:class:`CandleDataError`; each such
    bar counts as missing, bars outside the span never count); warnings for invalid bars, a short history and
    breaks; the provenance attached to the frame."""
    p, request = plan.partition, plan.request
    frame = filled.frame
    if frame.empty or frame.index[-1] < plan.span_start:
        raise EmptySourceError(
            p.symbol, p.timeframe, f"{source} has no candles in [{plan.span_start}, {plan.span_end})"
        )
    span_bars = plan.span_bars()
    invalid_in_span = [b for b in collected.invalid_bars if pd.Timestamp(b.split(": ", 1)[0]) >= plan.span_start]
    if len(invalid_in_span) > request.max_invalid_fraction * span_bars:
        raise CandleDataError(
            p.symbol,
            p.timeframe,
            f"{len(invalid_in_span)} of {span_bars} bars of the requested span have invalid values "
            f"(more than max_invalid_fraction {request.max_invalid_fraction:.2%}); refusing to go on",
            examples=invalid_in_span,
        )
    in_span = frame.index >= plan.span_start
    history = int((~in_span).sum())
    warnings = []
    if collected.invalid_bars:
        warnings.append(
            f"{p}: {len(collected.invalid_bars)} bar(s) with invalid values treated as missing, "
            f"e.g. {collected.invalid_bars[:3]}"
        )
    if filled.leading_missing:
        warnings.append(
            f"{p}: history starts {filled.leading_missing} session bars after the warm-up start {plan.fetch_start}: "
            f"{history} of {plan.warmup} warm-up bars available; indicators early in the span may not have converged"
        )
    warnings += [f"{p}: break (gap longer than {request.max_fill_bars} bars) {b.describe()}" for b in filled.breaks]
    provenance = Provenance(
        symbol=p.symbol,
        timeframe=p.timeframe,
        calendar=plan.calendar.name,
        span_start=plan.span_start.isoformat(),
        span_end=plan.span_end.isoformat(),
        warmup_bars=plan.warmup,
        lead_in_bars=plan.lead_in,
        warmup_tolerance=request.warmup_tolerance,
        history_bars=history,
        filled_bars=filled.filled,
        filled_bars_in_span=int((filled.filled_mask & in_span).sum()),
        max_fill_bars=request.max_fill_bars,
        breaks=tuple(b.resume.isoformat() for b in filled.breaks),
        invalid_bars=len(collected.invalid_bars),
    )
    provenance.attach(frame)
    frame.attrs[FILLED] = pack_mask(filled.filled_mask)
    return CandleWindow(plan, filled, collected, provenance, tuple(warnings), span_bars)


def tail_start(plan: WindowPlan, previous: pd.DataFrame, refetch_bars: int) -> pd.Timestamp | None:
    """Where an incremental refresh of ``previous`` (the partition's last raw candles) collects from: before the
    bars the store may have revised (``refetch_bars``) and a fill run, so the tail starts at a bar both have;
    None when ``previous`` cannot be extended (another recipe, a window that grows backwards or jumps ahead)."""
    mine = Provenance.of(previous)
    recipe = (plan.calendar.name, plan.warmup, plan.lead_in, plan.request.max_fill_bars)
    if (mine.calendar, mine.warmup_bars, mine.lead_in_bars, mine.max_fill_bars) != recipe:
        return None
    if FILLED not in previous.attrs or Lineage.of(previous) is None:
        return None
    if previous.empty or plan.fetch_start < previous.index[0] or plan.span_end < pd.Timestamp(mine.span_end):
        return None
    back = (refetch_bars + plan.request.max_fill_bars + 2) * get_timeframe(plan.partition.timeframe).delta
    start = pd.Timestamp(mine.span_end) - back
    return start if plan.fetch_start <= start else None


def extend_filled(plan: WindowPlan, previous: pd.DataFrame, tail: FilledCandles) -> FilledCandles | None:
    """The filled window of ``plan``: ``previous``' rows up to the first real bar of ``tail`` (collected from
    :func:`tail_start`), ``tail``'s from it; what a full collection and fill gives, since a bar is filled only
    from the bars before it. None when the two do not meet at a real bar with the same values (a revised or
    late candle): the caller collects in full."""
    previous_mask = unpack_mask(previous.attrs[FILLED], len(previous))
    real = tail.frame.index[~tail.filled_mask]
    if real.empty or real[0] not in previous.index:
        return None
    meet = real[0]
    at = int(previous.index.get_loc(meet))
    columns = list(CANDLE_COLUMNS)
    if previous_mask[at] or not previous.iloc[at][columns].equals(tail.frame.loc[meet, columns]):
        return None
    lo, hi = int(previous.index.searchsorted(plan.fetch_start)), at
    real_head = np.flatnonzero(~previous_mask[lo:hi])  # nothing is filled before the first real candle
    lo = lo + int(real_head[0]) if len(real_head) else hi
    rest = int(tail.frame.index.searchsorted(meet))
    frame = pd.concat([previous.iloc[lo:hi][columns], tail.frame.iloc[rest:][columns]])
    frame.attrs = {}
    mask = np.r_[previous_mask[lo:hi], tail.filled_mask[rest:]]
    tf, calendar = get_timeframe(plan.partition.timeframe), plan.calendar
    breaks = []
    for resume in Provenance.of(previous).break_times():
        if not frame.index[0] < resume <= meet:
            continue
        after = frame.index[int(frame.index.searchsorted(resume)) - 1]
        breaks.append(Break(after, resume, len(calendar.grid(tf, after + tf.delta, resume))))
    breaks += [b for b in tail.breaks if b.after >= meet]
    leading = len(calendar.grid(tf, plan.fetch_start, frame.index[0])) if len(frame) else tail.leading_missing
    return FilledCandles(frame, mask, leading, tuple(breaks), tail.trailing_missing)
