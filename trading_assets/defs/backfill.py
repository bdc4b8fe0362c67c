"""Real Dagster asset backfills over symbols x timeframes, launched with the GraphQL mutation
``launchPartitionBackfill`` (what the UI's "Materialize partitions" does), picked up by the daemon.

Dagster's own CLI has no asset backfill command (``dagster asset materialize`` runs one partition
in-process; ``dagster job backfill`` makes job backfills), hence this small wrapper. The mutation
is sent to a running webserver (``url``) or executed in-process against the workspace file; either
way the backfill lands in the instance, shows in the UI under Overview > Backfills, and the daemon
launches one run per partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests
from dagster import DagsterInstance, DagsterRun

LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""


def backfill_params(
    partition_keys: Sequence[str],
    asset_keys: Sequence[str],
    run_config: dict[str, Any] | None,
    title: str | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "partitionNames": list(partition_keys),
        "assetSelection": [{"path": [key]} for key in asset_keys],
        "title": title or f"{len(partition_keys)} partitions of {', '.join(asset_keys)}",
        "tags": [{"key": "trading_assets/launched_by", "value": "trading-assets backfill"}],
    }
    if run_config:
        params["runConfigData"] = run_config
    return params


def _graphql_in_process(instance: DagsterInstance, workspace: Path, variables: dict[str, Any]) -> dict[str, Any]:
    from dagster_graphql.schema import create_schema

    from trading_assets.defs.dagster_private import WorkspaceFileTarget, WorkspaceProcessContext

    with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace)])) as process_context:
        context = process_context.create_request_context()
        result = asyncio.run(
            create_schema().execute_async(LAUNCH_BACKFILL, context_value=context, variable_values=variables)
        )
    if result.errors:
        raise RuntimeError(f"GraphQL errors: {[str(e) for e in result.errors]}")
    return result.data


def _graphql_over_http(url: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(
        url.rstrip("/") + "/graphql", json={"query": LAUNCH_BACKFILL, "variables": variables}, timeout=60
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def launch_backfill(
    instance: DagsterInstance, params: dict[str, Any], workspace: Path | None = None, url: str | None = None
) -> str:
    """Submit the backfill; returns its id. Raises with the server's message on failure."""
    variables = {"params": params}
    data = _graphql_over_http(url, variables) if url else _graphql_in_process(instance, workspace, variables)
    answer = data["launchPartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"backfill refused ({answer['__typename']}): {answer.get('message')}")
    return answer["backfillId"]


def wait_for_backfill(
    instance: DagsterInstance,
    backfill_id: str,
    timeout: float = 3600.0,
    poll: float = 2.0,
    on_poll: Callable[[Sequence[DagsterRun]], None] | None = None,
) -> dict[str, str]:
    """Wait until the daemon has finished the backfill and all its runs; returns run id -> status.

    ``on_poll`` sees the backfill's runs at every poll (and once more at the end), e.g. to show progress.
    """
    from dagster import DagsterRunStatus, RunsFilter

    from trading_assets.defs.dagster_private import BulkActionStatus

    deadline = time.monotonic() + timeout
    while True:
        backfill = instance.get_backfill(backfill_id)
        runs = instance.get_runs(RunsFilter.for_backfill(backfill_id))
        if on_poll is not None:
            on_poll(runs)
        if backfill.status != BulkActionStatus.REQUESTED and all(r.is_finished for r in runs):
            return {r.run_id: r.status.value for r in runs}
        if time.monotonic() > deadline:
            states = {r.run_id: r.status.value for r in runs if r.status != DagsterRunStatus.SUCCESS}
            raise TimeoutError(f"backfill {backfill_id} still {backfill.status.value} after {timeout:.0f}s: {states}")
        time.sleep(poll)
