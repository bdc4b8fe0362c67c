"""Jobs over the asset graph."""

import warnings

from dagster import AssetCheckKey, AssetKey, AssetSelection, define_asset_job

from trading_assets.defs.partitions import market_partitions

# On Kubernetes (deploy/k8s), runs that train ask for one GPU on the GPU node pool; the tag
# trading_assets/gpu is limited per GPU node by the run coordinator. Elsewhere these tags are inert.
GPU_K8S_CONFIG = {
    "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"cpu": "4", "memory": "16Gi"}}},
    "pod_spec_config": {
        "node_selector": {"trading-assets/node-pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}
GPU_RUN_TAGS = {"dagster-k8s/config": GPU_K8S_CONFIG, "trading_assets/gpu": "1"}

# signals may run over many partitions at once (a single-run backfill policy); in a job with the other assets it
# runs one partition at a time like them, which Dagster says on every resolution of the job.
warnings.filterwarnings("ignore", message="Asset job full_pipeline_job materializes assets with varying")

DATA_ASSETS = AssetSelection.assets("raw_candles", "indicators", "features")
MODEL_ASSETS = AssetSelection.assets("trained_model")
RESEARCH_ASSETS = AssetSelection.assets("predictions", "evaluation")
# The live path; the freshness check spans every partition, so partitioned jobs leave it to its own job.
FRESHNESS_CHECK = AssetSelection.checks(AssetCheckKey(AssetKey("signals"), "fresh"))
LIVE_ASSETS = AssetSelection.assets("champion", "signals") - FRESHNESS_CHECK

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
    tags=GPU_RUN_TAGS,
)
research_job = define_asset_job(
    "research_job",
    selection=RESEARCH_ASSETS,
    partitions_def=market_partitions,
    description="Walk-forward predictions and their evaluation for one partition, from its stored features.",
    tags=GPU_RUN_TAGS,
)
full_pipeline_job = define_asset_job(
    "full_pipeline_job",
    selection=DATA_ASSETS | MODEL_ASSETS | RESEARCH_ASSETS | LIVE_ASSETS,
    partitions_def=market_partitions,
    description="The whole graph for one partition: candles to a registered model, its walk-forward evaluation, "
    "the champion decision and the signals of the new bars.",
    tags=GPU_RUN_TAGS,
)
tuning_job = define_asset_job(
    "tuning_job",
    selection=AssetSelection.assets("tuning"),
    partitions_def=market_partitions,
    description="The hyperparameter sweeps of one partition, from its stored features (trading-assets tune).",
    tags=GPU_RUN_TAGS,
)
signals_job = define_asset_job(
    "signals_job",
    selection=AssetSelection.assets("signals") - FRESHNESS_CHECK,
    partitions_def=market_partitions,
    description="The champion's signals for the new bars of one partition, from its stored indicators.",
)
signals_freshness_job = define_asset_job(
    "signals_freshness_job",
    selection=FRESHNESS_CHECK,
    description="Whether every partition with a champion has a recent signal (the signals' freshness check).",
)
leaderboard_job = define_asset_job(
    "leaderboard_job",
    selection=AssetSelection.assets("leaderboard"),
    description="The leaderboard over every evaluated partition.",
)
