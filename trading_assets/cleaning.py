"""Dtype pollution: strings or objects inside columns that must be numeric.

The old pipeline concatenated frames that carried the symbol as a string column and ended up
with object columns; arithmetic then either crashed far away or silently produced NaN. Here every
such cell is found, counted and shown, and the caller decides (coerce or stop) on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from trading_assets.errors import CandleDataError
from trading_assets.partition import Partition


@dataclass
class PollutionReport:
    """Per column: how many cells were not numeric, examples, and columns dropped with the reason."""

    coerced: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    dropped_columns: dict[str, str] = field(default_factory=dict)


def _plain_numeric(series: pd.Series) -> bool:
    """Whether every cell of ``series`` is a number or missing by its dtype alone (bool is not a number here)."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def non_numeric_cells(series: pd.Series) -> pd.Series:
    """Boolean mask of cells that hold something other than a number (missing values excluded)."""
    if _plain_numeric(series):
        return pd.Series(False, index=series.index)
    return pd.to_numeric(series, errors="coerce").isna() & series.notna()


def coerce_numeric(
    frame: pd.DataFrame,
    expected: Iterable[str],
    partition: Partition,
    max_fraction: float,
) -> tuple[pd.DataFrame, PollutionReport]:
    """Return ``frame`` with exactly the ``expected`` columns as float64.

    Non-numeric cells become missing and are counted per column; a column with more than
    ``max_fraction`` of them stops the step with :class:`CandleDataError` (examples included).
    Unexpected columns are dropped and reported. A missing expected column raises.
    """
    symbol, timeframe = partition.symbol, partition.timeframe
    expected = list(expected)
    report = PollutionReport()
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise CandleDataError(symbol, timeframe, f"frame lacks columns {missing}", missing[0])
    for col in frame.columns:
        if col not in expected:
            kind = "numeric" if pd.api.types.is_numeric_dtype(frame[col]) else f"non-numeric ({frame[col].dtype})"
            report.dropped_columns[str(col)] = f"unexpected {kind} column"
    if all(_plain_numeric(frame[col]) for col in expected):  # the usual case: one conversion, no cell to look at
        out = frame[expected].astype("float64")
        out.attrs = {}  # as the frame built column by column below: the caller attaches what it needs
        return out, report
    out = {}
    for col in expected:
        series = frame[col]
        bad = non_numeric_cells(series)
        count = int(bad.sum())
        if count:
            examples = [f"{ts.isoformat()}: {v!r}" for ts, v in series[bad].head(5).items()]
            if count > max_fraction * len(series):
                raise CandleDataError(
                    symbol,
                    timeframe,
                    f"{count} of {len(series)} values are not numeric "
                    f"(more than {max_fraction:.1%}); refusing to go on",
                    col,
                    examples,
                )
            report.coerced[col] = count
            report.examples[col] = examples
        out[col] = pd.to_numeric(series, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index), report
