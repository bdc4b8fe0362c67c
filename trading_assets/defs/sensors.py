"""A sensor that alerts on every new failed asset-check evaluation.

The cursor holds, per check, the id of the last execution handled, so each evaluation is alerted
once, and a restarted daemon continues where it stopped.

No `from __future__ import annotations` here: Dagster reads the resource annotations.
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path

from dagster import (
    AssetCheckKey,
    AssetChecksDefinition,
    ConfigurableResource,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)
from pydantic import Field

from trading_assets.alerts import CheckAlert, deliver
from trading_assets.defs.locations import Locations
from trading_assets.redaction import redact

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


class AlertResource(ConfigurableResource):
    """How hard alert delivery tries; where alerts go is ``locations`` (webhook, log file, UI links)."""

    locations: Locations
    retries: int = Field(default=3, ge=0, description="Webhook retries before giving up on one alert")
    backoff_seconds: float = Field(default=1.0, ge=0, description="First retry delay, doubled each time")

    def resolved_webhook(self) -> str | None:
        return self.locations.resolved_webhook()

    def resolved_log_path(self) -> Path:
        return self.locations.resolved_alert_log()

    def run_url(self, run_id: str) -> str:
        return redact(f"{self.locations.resolved_webui_url().rstrip('/')}/runs/{run_id}")


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
    """A sensor alerting once on each failed evaluation of ``checks``, every ``interval_seconds``
    (default ``$TRADING_ALERT_SENSOR_INTERVAL`` or 30).

    The cursor maps each check to the id of the last execution handled. An execution still
    running stops the scan of its check there, so it is alerted once it has a result.
    """
    if interval_seconds is None:
        interval_seconds = int(os.environ.get("TRADING_ALERT_SENSOR_INTERVAL", "30"))
    step_of = {key: c.node_def.name for c in checks for key in c.check_keys}
    check_keys = list(step_of)

    @sensor(
        name="asset_check_alerts",
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Alerts (webhook + log file) on each new failed asset-check evaluation.",
    )
    def asset_check_alerts(context: SensorEvaluationContext, alerts: AlertResource):
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        sent = 0
        for key in check_keys:
            name = key.to_user_string()
            for record in _new_executions(context.instance, key, cursor.get(name, 0)):
                if record.status == AssetCheckExecutionRecordStatus.SUCCEEDED:
                    cursor[name] = record.id
                    continue
                run = context.instance.get_run_by_id(record.run_id)
                if record.status == AssetCheckExecutionRecordStatus.PLANNED:
                    if run is not None and not run.is_finished:
                        break  # not evaluated yet: come back to it next tick
                    if run is None or step_of[key] not in _failed_steps(context.instance, record.run_id):
                        cursor[name] = record.id  # skipped (upstream blocked or failed, run canceled)
                        continue
                alert = _alert_for(
                    record,
                    alerts,
                    record.status == AssetCheckExecutionRecordStatus.PLANNED,
                    run.tags.get("dagster/partition") if run else None,
                )
                delivered = deliver(
                    alert,
                    alerts.resolved_log_path(),
                    alerts.resolved_webhook(),
                    alerts.retries,
                    alerts.backoff_seconds,
                )
                context.log.info(
                    f"alert {alert.asset} {alert.partition} {alert.check}: webhook "
                    f"{'delivered' if delivered else 'not delivered'}"
                )
                sent += 1
                cursor[name] = record.id
                context.update_cursor(json.dumps(cursor, sort_keys=True))  # after each alert: never sent twice
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        return SkipReason(f"{sent} alert(s) sent")

    return asset_check_alerts
