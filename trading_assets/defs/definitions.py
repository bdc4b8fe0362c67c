"""The one Definitions object of the code location.

Runs use the in-process executor: the steps of one partition are sequential anyway (asset, its
checks, the next asset), and a subprocess per step would re-import pandas/TA-Lib/Dagster each time.
Parallelism comes from running partitions as separate runs (queued coordinator, dagster.yaml).
"""

from typing import Any

from dagster import Definitions, in_process_executor

from trading_assets.defs.assets import features, indicators, raw_candles
from trading_assets.defs.checks import CHECKS
from trading_assets.defs.io_manager import ParquetIOManager
from trading_assets.defs.jobs import (
    full_pipeline_job,
    leaderboard_job,
    market_data_job,
    research_job,
    signals_freshness_job,
    signals_job,
    training_job,
    tuning_job,
)
from trading_assets.defs.live import LIVE_CHECKS, champion, signals, signals_after_new_candles, signals_freshness
from trading_assets.defs.research import evaluation, leaderboard, predictions
from trading_assets.defs.resources import (
    AlertResource,
    CandleSourceResource,
    CandleStoreResource,
    ExecutionResource,
    FeatureConfigResource,
    IncrementalResource,
    Locations,
    MlflowResource,
)
from trading_assets.defs.schedules import build_schedules
from trading_assets.defs.sensors import build_alert_sensor, build_run_failure_sensor
from trading_assets.defs.training import trained_model
from trading_assets.defs.tuning import tuning


def bound_resources(locations: Locations) -> dict[str, Any]:
    """Every resource of the code location, each reading its paths, hosts and credentials from ``locations``."""
    return {
        "io_manager": ParquetIOManager(locations=locations),  # no asset may fall back to a pickling one
        "parquet_io_manager": ParquetIOManager(locations=locations),
        "candle_source": CandleSourceResource(locations=locations),
        "candle_store": CandleStoreResource(locations=locations),
        "alerts": AlertResource(locations=locations),
        "mlflow_tracking": MlflowResource(locations=locations),
        "execution": ExecutionResource(),
        "feature_config": FeatureConfigResource(locations=locations),
        "incremental": IncrementalResource(locations=locations),
    }


locations = Locations.from_env()  # paths, hosts, credentials: from the environment, not from run config
defs = Definitions(
    assets=[
        raw_candles,
        indicators,
        features,
        trained_model,
        tuning,
        predictions,
        evaluation,
        leaderboard,
        champion,
        signals,
    ],
    asset_checks=[*CHECKS, *LIVE_CHECKS],
    jobs=[
        market_data_job,
        training_job,
        research_job,
        full_pipeline_job,
        leaderboard_job,
        signals_job,
        signals_freshness_job,
        tuning_job,
    ],
    schedules=[*build_schedules(), signals_freshness],
    sensors=[
        build_alert_sensor([*CHECKS, *LIVE_CHECKS, trained_model, evaluation, signals]),
        build_run_failure_sensor(),
        signals_after_new_candles,
    ],
    executor=in_process_executor,
    resources=bound_resources(locations),
)
