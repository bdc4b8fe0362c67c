"""The one Definitions object of the code location."""

from dagster import Definitions

from trading_assets.defs.assets import features, indicators, raw_candles
from trading_assets.defs.causality_checks import causality_checks
from trading_assets.defs.checks import data_checks
from trading_assets.defs.io_manager import ParquetIOManager
from trading_assets.defs.jobs import full_pipeline_job, market_data_job, training_job
from trading_assets.defs.resources import CandleSourceResource, CandleStoreResource
from trading_assets.defs.sensors import AlertResource, build_alert_sensor
from trading_assets.defs.training import MlflowResource, trained_model

defs = Definitions(
    assets=[raw_candles, indicators, features, trained_model],
    asset_checks=[*data_checks, *causality_checks],
    jobs=[market_data_job, training_job, full_pipeline_job],
    sensors=[build_alert_sensor([*data_checks, *causality_checks, trained_model])],
    resources={
        "parquet_io_manager": ParquetIOManager(),
        "candle_source": CandleSourceResource(),
        "candle_store": CandleStoreResource(),
        "alerts": AlertResource(),
        "mlflow_tracking": MlflowResource(),
    },
)
