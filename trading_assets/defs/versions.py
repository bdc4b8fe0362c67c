"""Code and data versions: how Dagster tells a stale partition from a fresh one.

* :data:`CODE_VERSION`, the code version of every partitioned asset: a hash of the package's
  source, of the versions of the libraries that compute (TA-Lib, NumPy, pandas, PyTorch) and of the
  code location's feature set and reference symbols (``TRADING_FEATURE_SET``,
  ``TRADING_REFERENCE_SYMBOLS``). Any change to them makes what was materialized before stale; nothing
  finer is claimed.
* :func:`frame_data_version`, the data version ``raw_candles`` and ``features`` report: a hash of the
  frame (index and values, bit for bit) and of its provenance. Collecting the same candles again gives
  the same version, so the assets computed from them stay fresh; one changed bar makes them stale.
  Features computed again with the same rows keep their version, so the model side stays fresh.
* :func:`stale_or_missing`: the assets Dagster's staleness rules report STALE or MISSING for a
  partition (a new code version, an upstream with a new data version, never materialized). The UI
  shows the same status; ``trading-assets materialize`` uses it to skip partitions whose assets are
  all up to date (``--force`` recomputes them anyway).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    BetaWarning,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DataVersion,
)

from trading_assets import settings
from trading_assets.defs.dagster_private import (
    AssetGraphView,
    BaseAssetGraph,
    CachingStaleStatusResolver,
    StaleStatus,
    TemporalContext,
    get_current_datetime,
)
from trading_assets.incremental import LINEAGE

# Output(data_version=...) is beta in Dagster 1.13; the warning would reach the terminal on every run.
warnings.filterwarnings("ignore", message="Parameter `data_version`", category=BetaWarning)

_COMPUTING_LIBRARIES = ("ta-lib", "numpy", "pandas", "torch")


def _code_version() -> str:
    digest = hashlib.blake2b(digest_size=8)
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    # the code location's feature set and reference symbols: another set or reference, other rows
    digest.update(f"features={settings.feature_set()};references={','.join(settings.reference_symbols())}\0".encode())
    for dist in _COMPUTING_LIBRARIES:
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{dist}=={version}\0".encode())
    return digest.hexdigest()


CODE_VERSION = _code_version()


def frame_data_version(frame: pd.DataFrame) -> DataVersion:
    """The data version of a data asset's frame: its index, columns and values bit for bit, and its provenance
    (not its lineage: an incremental refresh and a full computation of the same rows are the same version)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(frame.index.as_unit("ns").asi8.tobytes())
    for column in frame.columns:
        digest.update(f"\0{column}\0{frame[column].dtype}\0".encode())
        digest.update(frame[column].to_numpy().tobytes())
    attrs = {k: v for k, v in frame.attrs.items() if k != LINEAGE}  # how it was computed is not what it holds
    digest.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    return DataVersion(digest.hexdigest())


def stale_or_missing(
    instance: DagsterInstance, asset_graph: BaseAssetGraph, keys: Iterable[AssetKey], partition_key: str
) -> list[AssetKey]:
    """The assets among ``keys`` whose ``partition_key`` Dagster reports STALE or MISSING."""
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    resolver = CachingStaleStatusResolver(instance, asset_graph, view)
    return [key for key in keys if resolver.get_status(key, partition_key) != StaleStatus.FRESH]


@dataclass(frozen=True)
class CheckedRuns:
    """The runs that last materialized some assets of a partition, and their check evaluations on them."""

    run_of: dict[AssetKey, str]
    checks: list[tuple[AssetKey, bool, AssetCheckSeverity]]

    def of(self, keys: Iterable[AssetKey]) -> tuple[set[str], list[tuple[bool, AssetCheckSeverity]]]:
        """The runs and check results (passed, severity) of ``keys``, a subset of the assets."""
        keys = set(keys)
        runs = {self.run_of[key] for key in keys}
        return runs, [(passed, severity) for key, passed, severity in self.checks if key in keys]


def previous_check_results(
    instance: DagsterInstance, keys: Iterable[AssetKey], partition_key: str
) -> CheckedRuns | None:
    """The runs that last materialized ``keys`` for the partition, and their check evaluations on those assets.

    ``None`` when one of those runs did not succeed or an ERROR check failed in it: then the assets are
    computed again rather than reported up to date over a failure.
    """
    keys = set(keys)
    run_of: dict[AssetKey, str] = {}
    for key in keys:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=[partition_key]), limit=1
        ).records
        if not records:
            return None
        run_of[key] = records[0].run_id
    checks = []
    for run_id in sorted(set(run_of.values())):
        run = instance.get_run_by_id(run_id)
        if run is None or run.status != DagsterRunStatus.SUCCESS:
            return None
        for record in instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
        ).records:
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            if evaluation.asset_key in keys:
                if not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR:
                    return None
                checks.append((evaluation.asset_key, evaluation.passed, evaluation.severity))
    return CheckedRuns(run_of, checks)
