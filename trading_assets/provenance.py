"""Provenance: the one typed record a data frame carries from asset to asset.

It travels in ``DataFrame.attrs`` (flat JSON-friendly keys, so the Parquet IO manager and plain
``pd.read_parquet`` keep it) and every reader goes through :meth:`Provenance.of`. Each field has one
meaning, the same in every asset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import pandas as pd

from trading_assets.calendars import ALWAYS_OPEN


@dataclass(frozen=True)
class Provenance:
    """Where a partition's frame comes from and what it covers."""

    symbol: str = ""
    timeframe: str = ""
    calendar: str = ALWAYS_OPEN  # trading calendar of the market (trading_assets.calendars)
    span_start: str | None = None  # requested span [span_start, span_end), ISO 8601 UTC
    span_end: str | None = None
    warmup_bars: int = 0  # session bars of history loaded before span_start (lead-in included)
    lead_in_bars: int = 0  # of those, the bars indicators keep before span_start for the features' clipping
    warmup_tolerance: float = 1e-6  # how far a row may still depend on where the history starts (sets warmup_bars)
    history_bars: int = 0  # session bars actually available before span_start (short history: < warmup_bars)
    filled_bars: int = 0  # bars filled flat in the raw candle frame (warm-up included)
    filled_bars_in_span: int = 0  # of those, the bars inside the requested span
    max_fill_bars: int | None = None  # longest gap filled; longer gaps are breaks
    breaks: tuple[str, ...] = ()  # first bar after each break (gap not filled), ISO 8601 UTC
    invalid_bars: int = 0  # bars the source delivered with invalid values, treated as missing
    feature_set: str | None = None
    feature_config: dict[str, Any] = field(default_factory=dict)
    execution: dict[str, Any] = field(default_factory=dict)  # the label's execution model (Execution.as_dict)
    research: dict[str, Any] = field(default_factory=dict)  # predictions: seq_len, fold grid, hold-out
    mlflow_parent_run_id: str | None = None

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Provenance:
        """The record in ``frame.attrs`` (defaults where a field is absent; unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in frame.attrs.items() if k in known}
        if "breaks" in values:
            values["breaks"] = tuple(values["breaks"])
        return cls(**values)

    def attach(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Set ``frame.attrs`` to this record; returns ``frame``."""
        frame.attrs = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return frame

    def but(self, **changes: Any) -> Provenance:
        """A copy with ``changes``."""
        return replace(self, **changes)

    @property
    def span(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        return (
            pd.Timestamp(self.span_start) if self.span_start else None,
            pd.Timestamp(self.span_end) if self.span_end else None,
        )

    def break_times(self) -> pd.DatetimeIndex:
        return (
            pd.DatetimeIndex([pd.Timestamp(t) for t in self.breaks], tz="UTC")
            if self.breaks
            else pd.DatetimeIndex([], tz="UTC")
        )
