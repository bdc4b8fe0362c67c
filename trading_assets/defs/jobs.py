"""Jobs over the asset graph."""

from dagster import AssetSelection, define_asset_job

from trading_assets.defs.partitions import market_partitions

DATA_ASSETS = AssetSelection.assets("raw_candles", "indicators", "features")
MODEL_ASSETS = AssetSelection.assets("trained_model")

market_data_job = define_asset_job(
    "market_data_job",
    selection=DATA_ASSETS,
    partitions_def=market_partitions,
    description="raw_candles -> indicators -> features for one symbol x timeframe partition, with their checks.",
)
training_job = define_asset_job(
    "training_job",
    selection=MODEL_ASSETS,
    partitions_def=market_partitions,
    description="trained_model for one partition, from its stored features.",
)
full_pipeline_job = define_asset_job(
    "full_pipeline_job",
    selection=DATA_ASSETS | MODEL_ASSETS,
    partitions_def=market_partitions,
    description="The whole graph for one partition: candles to a registered model.",
)
