"""Jobs over the asset graph."""

from dagster import AssetSelection, define_asset_job

from trading_assets.defs.partitions import market_partitions

DATA_ASSETS = AssetSelection.assets("raw_candles", "indicators", "features")

market_data_job = define_asset_job(
    "market_data_job",
    selection=DATA_ASSETS,
    partitions_def=market_partitions,
    description="raw_candles -> indicators -> features for one symbol x timeframe partition, with their checks.",
)
