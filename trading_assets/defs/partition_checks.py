"""What every asset check is built from: the partition-aware decorator and the result.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated checks.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetsDefinition,
    asset_check,
)

from trading_assets.defs.partitions import market_partitions, partition_of


def partition_check(
    asset_def: AssetsDefinition, name: str, description: str, blocking: bool = True, **kwargs: Any
) -> Callable[[Callable[..., AssetCheckResult]], AssetChecksDefinition]:
    """``@asset_check`` evaluated on the materialized partition of ``asset_def`` (blocking by default)."""
    return asset_check(
        asset=asset_def,
        name=name,
        partitions_def=market_partitions,
        blocking=blocking,
        description=description,
        **kwargs,
    )


def partition_metadata(context: AssetCheckExecutionContext | AssetExecutionContext) -> dict[str, Any]:
    """The evaluated partition: its symbol, timeframe and key (a run over several partitions: their keys)."""
    if not context.has_partition_key:
        return {"partitions": list(context.partition_keys)} if context.has_partition_key_range else {}
    partition = partition_of(context.partition_key)
    symbol, timeframe = partition.symbol, partition.timeframe
    return {"symbol": symbol, "timeframe": timeframe, "partition": str(context.partition_key)}


def check_result(
    context: AssetCheckExecutionContext | AssetExecutionContext,
    problems: Sequence[str],
    metadata: Mapping[str, Any],
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR,
    check_name: str | None = None,
) -> AssetCheckResult:
    """Passed when there is no problem; the problems, joined, describe a failure; the partition leads the metadata.

    ``check_name`` names a check declared on the asset itself (``check_specs``), evaluated in its body.
    """
    return AssetCheckResult(
        check_name=check_name,
        passed=not problems,
        severity=severity,
        description="; ".join(problems) or None,
        metadata={**partition_metadata(context), **metadata},
    )
