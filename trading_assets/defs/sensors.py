"""Alerts on failed asset-check evaluations and failed runs, delivered from an outbox.

``asset_check_alerts`` (every ``$TRADING_ALERT_SENSOR_INTERVAL`` s) does, within its tick budget:
1. marks failed the runs stuck at STARTED whose worker process is gone (killed with -9): the default
   run launcher cannot health-check its workers, so Dagster's run monitoring would only time them
   out after ``max_runtime_seconds``;
2. queues each new failed check evaluation in the outbox (keyed by event id: queued once) and advances
   its cursor (per check, the id of the last execution handled);
3. POSTs due alerts of the outbox to the webhook (short timeout, backoff between ticks).
``run_failure_alerts`` queues failed runs (source errors, crashes, dead workers) in the same outbox.

No `from __future__ import annotations` here: Dagster reads the resource annotations.
"""

import datetime
import json
import time
from collections.abc import Sequence

from dagster import (
    AssetCheckKey,
    AssetChecksDefinition,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from trading_assets import settings
from trading_assets.alerts import CheckAlert, RunFailureAlert
from trading_assets.defs.dagster_private import AssetCheckExecutionRecord, AssetCheckExecutionRecordStatus
from trading_assets.defs.resources import AlertResource
from trading_assets.defs.runs import root_error
from trading_assets.processes import process_gone

_PAGE = 100
_FIGURE_KEYS = (
    "polluted_cells",
    "max_nan_rate",
    "failed_rules",
    "coverage",
    "breaks",
    "duplicated_timestamps",
    "filled_fraction",
    "rows",
)


EARLIER_RUNS_SWEPT = "~earlier_run_failures_swept"  # cursor key: the first tick's sweep is done


def fail_dead_runs(instance: DagsterInstance, grace_seconds: float) -> list[str]:
    """Mark failed each STARTED run whose worker process is gone and whose last event is older than
    ``grace_seconds``; returns their ids. Only where the run launcher cannot check worker health itself
    (run workers on this host: the default launcher, in-process CLI runs)."""
    if instance.run_launcher.supports_check_run_worker_health:
        return []
    failed = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        run = record.dagster_run
        starts = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_START, limit=1).records
        pid = starts[0].event_log_entry.dagster_event.pid if starts else None
        last = instance.get_records_for_run(run.run_id, ascending=False, limit=1).records
        quiet_for = time.time() - (last[0].event_log_entry.timestamp if last else record.create_timestamp.timestamp())
        if pid is None or quiet_for < grace_seconds or not process_gone(pid):
            continue
        instance.report_run_failed(
            run,
            f"run worker (pid {pid}) is gone, nothing logged for {quiet_for:.0f}s: marked failed by asset_check_alerts",
        )
        failed.append(run.run_id)
    return failed


def _new_executions(instance: DagsterInstance, key: AssetCheckKey, after_id: int) -> list[AssetCheckExecutionRecord]:
    """Executions of one check with id > ``after_id``, oldest first (the storage pages newest first)."""
    out: list[AssetCheckExecutionRecord] = []
    cursor = None
    while True:
        page = instance.event_log_storage.get_asset_check_execution_history(key, limit=_PAGE, cursor=cursor)
        fresh = [r for r in page if r.id > after_id]
        out.extend(fresh)
        if len(fresh) < len(page) or len(page) < _PAGE:
            return sorted(out, key=lambda r: r.id)
        cursor = page[-1].id


def _failed_steps(instance: DagsterInstance, run_id: str) -> set[str]:
    return {e.step_key for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)}


def _alert_for(
    record: AssetCheckExecutionRecord, alerts: AlertResource, planned: bool, partition_tag: str | None
) -> CheckAlert:
    if planned:  # the check's own step crashed before producing a result
        return CheckAlert(
            record.id,
            record.key.asset_key.to_user_string(),
            record.partition or partition_tag,
            record.key.name,
            "ERROR",
            "the check crashed before producing a result (see the run's logs)",
            {},
            record.run_id,
            alerts.run_url(record.run_id),
            record.create_timestamp,
        )
    evaluation = record.event.dagster_event.event_specific_data
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    return CheckAlert(
        event_id=record.id,
        asset=record.key.asset_key.to_user_string(),
        partition=record.partition or evaluation.partition or metadata.get("partition") or partition_tag,
        check=record.key.name,
        severity=evaluation.severity.value,
        description=evaluation.description,
        figures={k: metadata[k] for k in _FIGURE_KEYS if k in metadata},
        run_id=record.run_id,
        run_url=alerts.run_url(record.run_id),
        timestamp=record.create_timestamp,
    )


def build_alert_sensor(
    checks: Sequence[AssetChecksDefinition], interval_seconds: int | None = None
) -> SensorDefinition:
    """A sensor alerting once on each failed evaluation of ``checks`` and delivering the outbox, every
    ``interval_seconds`` (default ``$TRADING_ALERT_SENSOR_INTERVAL`` or 30).

    The cursor maps each check to the id of the last execution handled. An execution of a run that is
    still going is looked at again on later ticks (the cursor stays before it); later executions are
    queued meanwhile, the outbox keeps them from being queued twice.
    """
    if interval_seconds is None:
        interval_seconds = _interval()
    step_of = {key: c.node_def.name for c in checks for key in c.check_keys}
    check_keys = list(step_of)

    @sensor(
        name="asset_check_alerts",
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Queues an alert for each new failed asset-check evaluation, delivers queued alerts "
        "(webhook + log file), and marks failed the runs whose worker died.",
    )
    def asset_check_alerts(context: SensorEvaluationContext, alerts: AlertResource):
        started = time.monotonic()
        for run_id in fail_dead_runs(context.instance, alerts.dead_run_grace_seconds):
            context.log.warning(f"run {run_id}: worker process gone, marked failed")
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        queued = 0
        if not cursor.get(EARLIER_RUNS_SWEPT):  # the first tick ever: failures from before any sensor ran
            queued += alert_earlier_run_failures(context.instance, alerts)
            cursor[EARLIER_RUNS_SWEPT] = 1
        for key in check_keys:
            name = key.to_user_string()
            waiting = False  # an earlier execution is not resolved yet: the cursor stays before it
            for record in _new_executions(context.instance, key, cursor.get(name, 0)):
                resolved, alert = _examine(context.instance, record, step_of[key], alerts)
                if alert is not None and alerts.raise_alert(alert):
                    queued += 1
                    context.log.info(f"alert queued: {alert.asset} {alert.partition} {alert.check} ({alert.key})")
                waiting = waiting or not resolved
                if not waiting:
                    cursor[name] = record.id
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        summary = f"{queued} alert(s) queued"
        webhook = alerts.resolved_webhook()
        if webhook:
            budget = alerts.tick_budget_seconds - (time.monotonic() - started)
            report = alerts.outbox().deliver(
                webhook,
                budget,
                min(alerts.webhook_timeout_seconds, alerts.tick_budget_seconds / 2),
                alerts.backoff_seconds,
                alerts.max_backoff_seconds,
                alerts.expire_after_seconds,
            )
            for event_id, error in report.failed.items():
                context.log.warning(f"alert {event_id} not delivered: {error}")
            for event_id in report.expired:
                context.log.error(f"alert {event_id} expired undelivered")
            summary += f", {len(report.delivered)} delivered, {report.pending} pending"
        return SkipReason(summary)

    return asset_check_alerts


def _interval() -> int:
    return settings.alert_sensor_interval()


def _examine(
    instance: DagsterInstance, record: AssetCheckExecutionRecord, step: str, alerts: AlertResource
) -> tuple[bool, CheckAlert | None]:
    """(whether the execution is resolved, its alert if it failed)."""
    if record.status == AssetCheckExecutionRecordStatus.SUCCEEDED:
        return True, None
    run = instance.get_run_by_id(record.run_id)
    partition_tag = run.tags.get("dagster/partition") if run else None
    if record.status == AssetCheckExecutionRecordStatus.PLANNED:
        if run is not None and not run.is_finished:
            return False, None  # not evaluated yet (or its worker died: fail_dead_runs resolves that)
        if run is None or step not in _failed_steps(instance, record.run_id):
            return True, None  # skipped (upstream blocked or failed, run canceled or killed)
        return True, _alert_for(record, alerts, True, partition_tag)
    return True, _alert_for(record, alerts, False, partition_tag)


def _blocked_by_check_only(failures: Sequence) -> bool:
    """Whether every failed step failed because a blocking check failed (already alerted as a check)."""
    return bool(failures) and all(
        f.event_specific_data.error and f.event_specific_data.error.cls_name == "DagsterAssetCheckFailedError"
        for f in failures
    )


def build_run_failure_sensor(interval_seconds: int | None = None) -> SensorDefinition:
    """A sensor queueing one alert per failed run (any code location) in the alert outbox, naming job,
    partition, source, failing step and error; runs stopped only by a blocking check are left to
    ``asset_check_alerts``."""

    @run_failure_sensor(
        name="run_failure_alerts",
        minimum_interval_seconds=interval_seconds if interval_seconds is not None else _interval(),
        default_status=DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=True,  # CLI runs (execute_in_process) have no code location
        description="Queues an alert for each failed run (source errors, crashes, dead workers).",
    )
    def run_failure_alerts(context: RunFailureSensorContext, alerts: AlertResource):
        run = context.dagster_run
        alert = run_failure_alert(run, context.get_step_failure_events(), context.failure_event.message, alerts)
        if alert is not None and alerts.raise_alert(alert):
            context.log.info(f"alert queued: run {run.run_id} failed ({alert.key})")

    return run_failure_alerts


def run_failure_alert(
    run: DagsterRun, failures: Sequence[DagsterEvent], failure_message: str | None, alerts: AlertResource
) -> RunFailureAlert | None:
    """The alert of a failed run: job, partition, source, failing step and error; None for a run stopped only
    by a blocking check (alerted as that check)."""
    if _blocked_by_check_only(failures):
        return None
    first = failures[0] if failures else None
    error = root_error(first.event_specific_data.error) if first and first.event_specific_data.error else None
    source = run.run_config.get("resources", {}).get("candle_source", {}).get("config", {}).get("kind")
    return RunFailureAlert(
        run_id=run.run_id,
        job=run.job_name,
        partition=run.tags.get("dagster/partition"),
        source=source or "as configured in code",
        step=first.step_key if first else None,
        error=error or failure_message or "run failed",
        run_url=alerts.run_url(run.run_id),
        timestamp=time.time(),
    )


def alert_earlier_run_failures(instance: DagsterInstance, alerts: AlertResource) -> int:
    """Queue the alerts of runs that failed before any sensor watched (the daemon's very first start): the
    run-failure sensor starts at the present. Only runs within the alerts' expiry; the outbox's event ids
    keep a run alerted once, whichever sensor sees it. Returns how many were queued."""
    since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=alerts.expire_after_seconds)
    queued = 0
    for record in instance.get_run_records(
        filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE], updated_after=since)
    ):
        run = record.dagster_run
        failures = [e.dagster_event for e in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)]
        ended = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
        alert = run_failure_alert(run, failures, ended[-1].message if ended else None, alerts)
        queued += bool(alert is not None and alerts.raise_alert(alert))
    return queued
