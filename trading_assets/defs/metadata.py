"""Metadata helpers shared by the assets: what the UI shows for each partition."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dagster import MetadataValue


def frame_metadata(frame: pd.DataFrame, preview_rows: int = 5) -> dict[str, Any]:
    """Row count, time range and a small preview of a time-indexed frame."""
    meta: dict[str, Any] = {"dagster/row_count": len(frame), "columns": len(frame.columns)}
    if len(frame):
        meta["first_bar"] = frame.index[0].isoformat()
        meta["last_bar"] = frame.index[-1].isoformat()
        preview = pd.concat([frame.head(preview_rows // 2 + 1), frame.tail(preview_rows // 2)])
        meta["preview"] = MetadataValue.md(preview.to_markdown(floatfmt=".6g"))
    return meta


def counts_metadata(counts: dict[str, int]) -> MetadataValue:
    """Per-column counts as JSON (zeros left out, so the UI shows what happened)."""
    return MetadataValue.json({k: int(v) for k, v in counts.items() if v})
