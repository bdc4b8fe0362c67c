"""Metadata helpers shared by the assets: what the UI shows for each partition."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
from dagster import MetadataValue, TableColumn, TableColumnConstraints, TableConstraints, TableSchema


def frame_metadata(
    frame: pd.DataFrame, schema: pa.DataFrameSchema | type[pa.DataFrameModel] | None = None, preview_rows: int = 5
) -> dict[str, Any]:
    """Row count, column schema (from the Pandera schema the checks use), time range and a small preview."""
    meta: dict[str, Any] = {"dagster/row_count": len(frame), "columns": len(frame.columns)}
    if schema is not None:
        meta["dagster/column_schema"] = table_schema(schema)
    if len(frame):
        meta["first_bar"] = frame.index[0].isoformat()
        meta["last_bar"] = frame.index[-1].isoformat()
        preview = pd.concat([frame.head(preview_rows // 2 + 1), frame.tail(preview_rows // 2)])
        meta["preview"] = MetadataValue.md(preview.to_markdown(floatfmt=".6g"))
    return meta


def counts_metadata(counts: dict[str, int]) -> MetadataValue:
    """Per-column counts as JSON (zeros left out, so the UI shows what happened)."""
    return MetadataValue.json({k: int(v) for k, v in counts.items() if v})


def _check_text(check: pa.Check) -> str:
    stats = ", ".join(f"{k}={v}" for k, v in (check.statistics or {}).items())
    return f"{check.name}({stats})" if stats else str(check.name)


def table_schema(schema: pa.DataFrameSchema | type[pa.DataFrameModel]) -> TableSchema:
    """Dagster's ``dagster/column_schema`` from a Pandera schema: index and columns, dtypes, descriptions, rules."""
    if isinstance(schema, type):
        schema = schema.to_schema()
    columns = []
    if schema.index is not None:
        index = schema.index
        columns.append(
            TableColumn(
                index.name or "open_time",
                str(index.dtype),
                description=f"index: {index.description}" if index.description else "index",
                constraints=TableColumnConstraints(
                    nullable=index.nullable, unique=index.unique, other=[_check_text(c) for c in index.checks]
                ),
            )
        )
    for name, column in schema.columns.items():
        columns.append(
            TableColumn(
                name,
                str(column.dtype),
                description=column.description,
                constraints=TableColumnConstraints(
                    nullable=column.nullable, unique=column.unique, other=[_check_text(c) for c in column.checks]
                ),
            )
        )
    return TableSchema(
        columns=columns,
        constraints=TableConstraints(
            other=[_check_text(c) for c in schema.checks] + (["strict"] if schema.strict else [])
        ),
    )
