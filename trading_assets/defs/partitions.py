"""The one partitioning of every data asset: symbol (dynamic) x timeframe (static)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from dagster import (
    DagsterInstance,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    PreviewWarning,
    StaticPartitionsDefinition,
)

from trading_assets.partition import Partition
from trading_assets.timeframes import TIMEFRAMES, validate_symbol

SYMBOL_PARTITIONS_NAME = "symbol"
DEFAULT_SYMBOLS: tuple[str, ...] = ("KRW-BTC", "KRW-ETH")

symbol_partitions = DynamicPartitionsDefinition(name=SYMBOL_PARTITIONS_NAME)
timeframe_partitions = StaticPartitionsDefinition(list(TIMEFRAMES))
market_partitions = MultiPartitionsDefinition({"symbol": symbol_partitions, "timeframe": timeframe_partitions})
# The asset checks are partitioned by it too (what records the evaluated partition): "preview" in Dagster 1.13.
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")


def dagster_key(partition: Partition) -> MultiPartitionKey:
    """The Dagster key of ``partition`` (its string form is :attr:`Partition.key`, ``KRW-BTC|1m``)."""
    return MultiPartitionKey({"symbol": partition.symbol, "timeframe": partition.timeframe})


def partition_key(symbol: str, timeframe: str) -> MultiPartitionKey:
    """The Dagster key of ``symbol`` x ``timeframe``, validated."""
    return dagster_key(Partition(symbol, timeframe))


def partition_of(key: str | MultiPartitionKey) -> Partition:
    """The :class:`Partition` of a Dagster key, validated."""
    if isinstance(key, MultiPartitionKey):
        return Partition(key.keys_by_dimension["symbol"], key.keys_by_dimension["timeframe"])
    return Partition.parse(key)


def add_symbols(instance: DagsterInstance, symbols: Iterable[str]) -> list[str]:
    """Validate and register symbols as dynamic partitions; returns the ones that were new."""
    symbols = [validate_symbol(s) for s in symbols]
    existing = set(instance.get_dynamic_partitions(SYMBOL_PARTITIONS_NAME))
    new = [s for s in symbols if s not in existing]
    if new:
        instance.add_dynamic_partitions(SYMBOL_PARTITIONS_NAME, new)
    return new


def ensure_default_symbols(instance: DagsterInstance) -> list[str]:
    """Seed the symbol partitions with :data:`DEFAULT_SYMBOLS` when none exist yet."""
    if instance.get_dynamic_partitions(SYMBOL_PARTITIONS_NAME):
        return []
    return add_symbols(instance, DEFAULT_SYMBOLS)
