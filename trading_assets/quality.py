"""Data-quality measurements behind the asset checks (plain pandas, no Dagster).

Each function returns figures a person can act on: which column, which rule, how many rows,
which values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pandera.pandas as pa

from trading_assets.cleaning import non_numeric_cells
from trading_assets.timeframes import get_timeframe


def _examples(values: Iterable[Any], n: int = 5) -> list[str]:
    return [str(v) for v in list(values)[:n]]


def schema_failures(frame: pd.DataFrame, schema: pa.DataFrameSchema | type[pa.DataFrameModel]) -> list[dict[str, Any]]:
    """Validate lazily; one row per (column, check) that failed, with a count and first examples."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        out = []
        row_level = cases["schema_context"] == "DataFrameSchema"
        for check, group in cases[row_level].groupby("check", sort=False):
            rows = group.pivot_table(index="index", columns="column", values="failure_case", aggfunc="first")
            out.append(
                {
                    "column": "dataframe",
                    "check": str(check),
                    "count": len(rows),
                    "examples": [{k: float(v) for k, v in r.items()} for r in rows.head(5).to_dict("records")],
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


@dataclass
class Continuity:
    rows: int
    duplicated_timestamps: int
    out_of_order: int
    gaps: int
    missing_bars: int
    expected_rows: int
    coverage: float
    filled_bars: int
    gap_examples: list[str] = field(default_factory=list)
    duplicate_examples: list[str] = field(default_factory=list)


def continuity(
    frame: pd.DataFrame,
    timeframe: str,
    span_start: pd.Timestamp | None = None,
    span_end: pd.Timestamp | None = None,
    filled_bars: int = 0,
) -> Continuity:
    """Duplicates, ordering, holes in the bar grid and coverage of the requested span."""
    tf = get_timeframe(timeframe)
    index = frame.index
    dup = index.duplicated()
    unique = index[~dup].sort_values()
    steps = unique.to_series().diff().iloc[1:]
    holes = steps[steps > tf.delta]
    start = span_start if span_start is not None else (unique[0] if len(unique) else None)
    end = span_end if span_end is not None else (unique[-1] + tf.delta if len(unique) else None)
    expected = len(tf.grid(start, end)) if start is not None else 0
    in_span = int(((unique >= start) & (unique < end)).sum()) if start is not None else 0
    return Continuity(
        rows=len(frame),
        duplicated_timestamps=int(dup.sum()),
        out_of_order=int((index[1:] < index[:-1]).sum()) if len(index) > 1 else 0,
        gaps=len(holes),
        missing_bars=int(sum(h / tf.delta - 1 for h in holes)),
        expected_rows=expected,
        coverage=in_span / expected if expected else 0.0,
        filled_bars=filled_bars,
        gap_examples=[f"{(t - d).isoformat()} -> {t.isoformat()}" for t, d in list(holes.items())[:5]],
        duplicate_examples=[t.isoformat() for t in index[dup][:5]],
    )
