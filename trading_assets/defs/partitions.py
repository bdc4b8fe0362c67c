"""The one partitioning of every data asset: symbol (dynamic) x timeframe (static)."""

from __future__ import annotations

from collections.abc import Iterable

from dagster import (
    DagsterInstance,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from trading_assets.timeframes import TIMEFRAMES, validate_symbol, validate_timeframe

SYMBOL_PARTITIONS_NAME = "symbol"
DEFAULT_SYMBOLS: tuple[str, ...] = ("KRW-BTC", "KRW-ETH")

symbol_partitions = DynamicPartitionsDefinition(name=SYMBOL_PARTITIONS_NAME)
timeframe_partitions = StaticPartitionsDefinition(list(TIMEFRAMES))
market_partitions = MultiPartitionsDefinition({"symbol": symbol_partitions, "timeframe": timeframe_partitions})


def partition_key(symbol: str, timeframe: str) -> MultiPartitionKey:
    """The partition key of one market series (its string form reads ``KRW-BTC|1m``)."""
    return MultiPartitionKey({"symbol": validate_symbol(symbol), "timeframe": timeframe})


def split_partition_key(key: str | MultiPartitionKey) -> tuple[str, str]:
    """``(symbol, timeframe)`` of a partition key, validated: whatever route added the symbol (CLI,
    GraphQL, a sensor), it becomes a path and a SQL value only after passing here."""
    if isinstance(key, MultiPartitionKey):
        dims = key.keys_by_dimension
        symbol, timeframe = dims["symbol"], dims["timeframe"]
    else:
        symbol, _, timeframe = key.rpartition("|")
    return validate_symbol(symbol), validate_timeframe(timeframe)


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
