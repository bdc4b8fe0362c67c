"""Data-quality measurements behind the asset checks (plain pandas, no Dagster).

Each function returns figures a person can act on: which column, which rule, how many rows,
which values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from trading_assets.calendars import TradingCalendar
from trading_assets.cleaning import non_numeric_cells
from trading_assets.provenance import Provenance
from trading_assets.timeframes import get_timeframe


def _examples(values: Iterable[Any], n: int = 5) -> list[str]:
    return [str(v) for v in list(values)[:n]]


def _cell(value: Any) -> float | str | None:
    """A failure case as JSON: a number stays a number, anything else (a stray string) is shown as text."""
    if value is None:
        return None
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return float(value)
    return str(value)


def schema_failures(frame: pd.DataFrame, schema: pa.DataFrameSchema | type[pa.DataFrameModel]) -> list[dict[str, Any]]:
    """Validate lazily; one row per (column, check) that failed, with a count and first examples.

    The schemas neither coerce nor fill nor filter, so validation runs on ``frame`` itself rather than on
    pandera's deep copy of it (a copy of a year of 1m indicators costs more than all their checks).
    """
    try:
        schema.validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        out = []
        # a failed dataframe check names rows; a frame-level failure without a row (an unexpected column)
        # is reported like a column's, with what failed (the column's name) as its example
        row_level = (cases["schema_context"] == "DataFrameSchema") & cases["index"].notna()
        for check, group in cases[row_level].groupby("check", sort=False):
            rows = group.pivot_table(index="index", columns="column", values="failure_case", aggfunc="first")
            out.append(
                {
                    "column": "dataframe",
                    "check": str(check),
                    "count": len(rows),
                    "examples": [{k: _cell(v) for k, v in r.items()} for r in rows.head(5).to_dict("records")],
                    "rows": _examples(t.isoformat() for t in rows.index[:5]),
                }
            )
        cases = cases[~row_level].copy()
        cases["column"] = cases["column"].where(cases["column"].notna(), cases["schema_context"]).astype(str)
        for (column, check), group in cases.groupby(["column", "check"], sort=False):
            out.append(
                {
                    "column": column,
                    "check": str(check),
                    "count": int(len(group)),
                    "examples": _examples(group["failure_case"]),
                    "rows": _examples(group["index"].dropna()),
                }
            )
        return out
    return []


@dataclass
class PollutionFindings:
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    unexpected_columns: dict[str, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.columns and not self.unexpected_columns


def dtype_pollution(frame: pd.DataFrame, numeric: Iterable[str]) -> PollutionFindings:
    """Non-numeric cells in columns that must be numeric, and columns that should not be there."""
    numeric = list(numeric)
    findings = PollutionFindings()
    for col in frame.columns:
        if col not in numeric:
            findings.unexpected_columns[str(col)] = str(frame[col].dtype)
    for col in numeric:
        if col not in frame.columns:
            continue
        series = frame[col]
        bad = non_numeric_cells(series)
        if bad.any() or series.dtype == object:
            findings.columns[col] = {
                "dtype": str(series.dtype),
                "count": int(bad.sum()),
                "examples": _examples(repr(v) for v in series[bad].head(5)),
                "rows": _examples(t.isoformat() for t in series.index[bad][:5]),
            }
    return findings


def nan_rates(frame: pd.DataFrame) -> dict[str, float]:
    """Share of missing cells per column (non-numeric cells are not counted as missing)."""
    if frame.empty:
        return {str(c): 0.0 for c in frame.columns}
    return {str(c): float(v) for c, v in frame.isna().mean().items()}


def percent(share: float) -> str:
    """``share`` as a percentage with enough digits to be true: 99.986 % is never printed as 100.0 %."""
    for digits in range(1, 7):
        text = f"{share:.{digits}%}"
        if share in (0.0, 1.0) or float(text[:-1]) / 100 not in (0.0, 1.0):
            return text
    return f"{share:.6%}"


def leading_nan_rows(frame: pd.DataFrame) -> int:
    """Rows at the start of ``frame`` with a NaN in some column (what a short warm-up leaves)."""
    complete = ~frame.isna().any(axis=1).to_numpy()
    return int(np.argmax(complete)) if complete.any() else len(frame)


@dataclass
class Continuity:
    rows: int
    duplicated_timestamps: int
    out_of_order: int
    gaps: int  # runs of session bars absent between the first and the last row (breaks)
    missing_bars: int  # session bars in those runs
    longest_gap: int
    expected_rows: int  # session bars of the requested span
    coverage: float  # share of them present
    filled_bars: int
    gap_examples: list[str] = field(default_factory=list)
    duplicate_examples: list[str] = field(default_factory=list)


def _present(sorted_unique: pd.DatetimeIndex, query: pd.DatetimeIndex) -> np.ndarray:
    """Which timestamps of ``query`` are in ``sorted_unique`` (binary search: no hash table of either)."""
    values, wanted = sorted_unique.as_unit("ns").asi8, query.as_unit("ns").asi8
    if not len(values):
        return np.zeros(len(wanted), dtype=bool)
    pos = np.minimum(np.searchsorted(values, wanted), len(values) - 1)
    return values[pos] == wanted


def continuity(
    frame: pd.DataFrame,
    timeframe: str,
    span_start: pd.Timestamp | None = None,
    span_end: pd.Timestamp | None = None,
    filled_bars: int = 0,
    calendar: TradingCalendar | None = None,
) -> Continuity:
    """Duplicates, ordering, holes in the session grid and coverage of the requested span's session bars.

    Bars outside the calendar's sessions are not expected: a weekend or holiday is no hole.
    """
    tf = get_timeframe(timeframe)
    calendar = calendar or TradingCalendar()
    index = frame.index
    if index.is_monotonic_increasing:  # the usual case: no hashing, no sort
        dup = np.r_[False, index.asi8[1:] == index.asi8[:-1]]
        unique = index[~dup]
    else:
        dup = index.duplicated()
        unique = index[~dup].sort_values()
    gaps: list[tuple[pd.Timestamp, pd.Timestamp, int]] = []
    expected, coverage = 0, 0.0
    if len(unique):
        start = span_start if span_start is not None else unique[0]
        end = span_end if span_end is not None else unique[-1] + tf.delta
        sessions = calendar.grid(tf, min(start, unique[0]), max(end, unique[-1] + tf.delta))
        inside = sessions[(sessions > unique[0]) & (sessions < unique[-1])]
        absent = ~_present(unique, inside)
        run_start = np.flatnonzero(absent & ~np.r_[False, absent[:-1]])
        run_stop = np.flatnonzero(absent & ~np.r_[absent[1:], False])
        for a, b in zip(run_start, run_stop):
            before = unique[unique.searchsorted(inside[a]) - 1]
            gaps.append((before, unique[unique.searchsorted(inside[b])], int(b - a + 1)))
        span_sessions = sessions[(sessions >= start) & (sessions < end)]
        expected = len(span_sessions)
        coverage = float(_present(unique, span_sessions).mean()) if expected else 0.0
    return Continuity(
        rows=len(frame),
        duplicated_timestamps=int(dup.sum()),
        out_of_order=int((index[1:] < index[:-1]).sum()) if len(index) > 1 else 0,
        gaps=len(gaps),
        missing_bars=sum(n for *_, n in gaps),
        longest_gap=max((n for *_, n in gaps), default=0),
        expected_rows=expected,
        coverage=coverage,
        filled_bars=filled_bars,
        gap_examples=[f"{a.isoformat()} -> {b.isoformat()} ({n} bars)" for a, b, n in gaps[:5]],
        duplicate_examples=[t.isoformat() for t in index[dup][:5]],
    )


@dataclass(frozen=True)
class ContinuityLimits:
    """When a patched or broken session grid deserves a warning, and when an error."""

    max_filled_fraction: float = 0.05  # WARN above this share of filled bars in the span
    min_coverage: float = 1.0  # WARN below this share of the span's session bars present
    max_break_bars: int = 100  # a break longer than this is an ERROR (shorter ones WARN)


@dataclass(frozen=True)
class ContinuityFinding:
    errors: list[str]
    warnings: list[str]
    figures: dict[str, object]


def judge_continuity(
    frame: pd.DataFrame, timeframe: str, calendar: TradingCalendar, limits: ContinuityLimits
) -> ContinuityFinding:
    """The continuity of a partition's frame against ``limits``: duplicated or disordered bars and breaks
    longer than ``max_break_bars`` are errors; other breaks, many filled bars and a short coverage warnings."""
    provenance = Provenance.of(frame)
    span_start, span_end = provenance.span
    c = continuity(frame, timeframe, span_start, span_end, provenance.filled_bars_in_span, calendar)
    span_rows = int((frame.index >= span_start).sum()) if span_start is not None else c.rows
    filled_fraction = c.filled_bars / span_rows if span_rows else 0.0
    errors = [
        text
        for cond, text in (
            (c.duplicated_timestamps, f"{c.duplicated_timestamps} duplicated timestamps"),
            (c.out_of_order, f"{c.out_of_order} bars out of order"),
            (c.longest_gap > limits.max_break_bars, f"a break of {c.longest_gap} bars > {limits.max_break_bars}"),
        )
        if cond
    ]
    warnings = [
        text
        for cond, text in (
            (c.gaps, f"{c.gaps} breaks ({c.missing_bars} missing session bars, not filled): {c.gap_examples}"),
            (filled_fraction > limits.max_filled_fraction, f"{percent(filled_fraction)} of bars filled"),
            (
                c.coverage < limits.min_coverage,
                f"coverage {percent(c.coverage)} of the requested span's {c.expected_rows} session bars",
            ),
        )
        if cond
    ]
    figures = {
        "rows": c.rows,
        "calendar": calendar.name,
        "expected_rows": c.expected_rows,
        "coverage": c.coverage,
        "duplicated_timestamps": c.duplicated_timestamps,
        "out_of_order": c.out_of_order,
        "breaks": c.gaps,
        "missing_bars": c.missing_bars,
        "longest_break_bars": c.longest_gap,
        "filled_bars_in_span": c.filled_bars,
        "filled_fraction": filled_fraction,
        "break_examples": c.gap_examples,
        "duplicate_examples": c.duplicate_examples,
    }
    return ContinuityFinding(errors, warnings, figures)
