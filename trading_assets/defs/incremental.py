"""The data assets' incremental refresh in Dagster terms: their previous output, and the check that compares
an incremental refresh with a full computation (see trading_assets.incremental)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, AssetRecordsFilter

from trading_assets.defs.dagster_private import CODE_VERSION_TAG
from trading_assets.defs.io_manager import read_frame, read_provenance, stored_path
from trading_assets.defs.partition_checks import check_result
from trading_assets.defs.partitions import market_partitions, partition_of
from trading_assets.defs.resources import IncrementalResource
from trading_assets.defs.versions import CODE_VERSION
from trading_assets.incremental import Lineage, differences

INCREMENTAL_CHECK = "incremental_matches_full"


def incremental_check(asset: str) -> AssetCheckSpec:
    """The check an incremental data asset evaluates in its own body."""
    return AssetCheckSpec(
        INCREMENTAL_CHECK,
        asset=asset,
        partitions_def=market_partitions,  # evaluated per partition, like the other data checks
        blocking=True,
        description="An incremental refresh (only the changed bars computed, with the warm-up and lead-in they "
        "need) equals a full computation on every row, within the warm-up tolerance (the candles bit for bit); "
        "compared every incremental.verify_every refreshes. On a difference the full computation is stored and "
        "this fails.",
    )


def previous_output(context: AssetExecutionContext, incremental: IncrementalResource) -> pd.DataFrame | None:
    """This asset partition's stored output, when a refresh may extend it: incremental refreshes enabled, and
    the file is the one its last materialization wrote, by this code version. Otherwise None (compute all)."""
    if not incremental.enabled:
        return None
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[context.partition_key]), limit=1
    ).records
    if not records or (records[0].asset_materialization.tags or {}).get(CODE_VERSION_TAG) != CODE_VERSION:
        return None
    path = stored_path(incremental.locations, context.asset_key.path[-1], partition_of(context.partition_key))
    try:
        if read_provenance(path).get("run_id") != records[0].run_id:
            return None
        frame = read_frame(path)
    except (OSError, KeyError, ValueError):  # gone, or not a file this IO manager wrote: compute all
        return None
    return frame if Lineage.whole(frame) is not None else None  # a file that lost rows since: compute all


def verified(
    context: AssetExecutionContext,
    incremental: IncrementalResource,
    frame: pd.DataFrame,
    full: Callable[[], pd.DataFrame],
    tolerance: float,
    attrs: tuple[str, ...] = ("breaks",),
) -> tuple[pd.DataFrame, AssetCheckResult]:
    """``frame`` (its lineage attached) and the ``incremental_matches_full`` result: passed for a full
    computation and for an incremental one not due for comparison; when due, compared with ``full()``: every
    row (the kept ones too: a window that slid must still be what a full computation gives) and the ``attrs``
    named. A difference beyond ``tolerance`` fails the check, and the full frame is returned instead."""
    lineage = Lineage.of(frame)
    if lineage is None or not lineage.incremental:
        return frame, check_result(context, [], {"computed": "in full"}, check_name=INCREMENTAL_CHECK)
    figures = {"computed": "incremental", "changed_from": lineage.changed_from, "refreshes_since_full": lineage.depth}
    if not lineage.verification_due(incremental.verify_every):
        figures["compared_with_full"] = False
        return frame, check_result(context, [], figures, check_name=INCREMENTAL_CHECK)
    reference = full()
    found = differences(frame, reference, min(frame.index[0], reference.index[0]), tolerance)
    moved = [k for k in attrs if frame.attrs.get(k) != reference.attrs.get(k)]
    if moved:
        found["attrs"] = moved
    figures.update(compared_with_full=True, differences=str(found))
    problems = []
    if found:
        problems.append(
            f"{partition_of(context.partition_key)}: the incremental refresh (spliced at {lineage.changed_from}) "
            f"differs from a full computation (tolerance {tolerance:g}): {found}; the full computation is stored"
        )
        frame = Lineage.full(lineage.input).attach(reference)
    return frame, check_result(context, problems, figures, AssetCheckSeverity.ERROR, INCREMENTAL_CHECK)
