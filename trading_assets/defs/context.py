"""The other partitions a feature set reads (:class:`trading_assets.features.FeatureSet`): declared to Dagster as
partition mappings of ``features``' upstream, so the UI draws them, staleness follows them and backfills wait for
them, and read from the IO manager's store.

* ``indicators`` -> ``features``: the partition's own indicators and those of its coarser timeframes
  (:data:`trading_assets.features.COARSER`; symbol identical).
* ``raw_candles`` -> ``features``: the candles of the reference symbols (``TRADING_REFERENCE_SYMBOLS``) of the
  same timeframe.

A code location declares the lineage of its feature set (``TRADING_FEATURE_SET``, default ``default``: the
partition's own indicators only), not of every set: a dependency the set does not have would make its features
stale whenever another partition changes, and make every backfill wait for the reference symbol. A run that picks
another set reads what it needs all the same; the step warns that its lineage is not declared.
"""

from __future__ import annotations

import warnings

import pandas as pd
from dagster import (
    AssetDep,
    AssetIn,
    BetaWarning,
    DimensionPartitionMapping,
    IdentityPartitionMapping,
    MultiPartitionMapping,
    SpecificPartitionsPartitionMapping,
    StaticPartitionMapping,
)

from trading_assets import settings
from trading_assets.calendars import ALWAYS_OPEN
from trading_assets.defs.resources import Locations
from trading_assets.errors import CandleDataError
from trading_assets.features import (
    COARSER,
    FeatureContext,
    context_shortfalls,
    feature_set,
)
from trading_assets.partition import Partition
from trading_assets.provenance import Provenance

warnings.filterwarnings("ignore", message="Class `MultiPartitionMapping`", category=BetaWarning)


def _mapping(symbol, timeframe) -> MultiPartitionMapping:
    return MultiPartitionMapping(
        {
            "symbol": DimensionPartitionMapping("symbol", symbol),
            "timeframe": DimensionPartitionMapping("timeframe", timeframe),
        }
    )


def declared_lineage(declared: str, raw_candles) -> tuple[dict[str, AssetIn], list[AssetDep]]:
    """The ``ins`` and ``deps`` of ``features`` in a code location whose feature set is ``declared``."""
    features = feature_set(declared)
    ins = {"indicators": AssetIn(partition_mapping=coarser_mapping())} if features.coarser else {}
    deps = [AssetDep(raw_candles, partition_mapping=reference_mapping())] if features.reference else []
    return ins, deps


def serves(name: str, partition: Partition) -> bool:
    """Whether the feature set ``name`` can be built for ``partition``: its coarser timeframes exist, its market has
    a reference symbol."""
    try:
        feature_set(name).reads(partition, settings.reference_symbols())
    except CandleDataError:
        return False
    return True


def undeclared_reads(declared: str, used: str) -> str | None:
    """Why the lineage of the set ``used`` by a run is not what the code location declares (set ``declared``), or
    None when it reads nothing more."""
    wanted, have = feature_set(used), feature_set(declared)
    missing = [
        what
        for what, needs, declared_too in (
            ("coarser timeframes", wanted.coarser, have.coarser),
            ("reference symbol", wanted.reference, have.reference),
        )
        if needs and not declared_too
    ]
    if not missing:
        return None
    return (
        f"feature set {used} reads the {' and the '.join(missing)}, which this code location does not declare as "
        f"upstream (its set is {declared}; TRADING_FEATURE_SET={used} declares it): staleness and backfills do not "
        "follow them"
    )


def coarser_mapping() -> MultiPartitionMapping:
    """A ``features`` partition reads its own indicators and those of its symbol's coarser timeframes (Dagster's
    static mapping is keyed by the upstream timeframe: the timeframes whose features read it)."""
    readers = {up: {up, *(down for down, coarser in COARSER.items() if up in coarser)} for up in COARSER}
    return _mapping(IdentityPartitionMapping(), StaticPartitionMapping(readers))


def reference_mapping() -> MultiPartitionMapping:
    """A ``features`` partition may read the raw candles of the reference symbols of its timeframe."""
    return _mapping(SpecificPartitionsPartitionMapping(list(settings.reference_symbols())), IdentityPartitionMapping())


def load_context(
    locations: Locations, partition: Partition, name: str, indicators: pd.DataFrame, ffill_limit: int
) -> FeatureContext | None:
    """What the feature set ``name`` reads from other partitions for ``partition``'s ``indicators``, from their
    stored frames; None when it reads none. Stops with an error naming the partition that is not stored or does
    not cover the bars."""
    from trading_assets.defs.io_manager import read_frame, stored_path

    features = feature_set(name)
    if not features.coarser and not features.reference:
        return None
    calendar = Provenance.of(indicators).calendar
    if features.coarser and calendar != ALWAYS_OPEN:
        raise CandleDataError(
            partition.symbol,
            partition.timeframe,
            f"the {name} features join coarser bars as of their close, taken as their open plus the timeframe: true "
            f"on a market open around the clock ({ALWAYS_OPEN}), not on the sessions of {calendar}",
        )
    reads = features.reads(partition, settings.reference_symbols())
    frames = []
    for asset, other in reads:
        path = stored_path(locations, asset, other)
        if not path.exists():
            raise CandleDataError(
                partition.symbol,
                partition.timeframe,
                f"the {name} features read the {asset} of {other.symbol} {other.timeframe}, which are not stored: "
                f"materialize them first (trading-assets materialize --assets data --symbols {other.symbol} "
                f"--timeframes {other.timeframe})",
            )
        frames.append(read_frame(path))
    context = FeatureContext.from_reads(reads, frames)
    problems = context_shortfalls(context, indicators.index, partition.timeframe, ffill_limit)
    if problems:
        raise CandleDataError(
            partition.symbol,
            partition.timeframe,
            f"the {name} features of {partition.symbol} {partition.timeframe}: "
            + "; ".join(problems)
            + ": materialize them over this span first",
        )
    return context
