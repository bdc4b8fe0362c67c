"""Running jobs for the command line: in-process execution, the skip-if-fresh policy, following daemon runs.

What happens is told to a :class:`RunEventSink` (the progress display of ``trading_assets.app`` implements
it): every event log entry of a partition's runs, and the assets found up to date and not run again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from dagster import (
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    DagsterRun,
    EventLogEntry,
    ExecuteInProcessResult,
    JobDefinition,
)

from trading_assets.defs.dagster_private import SerializableErrorInfo, make_new_run_id
from trading_assets.defs.jobs import DATA_ASSETS
from trading_assets.defs.versions import previous_check_results, stale_or_missing

# The log line raw_candles writes while collecting from the exchange; parsed back for the ETA.
COLLECT_PROGRESS = "collecting {symbol} {timeframe} from {source}: {done}/{expected} requests"
_COLLECT_RE = re.compile(r"collecting \S+ \S+ from \S+: (\d+)/(\d+) requests")

# Silences Dagster's console logger in a run: its events go to the sink instead.
QUIET_LOGGERS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class RunEventSink(Protocol):
    """Whoever shows what runs do."""

    def handle(self, label: str, entry: EventLogEntry) -> None:
        """One event log entry of a run of ``label`` (a partition key, or a job's name)."""

    def up_to_date(
        self,
        label: str,
        keys: Iterable[AssetKey],
        runs: Iterable[str],
        checks: Iterable[tuple[bool, AssetCheckSeverity]],
    ) -> None:
        """The assets ``keys`` of ``label`` were not run again: the ``runs`` computed them, with these ``checks``."""


def collect_progress(symbol: str, timeframe: str, source: str, done: int, expected: int) -> str:
    """The progress message of an exchange collection (``done`` of ``expected`` requests)."""
    return COLLECT_PROGRESS.format(symbol=symbol, timeframe=timeframe, source=source, done=done, expected=expected)


def parse_collect_progress(message: str) -> tuple[int, int] | None:
    """``(done, expected)`` of a :func:`collect_progress` message, or None for any other message."""
    match = _COLLECT_RE.search(message)
    return (int(match.group(1)), int(match.group(2))) if match else None


def root_error(error: SerializableErrorInfo) -> str:
    """``ErrorClass: message`` of the user's exception, not of Dagster's "Error occurred while executing
    op" wrappers around it (a user exception's own cause stays out: its message says more)."""
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    message = error.message.strip()
    qualified, _, rest = message.partition(": ")
    return f"{error.cls_name}: {rest}" if error.cls_name and qualified.endswith(error.cls_name) else message


def execute(
    job: JobDefinition,
    instance: DagsterInstance,
    sink: RunEventSink,
    label: str,
    run_config: dict[str, Any],
    partition_key: str | None = None,
    asset_selection: list[AssetKey] | None = None,
) -> ExecuteInProcessResult:
    """Run ``job`` (or its ``asset_selection`` and their checks) in-process (Dagster's console logger silenced),
    its events feeding ``sink`` as ``label``."""
    run_id = make_new_run_id()
    instance.add_event_listener(run_id, lambda entry: sink.handle(label, entry))
    return job.execute_in_process(
        partition_key=partition_key,
        instance=instance,
        run_config={**run_config, **QUIET_LOGGERS},
        raise_on_error=False,
        run_id=run_id,
        asset_selection=asset_selection,
    )


def materialize_partition(
    job: JobDefinition,
    instance: DagsterInstance,
    sink: RunEventSink,
    partition_key: str,
    run_config: dict[str, Any],
    force: bool = False,
) -> None:
    """Run ``job``'s assets for one partition, skipping those that are up to date.

    When every asset of the job has been materialized for the partition by runs that succeeded without a failed
    ERROR check, ``raw_candles`` and its checks run first; then the other data assets that are stale or missing
    (Dagster's rules, see trading_assets.defs.versions: a new code version, an input with a new data version) and
    everything after them among the data assets; then, judged again, the rest of the job that is stale. A data
    asset computed again with the same rows keeps its data version, so what follows it stays fresh: e.g. the
    features of a partition whose coarser timeframe changed but whose feature set does not read it. Otherwise, or
    with ``force``, one run does it all.
    """
    raw = AssetKey("raw_candles")
    graph = job.asset_layer.asset_graph
    selected = set(job.asset_layer.selected_asset_keys)
    rest = sorted(selected - {raw})
    checked = None if force or raw not in selected else previous_check_results(instance, rest, partition_key)
    if checked is None:
        execute(job, instance, sink, partition_key, run_config, partition_key=partition_key)
        return
    first = execute(job, instance, sink, partition_key, run_config, partition_key=partition_key, asset_selection=[raw])
    if not first.success:
        return
    ran: set[AssetKey] = set()
    for step in (DATA_ASSETS.resolve(graph) - {raw}, None):  # the data first, then what their new versions made stale
        todo = _with_descendants(
            graph, selected, stale_or_missing(instance, graph, sorted(set(rest) - ran), partition_key)
        )
        if step is not None:
            todo &= step
        if not todo:
            continue
        result = execute(
            job, instance, sink, partition_key, run_config, partition_key=partition_key, asset_selection=sorted(todo)
        )
        ran |= todo
        if not result.success:
            return
    fresh = sorted(set(rest) - ran)
    if fresh:  # their runs are the ones checked above
        sink.up_to_date(partition_key, fresh, *checked.of(fresh))


def _with_descendants(graph, selected: set[AssetKey], keys: list[AssetKey]) -> set[AssetKey]:
    """``keys`` and everything after them among the ``selected`` assets."""
    todo, frontier = set(keys), list(keys)
    while frontier:
        children = graph.get(frontier.pop()).child_keys & selected - todo
        todo |= children
        frontier += children
    return todo


def follow_runs(instance: DagsterInstance, runs: Iterable[DagsterRun], sink: RunEventSink, cursors: dict) -> None:
    """Feed ``sink`` the events stored since the last call for each run (runs the daemon executes)."""
    for run in runs:
        label = run.tags.get("dagster/partition", run.job_name)
        while True:
            connection = instance.get_records_for_run(run.run_id, cursor=cursors.get(run.run_id), limit=1000)
            for record in connection.records:
                sink.handle(label, record.event_log_entry)
            if connection.records:
                cursors[run.run_id] = connection.cursor
            if not connection.has_more:
                break
