"""The canonical candle frame: parsing, validation and filling the candle grid.

A candle frame has a UTC ``DatetimeIndex`` named ``open_time`` (the bar's start), one row per bar,
and the float64 columns :data:`CANDLE_COLUMNS` (``value`` is the quote-currency turnover).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trading_assets.calendars import TradingCalendar
from trading_assets.errors import CandleDataError
from trading_assets.timeframes import get_timeframe, to_utc

CANDLE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "value")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")


def empty_candles() -> pd.DataFrame:
    index = pd.DatetimeIndex([], tz="UTC", name="open_time", dtype="datetime64[ns, UTC]")
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in CANDLE_COLUMNS}, index=index)


def _rows(frame: pd.DataFrame, mask: np.ndarray) -> list[str]:
    return [f"{ts.isoformat()}: {row}" for ts, row in frame[mask].head(5).to_dict("index").items()]


def normalize_candles(frame: pd.DataFrame, symbol: str, timeframe: str) -> pd.DataFrame:
    """Coerce a source's frame into the canonical form, raising on anything malformed.

    ``frame`` must have a datetime-like index (or an ``open_time`` column) and the candle columns.
    Nothing is silently dropped or rewritten: a non-numeric cell, a missing value, a duplicated bar
    start that disagrees with its twin, a bar off the timeframe's grid, a non-positive price,
    ``high < low``, a high/low that does not contain open and close, or a negative volume raises
    :class:`CandleDataError` naming symbol, timeframe, column and the offending rows.
    Exact duplicate rows (the same bar delivered twice, e.g. by overlapping pages) collapse to one.
    """
    if "open_time" in frame.columns:
        frame = frame.set_index("open_time")
    missing = [c for c in CANDLE_COLUMNS if c not in frame.columns]
    if missing:
        raise CandleDataError(symbol, timeframe, f"missing columns {missing}", column=missing[0])
    try:
        index = pd.DatetimeIndex(pd.to_datetime(frame.index, utc=True), name="open_time")
    except (ValueError, TypeError) as exc:
        raise CandleDataError(symbol, timeframe, f"unparseable timestamps ({exc})", "open_time") from exc
    out = pd.DataFrame(index=index.as_unit("ns"))
    for col in CANDLE_COLUMNS:
        raw = frame[col].to_numpy()
        values = pd.to_numeric(pd.Series(raw, index=index), errors="coerce").astype("float64")
        bad = values.isna().to_numpy() & ~pd.isna(raw)
        if bad.any():
            raise CandleDataError(
                symbol,
                timeframe,
                f"{int(bad.sum())} non-numeric value(s)",
                col,
                [f"{ts.isoformat()}: {v!r}" for ts, v in zip(index[bad][:5], raw[bad][:5])],
            )
        if values.isna().any():
            nan = values.isna().to_numpy()
            raise CandleDataError(
                symbol,
                timeframe,
                f"{int(nan.sum())} missing value(s)",
                col,
                [ts.isoformat() for ts in index[nan][:5]],
            )
        out[col] = values.to_numpy()
    if index.hasnans:
        raise CandleDataError(symbol, timeframe, "missing timestamps", "open_time")

    dup = out.index.duplicated(keep=False)
    if dup.any():
        dupes = out[dup]
        conflicting = dupes.groupby(level=0).nunique().gt(1).any(axis=1)
        if conflicting.any():
            raise CandleDataError(
                symbol,
                timeframe,
                f"{int(conflicting.sum())} bar start(s) delivered twice with different values",
                "open_time",
                [ts.isoformat() for ts in conflicting[conflicting].index[:5]],
            )
        out = out[~out.index.duplicated(keep="first")]
    out = out.sort_index()
    tf = get_timeframe(timeframe)
    off_grid = out.index != out.index.floor(tf.freq)
    if off_grid.any():
        raise CandleDataError(
            symbol,
            timeframe,
            f"{int(off_grid.sum())} bar start(s) not on the {timeframe} grid",
            "open_time",
            [ts.isoformat() for ts in out.index[off_grid][:5]],
        )
    for problem in candle_problems(out):
        raise CandleDataError(symbol, timeframe, problem.description, problem.column, _rows(out, problem.mask))
    return out


@dataclass(frozen=True)
class CandleProblem:
    """One kind of OHLCV inconsistency found in a frame."""

    name: str
    column: str
    description: str
    mask: np.ndarray

    @property
    def count(self) -> int:
        return int(self.mask.sum())


def candle_problems(frame: pd.DataFrame) -> list[CandleProblem]:
    """OHLCV sanity rules that real candles always satisfy, as row masks of the violations."""
    o, h, lo, c, v, val = (frame[col].to_numpy(dtype="float64") for col in CANDLE_COLUMNS)
    rules = [
        ("non_positive_price", "low", "price <= 0", np.minimum.reduce([o, h, lo, c]) <= 0),
        ("high_below_low", "high", "high < low", h < lo),
        ("high_below_open_close", "high", "high < max(open, close)", h < np.maximum(o, c)),
        ("low_above_open_close", "low", "low > min(open, close)", lo > np.minimum(o, c)),
        ("negative_volume", "volume", "negative volume", v < 0),
        ("negative_value", "value", "negative value (turnover)", val < 0),
    ]
    return [
        CandleProblem(name, col, f"{int(mask.sum())} candle(s) with {text}", mask)
        for name, col, text, mask in rules
        if mask.any()
    ]


def drop_invalid_bars(frame: pd.DataFrame, symbol: str, timeframe: str) -> tuple[pd.DataFrame, list[str]]:
    """Split off the bars that are not valid candles; return the canonical frame of the rest and a description of each.

    A bar is invalid when a cell is missing or not a number, or an OHLCV rule of :func:`candle_problems`
    fails (``high < low``, negative volume, ...). Such a bar is treated as missing (it is filled or becomes
    a break like a bar without trades), so no indicator carries a bad value forward. Unparseable or
    conflicting timestamps and bars off the grid still raise (see :func:`normalize_candles`).
    """
    if "open_time" in frame.columns:
        frame = frame.set_index("open_time")
    missing = [c for c in CANDLE_COLUMNS if c not in frame.columns]
    if missing:
        raise CandleDataError(symbol, timeframe, f"missing columns {missing}", column=missing[0])
    numeric = pd.DataFrame({c: pd.to_numeric(frame[c], errors="coerce") for c in CANDLE_COLUMNS}, index=frame.index)
    bad = numeric.isna().to_numpy()
    invalid = bad.any(axis=1)
    reasons: dict[int, str] = {}
    for j, col in enumerate(CANDLE_COLUMNS):
        for i in np.flatnonzero(bad[:, j]):
            value = frame[col].iloc[i]
            reasons.setdefault(int(i), f"{col} = {value!r}" if isinstance(value, str) else f"{col} = {value}")
    for problem in candle_problems(numeric.astype("float64")):
        for i in np.flatnonzero(problem.mask & ~invalid):
            reasons.setdefault(int(i), problem.description.split(" with ", 1)[-1])
        invalid |= problem.mask
    described = [f"{pd.Timestamp(frame.index[i]).isoformat()}: {reasons[i]}" for i in sorted(reasons)]
    return normalize_candles(numeric[~invalid], symbol, timeframe), described


@dataclass(frozen=True)
class Break:
    """A gap inside sessions longer than ``max_fill_bars``: kept open, never filled."""

    after: pd.Timestamp  # the last bar before the gap
    resume: pd.Timestamp  # the first bar after it
    missing_bars: int  # session bars absent in between

    def describe(self) -> str:
        return f"{self.after.isoformat()} -> {self.resume.isoformat()} ({self.missing_bars} bars)"


@dataclass(frozen=True)
class FilledCandles:
    frame: pd.DataFrame
    filled_mask: np.ndarray  # True where the bar was missing and has been filled
    leading_missing: int  # session bars before the first real candle
    breaks: tuple[Break, ...] = ()
    trailing_missing: int = 0  # session bars after the last real candle, too many to fill

    @property
    def filled(self) -> int:
        return int(self.filled_mask.sum())


def fill_candle_grid(
    frame: pd.DataFrame,
    timeframe: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    calendar: TradingCalendar | None = None,
    max_fill_bars: int | None = None,
) -> FilledCandles:
    """Reindex ``frame`` to the session bars of ``[start, end)`` and make short gaps explicit.

    Exchanges emit no candle for a bar without trades. A run of at most ``max_fill_bars`` missing
    session bars becomes flat candles at the previous close (open = high = low = close) with zero
    volume and turnover, which is what the market did. A longer run is a break: its bars stay absent
    and it is reported (an outage is not a quiet market). ``None`` fills every gap. Bars outside the
    calendar's sessions are not expected; those the source has anyway are kept. Bars before the first
    real candle cannot be filled without looking ahead: they are left out and counted as ``leading_missing``.
    """
    tf = get_timeframe(timeframe)
    start, end = to_utc(start), to_utc(end)
    sessions = (calendar or TradingCalendar()).grid(tf, start, end)
    frame = frame.loc[(frame.index >= start) & (frame.index < end)]
    if frame.empty:
        return FilledCandles(empty_candles(), np.zeros(0, dtype=bool), len(sessions))
    grid = sessions.union(frame.index)
    grid = grid[grid >= frame.index[0]]
    missing = ~grid.isin(frame.index)
    run_start = missing & ~np.r_[False, missing[:-1]]
    run_id = np.where(missing, np.cumsum(run_start), 0)
    run_length = np.bincount(run_id)[run_id]
    last_real = int(np.flatnonzero(~missing)[-1])
    limit = len(grid) if max_fill_bars is None else max_fill_bars
    fill = missing & (run_length <= limit)
    breaks = tuple(
        Break(grid[i - 1], grid[i + run_length[i]], int(run_length[i]))
        for i in np.flatnonzero(run_start & ~fill)
        if i < last_real
    )
    trailing = int((missing[last_real + 1 :] & ~fill[last_real + 1 :]).sum())
    keep = ~missing | fill
    out = frame.reindex(grid[keep])
    filled_mask = fill[keep]
    prev_close = out["close"].ffill()
    for col in PRICE_COLUMNS:
        out[col] = out[col].fillna(prev_close)
    out[["volume", "value"]] = out[["volume", "value"]].fillna(0.0)
    leading = int((sessions < frame.index[0]).sum())
    return FilledCandles(out, filled_mask, leading, breaks, trailing)
