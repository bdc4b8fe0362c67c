"""Freshness: per-timeframe schedules refresh the newest candles (and everything downstream of
them); training has its own, slower cadence.

A refresh run re-materializes raw_candles -> indicators -> features for every registered symbol
of one timeframe. raw_candles collects incrementally (only bars the candle store lacks), so a
refresh asks the exchange for a handful of candles. Run keys are ``<partition>@<tick time>``: a
restarted daemon never launches the same tick twice.

Cadences are deployment settings read when the code location loads:
``TRADING_REFRESH_CRON_<TIMEFRAME>`` (e.g. ``TRADING_REFRESH_CRON_1M``) and ``TRADING_TRAINING_CRON``.
Schedules start stopped; turn them on in the UI or with ``dagster schedule start``.
"""

from dagster import (
    AssetKey,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from trading_assets import settings
from trading_assets.defs.jobs import market_data_job, training_job
from trading_assets.defs.partitions import SYMBOL_PARTITIONS_NAME, partition_key, partition_of
from trading_assets.timeframes import TIMEFRAMES

DEFAULT_REFRESH_CRONS = {
    "1m": "*/5 * * * *",
    "5m": "*/5 * * * *",
    "15m": "*/15 * * * *",
    "30m": "*/30 * * * *",
    "60m": "1 * * * *",
    "240m": "1 */4 * * *",
    "1d": "5 0 * * *",
}
DEFAULT_TRAINING_CRON = "0 3 * * 0"  # weekly, Sunday 03:00 UTC


def refresh_schedule(timeframe: str, cron: str) -> ScheduleDefinition:
    @schedule(
        name=f"refresh_{timeframe}",
        cron_schedule=cron,
        job=market_data_job,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"Refresh the newest {timeframe} candles and their indicators and features, all symbols.",
    )
    def _refresh(context: ScheduleEvaluationContext):
        symbols = context.instance.get_dynamic_partitions(SYMBOL_PARTITIONS_NAME)
        if not symbols:
            return SkipReason("no symbols registered")
        tick = context.scheduled_execution_time.isoformat()
        return [
            RunRequest(run_key=f"{partition_key(s, timeframe)}@{tick}", partition_key=partition_key(s, timeframe))
            for s in symbols
        ]

    return _refresh


def training_schedule(cron: str) -> ScheduleDefinition:
    @schedule(
        name="train_models",
        cron_schedule=cron,
        job=training_job,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.STOPPED,
        description="Retrain trained_model for every partition whose features exist, on its own cadence.",
    )
    def _train(context: ScheduleEvaluationContext):
        keys = context.instance.get_materialized_partitions(AssetKey("features"))
        symbols = set(context.instance.get_dynamic_partitions(SYMBOL_PARTITIONS_NAME))
        keys = sorted(k for k in keys if partition_of(k).symbol in symbols)
        if not keys:
            return SkipReason("no features materialized yet")
        tick = context.scheduled_execution_time.isoformat()
        return [RunRequest(run_key=f"{k}@{tick}", partition_key=k) for k in keys]

    return _train


def build_schedules() -> list[ScheduleDefinition]:
    """The refresh schedules of every timeframe and the training schedule, cadences from the environment."""
    crons = {tf: settings.refresh_cron(tf, DEFAULT_REFRESH_CRONS[tf]) for tf in TIMEFRAMES}
    return [
        *(refresh_schedule(tf, cron) for tf, cron in crons.items()),
        training_schedule(settings.training_cron(DEFAULT_TRAINING_CRON)),
    ]
