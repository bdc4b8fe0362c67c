"""Every private Dagster name this project uses, in one place (``dagster._...`` modules move between releases).

Import them from here, never from ``dagster._`` directly; ``trading_assets_tests/defs/test_dagster_private.py``
imports each one, so an upgrade that moves one fails there, naming it. Resolved on first use, so a
module that needs one late (the backfill's workspace loading) does not slow the code location's import.
"""

import importlib
from typing import Any

# name -> the private module that holds it (Dagster 1.13)
PRIVATE: dict[str, str] = {
    "SerializableErrorInfo": "dagster._utils.error",
    "make_new_run_id": "dagster._core.utils",
    "CODE_VERSION_TAG": "dagster._core.definitions.data_version",
    "CachingStaleStatusResolver": "dagster._core.definitions.data_version",
    "StaleStatus": "dagster._core.definitions.data_version",
    "AssetCheckExecutionRecord": "dagster._core.storage.asset_check_execution_record",
    "AssetCheckExecutionRecordStatus": "dagster._core.storage.asset_check_execution_record",
    "PartitionKeyFilter": "dagster._core.event_api",
    "loadable_targets_from_python_module": "dagster._core.workspace.autodiscovery",
    "AssetGraphView": "dagster._core.asset_graph_view.asset_graph_view",
    "TemporalContext": "dagster._core.asset_graph_view.asset_graph_view",
    "BaseAssetGraph": "dagster._core.definitions.assets.graph.base_asset_graph",
    "get_current_datetime": "dagster._time",
    "WorkspaceProcessContext": "dagster._core.workspace.context",
    "WorkspaceFileTarget": "dagster._core.workspace.load_target",
    "BulkActionStatus": "dagster._core.execution.backfill",
    "serialize_value": "dagster._serdes",
    "ASSET_PARTITION_RANGE_START_TAG": "dagster._core.storage.tags",
    "ASSET_PARTITION_RANGE_END_TAG": "dagster._core.storage.tags",
}


def __getattr__(name: str) -> Any:
    if name not in PRIVATE:
        raise AttributeError(f"{name!r} is not a private Dagster name this project uses (see PRIVATE)")
    return getattr(importlib.import_module(PRIVATE[name]), name)
