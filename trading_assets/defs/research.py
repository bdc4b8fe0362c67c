"""The research loop: predictions (walk-forward) -> evaluation -> leaderboard.

Every figure comes from trading_assets.evaluation, which also returns the verdicts; the assets map
them to Dagster outputs, metadata and check results. The execution model (the ``execution``
resource) is the one the features' label was built with.

No `from __future__ import annotations` here: Dagster reads the config and resource annotations.
"""

from collections.abc import Iterator
from typing import Literal

import pandas as pd
from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    Config,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from trading_assets.calendars import get_calendar
from trading_assets.defs.jobs import GPU_K8S_CONFIG
from trading_assets.defs.metadata import frame_metadata
from trading_assets.defs.partition_checks import check_result
from trading_assets.defs.partitions import market_partitions, partition_of
from trading_assets.defs.resources import ExecutionResource, Locations, MlflowResource
from trading_assets.defs.training import (
    GPU_POOL,
    ModelSettings,
    dagster_run_alive,
    label_execution,
    partition_tags,
    tuned_settings,
)
from trading_assets.defs.versions import CODE_VERSION
from trading_assets.execution import Execution
from trading_assets.partition import Partition
from trading_assets.provenance import Provenance
from trading_assets.splits import FOLD_PERIODS, FoldGrid

RESEARCH = {
    "partitions_def": market_partitions,
    "io_manager_key": "parquet_io_manager",
    "group_name": "research",
    "code_version": CODE_VERSION,
}
_GRID = FoldGrid("D")


class PredictionsConfig(ModelSettings):
    """The walk-forward fold grid and the models evaluated on equal terms (each with the shared settings)."""

    models: list[str] = Field(
        default=["bilstm", "linear"],
        description="Models evaluated on equal terms, from trading_assets.training.config.MODELS (checked against "
        "the registry when the run starts)",
    )
    fold_period: Literal["auto", "D", "W", "M", "Q"] = Field(
        default="auto", description=f"Calendar period of a test fold (UTC); auto: per timeframe, {FOLD_PERIODS}"
    )
    min_train_periods: int = Field(
        default=_GRID.min_train_periods, ge=1, le=1000, description="Periods of history before the first test fold"
    )
    max_folds: int = Field(
        default=_GRID.max_folds, ge=1, le=1000, description="Test folds: the last ones before the hold-out"
    )
    holdout_periods: int = Field(
        default=_GRID.holdout_periods, ge=0, le=100, description="Last periods kept out of the ranking (the hold-out)"
    )
    scheme: Literal["expanding", "rolling"] = Field(
        default=_GRID.scheme, description="expanding: learn from all earlier rows; rolling: a fixed-length window"
    )

    def grid(self, timeframe: str) -> FoldGrid:
        return FoldGrid(
            FOLD_PERIODS[timeframe] if self.fold_period == "auto" else self.fold_period,
            self.min_train_periods,
            self.max_folds,
            self.holdout_periods,
            self.scheme,
            self.validation_fraction,
        )


@asset(
    **RESEARCH,
    kinds={"pytorch", "mlflow"},
    pool=GPU_POOL,
    op_tags={"dagster-k8s/config": GPU_K8S_CONFIG},
    description="Walk-forward out-of-sample forecasts on a calendar fold grid: per model and fold, a fresh model "
    "trained on rows strictly before the fold (purge gap) until early stopping; the last block is the hold-out. "
    "One row per forecast bar with its label (the trade's return), the trade's per-bar returns, spans and run.",
)
def predictions(
    context: AssetExecutionContext,
    config: PredictionsConfig,
    features: pd.DataFrame,
    mlflow_tracking: MlflowResource,
    execution: ExecutionResource,
) -> Output[pd.DataFrame]:
    from trading_assets.research import fold_summary, run_walk_forward

    partition = partition_of(context.partition_key)
    trade = label_execution(execution, features, partition)
    tuned = _tuned(config, mlflow_tracking.locations, partition, features, trade)
    with mlflow_tracking.open_run(
        f"{partition.key} walk-forward",
        partition_tags(context, "predictions"),
        dagster_run_alive(context.instance),
    ) as parent:
        frame, folds = run_walk_forward(
            features,
            config.spec(trade),
            config.grid(partition.timeframe),
            tuple(config.models),
            trade,
            parent,
            partition,
            on_fold=lambda m, f, r: context.log.info(fold_summary(m, f, r)),
            tuned=tuned,
        )
    return Output(
        frame,
        metadata={
            **frame_metadata(frame),
            "mlflow_parent_run_id": parent.run_id,
            "mlflow_run": mlflow_tracking.run_link(parent.experiment_id, parent.run_id),
            "models": MetadataValue.json(list(config.models)),
            "execution": MetadataValue.json(trade.as_dict()),
            "research": MetadataValue.json(Provenance.of(frame).research),
            "folds": MetadataValue.md(folds.to_markdown(index=False)),
        },
    )


def _tuned(
    config: PredictionsConfig, locations: Locations, partition: Partition, features: pd.DataFrame, trade: Execution
) -> dict[str, dict]:
    """The tuned settings the walk-forward applies (see tuned_settings): from a sweep that read no row after the
    span before the first test fold."""
    if not config.tuned:
        return {}
    from trading_assets.tuning import tuning_span

    last = tuning_span(features, config.spec(trade), config.grid(partition.timeframe), partition).index[-1]
    return tuned_settings(config, locations, partition, list(config.models), features, last + pd.Timedelta(1, "ns"))


class EvaluationConfig(Config):
    significance_level: float = Field(
        default=0.05, gt=0, lt=1, description="Level of the Holm-adjusted tests behind the checks"
    )


@asset(
    **RESEARCH,
    kinds={"pandas", "mlflow"},
    check_specs=[
        AssetCheckSpec(
            "edge_significant",
            asset="evaluation",
            description="WARN when no model beats the best naive forecast (zero, train mean, AR(1)): Diebold-Mariano "
            "with the HLN correction, Holm-adjusted over the partition's models",
        ),
        AssetCheckSpec(
            "survives_costs",
            asset="evaluation",
            description="WARN when no model has a net edge after the execution model's costs that is significant "
            "after Holm's adjustment over the partition's models and a positive net return",
        ),
    ],
    description="Out-of-sample metrics per model and fold under the execution model (MSE ratios vs zero, train-mean "
    "and AR(1); pooled and period IC; DM vs the best naive; the backtest after costs with its stress case), "
    "adjusted p-values, the chosen model and its one evaluation on the hold-out.",
)
def evaluation(
    context: AssetExecutionContext,
    config: EvaluationConfig,
    predictions: pd.DataFrame,
    mlflow_tracking: MlflowResource,
    execution: ExecutionResource,
) -> Iterator[Output[pd.DataFrame] | AssetCheckResult]:
    from trading_assets.research import evaluate_partition

    partition = partition_of(context.partition_key)
    symbol, timeframe = partition.symbol, partition.timeframe
    trade = label_execution(execution, predictions, partition, horizon=True)
    provenance = Provenance.of(predictions)
    bars_per_year = get_calendar(provenance.calendar).bars_per_year(timeframe)
    tags = {**partition_tags(context, "evaluation"), "predictions_run_id": provenance.mlflow_parent_run_id or ""}
    with mlflow_tracking.open_run(f"{symbol}|{timeframe} evaluation", tags) as tracker:
        report = evaluate_partition(predictions, partition, bars_per_year, trade, config.significance_level, tracker)
    report.verdict.table.attrs["research"] = provenance.research  # the leaderboard counts its tuning trials
    yield Output(
        report.verdict.table,
        metadata={
            "dagster/row_count": len(report.verdict.table),
            "mlflow_run": mlflow_tracking.run_link(tracker.experiment_id, tracker.run_id),
            "chosen_model": report.verdict.chosen,
            "execution": MetadataValue.json(trade.as_dict()),
            "overall": MetadataValue.md(report.overall_markdown),
            "holdout": MetadataValue.json(report.verdict.holdout),
            **{name: MetadataValue.md(markdown) for name, markdown in report.images.items()},
        },
    )
    for name, outcome in (
        ("edge_significant", report.verdict.edge_significant),
        ("survives_costs", report.verdict.survives_costs),
    ):
        problems = [] if outcome.passed else [outcome.message or name]
        metadata = {k: MetadataValue.json(v) if isinstance(v, dict) else v for k, v in outcome.metadata.items()}
        yield check_result(context, problems, metadata, AssetCheckSeverity.WARN, name)


class LeaderboardConfig(Config):
    significance_level: float = Field(default=0.05, gt=0, lt=1, description="Level of the board-wide Holm adjustment")


@asset(
    ins={
        "evaluation": AssetIn(
            "evaluation", partition_mapping=AllPartitionMapping(), metadata={"allow_missing_partitions": True}
        )
    },
    io_manager_key="parquet_io_manager",
    group_name="research",
    kinds={"pandas", "mlflow"},
    description="Every evaluated partition and model, ordered by the adjusted significance of the net edge "
    "(Holm over every entry, deflated Sharpe ratio for as many trials), the chosen models' hold-out beside; the "
    "first line says how many entries survive, or that none does.",
)
def leaderboard(
    context: AssetExecutionContext,
    config: LeaderboardConfig,
    evaluation: dict[str, pd.DataFrame],
    mlflow_tracking: MlflowResource,
) -> Output[pd.DataFrame]:
    from trading_assets.research import build_leaderboard

    if not evaluation:
        raise ValueError("no evaluated partition yet: materialize predictions and evaluation first")
    with mlflow_tracking.open_run(
        "leaderboard", {"dagster_run_id": context.run_id, "dagster_asset": "leaderboard"}
    ) as tracker:
        board, headline, top = build_leaderboard(list(evaluation.values()), config.significance_level, tracker)
    context.log.info(headline)
    return Output(
        board,
        metadata={
            "verdict": headline,
            "top": MetadataValue.md(top),
            "dagster/row_count": len(board),
            "partitions": len(evaluation),
            "leaderboard": MetadataValue.md(f"**{headline}**\n\n" + board.to_markdown(index=False, floatfmt=".4g")),
            "mlflow_run": mlflow_tracking.run_link(tracker.experiment_id, tracker.run_id),
        },
    )
