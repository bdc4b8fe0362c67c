"""A code location holding only the project's alert sensors, tuned for the daemon tests (1 s interval,
short webhook timeout, fast backoff, a 2 s grace for dead run workers)."""

from dagster import Definitions

from trading_assets.defs.checks import CHECKS
from trading_assets.defs.research import evaluation
from trading_assets.defs.resources import AlertResource, Locations
from trading_assets.defs.sensors import build_alert_sensor, build_run_failure_sensor
from trading_assets.defs.training import trained_model

defs = Definitions(
    sensors=[
        build_alert_sensor([*CHECKS, trained_model, evaluation], interval_seconds=1),
        build_run_failure_sensor(interval_seconds=1),
    ],
    resources={
        "alerts": AlertResource(
            locations=Locations.from_env(),
            tick_budget_seconds=6,
            webhook_timeout_seconds=1,
            backoff_seconds=0.5,
            max_backoff_seconds=2,
            dead_run_grace_seconds=2,
        )
    },
)
