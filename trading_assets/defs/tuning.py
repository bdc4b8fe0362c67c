"""tuning: an optuna sweep per partition and model, scored inside the training span only (trading_assets.tuning).

No `from __future__ import annotations` here: Dagster reads the config and resource annotations.
"""

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset
from pydantic import Field

from trading_assets.defs.partitions import market_partitions, partition_of
from trading_assets.defs.research import PredictionsConfig
from trading_assets.defs.resources import ExecutionResource, MlflowResource
from trading_assets.defs.training import GPU_POOL, dagster_run_alive, label_execution, partition_tags
from trading_assets.defs.versions import CODE_VERSION
from trading_assets.features import DEFAULT_FEATURE_SET
from trading_assets.provenance import Provenance
from trading_assets.redaction import redact


class TuningConfig(PredictionsConfig):
    """The sweep: which models, how many trials, how many inner folds; the rest (fold grid, shared settings) as
    the research loop's, so the sweep stops where its first test fold begins."""

    models: list[str] = Field(
        default=["bilstm"],
        description="Models to tune, each over the search space declared with it (MODELS[kind].search_space)",
    )
    trials: int = Field(default=20, ge=1, le=10_000, description="Configurations to evaluate per model (in all)")
    inner_folds: int = Field(default=3, ge=1, le=20, description="Walk-forward folds inside the training span")


@asset(
    partitions_def=market_partitions,
    io_manager_key="parquet_io_manager",
    group_name="research",
    code_version=CODE_VERSION,
    kinds={"optuna", "mlflow"},
    pool=GPU_POOL,
    description="Hyperparameter sweeps without selection bias: per model, an optuna study (TPE, median pruning) over "
    "its declared search space, scored by walk-forward validation inside the span before the research loop's "
    "first test fold (the test folds and the hold-out are never read). Stored in a database, so a killed run "
    "resumes; each trial is a nested MLflow run. trained_model and predictions apply the best settings with "
    "`tuned: true`, and the leaderboard counts every trial as a test.",
)
def tuning(
    context: AssetExecutionContext,
    config: TuningConfig,
    features: pd.DataFrame,
    mlflow_tracking: MlflowResource,
    execution: ExecutionResource,
) -> Output[pd.DataFrame]:
    from trading_assets.tuning import tune

    partition = partition_of(context.partition_key)
    trade = label_execution(execution, features, partition)
    spec, grid = config.spec(trade), config.grid(partition.timeframe)
    storage = mlflow_tracking.locations.resolved_optuna_storage()
    feature_set = Provenance.of(features).feature_set or DEFAULT_FEATURE_SET
    results = []
    with mlflow_tracking.open_run(
        f"{partition} tuning", partition_tags(context, "tuning"), dagster_run_alive(context.instance)
    ) as parent:
        for model in config.models:
            result = tune(
                features, spec, grid, model, partition, storage, config.trials, config.inner_folds, feature_set, parent
            )
            context.log.info(
                result.problem or f"{partition} {model}: best {result.best_value:.4g} {result.best_params}"
            )
            results.append(result)
        parent.log_dict({r.model: r.best_params for r in results}, "best_params.json")
    frame = pd.concat([r.trials for r in results], ignore_index=True)
    frame.attrs = {
        "best": {r.model: {"params": r.best_params, "trials": r.tried} for r in results if r.best_params},
        "span_end": results[0].span_end.isoformat(),
        "feature_set": feature_set,
    }
    link = mlflow_tracking.run_link(parent.experiment_id, parent.run_id)
    return Output(frame, metadata=_tuning_metadata(results, storage, link))


def _tuning_metadata(results, storage: str, run_link) -> dict:
    """Per model: the best settings and value, the trials by state; where the studies live; what was not found."""
    return {
        "best": MetadataValue.json({r.model: {"params": r.best_params, "value": r.best_value} for r in results}),
        "trials": MetadataValue.json(
            {r.model: {s: r.count(s) for s in ("COMPLETE", "PRUNED", "FAIL")} for r in results}
        ),
        "studies": MetadataValue.json([r.study_name for r in results]),
        "storage": redact(storage),
        "span_end": results[0].span_end.isoformat(),
        "problems": MetadataValue.json([r.problem for r in results if r.problem]),
        "mlflow_run": run_link,
        "dagster/row_count": sum(len(r.trials) for r in results),
    }
