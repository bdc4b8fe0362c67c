"""One market series: a symbol on a timeframe, the unit every data asset is partitioned by."""

from __future__ import annotations

from dataclasses import dataclass

from trading_assets.timeframes import validate_symbol, validate_timeframe

KEY_SEPARATOR = "|"  # Dagster joins the dimensions of a multi-partition key with it, in dimension-name order


@dataclass(frozen=True, order=True)
class Partition:
    """``symbol`` x ``timeframe``, validated when made: whatever route a key came by (CLI, GraphQL, a sensor),
    its parts become paths and SQL values only as a :class:`Partition`."""

    symbol: str
    timeframe: str

    def __post_init__(self) -> None:
        validate_symbol(self.symbol)
        validate_timeframe(self.timeframe)

    @classmethod
    def parse(cls, key: str) -> Partition:
        """The partition of a key such as ``KRW-BTC|1m``."""
        symbol, separator, timeframe = str(key).rpartition(KEY_SEPARATOR)
        if not separator:
            raise ValueError(f"invalid partition key {key!r}: expected <symbol>{KEY_SEPARATOR}<timeframe>")
        return cls(symbol, timeframe)

    @property
    def key(self) -> str:
        """The partition key's string form, ``KRW-BTC|1m``."""
        return f"{self.symbol}{KEY_SEPARATOR}{self.timeframe}"

    def __str__(self) -> str:
        return f"{self.symbol} {self.timeframe}"
