"""The research loop: predictions (walk-forward) -> evaluation -> leaderboard.

No `from __future__ import annotations` here: Dagster reads the config and resource annotations.
"""

from collections.abc import Iterator
from typing import Literal

import numpy as np
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
from trading_assets.defs.partitions import market_partitions, split_partition_key
from trading_assets.defs.resources import MlflowResource
from trading_assets.defs.training import GPU_POOL, TrainedModelConfig, dagster_run_alive, partition_tags
from trading_assets.defs.versions import CODE_VERSION
from trading_assets.provenance import Provenance
from trading_assets.training.config import MODELS

RESEARCH = {
    "partitions_def": market_partitions,
    "io_manager_key": "parquet_io_manager",
    "group_name": "research",
    "code_version": CODE_VERSION,
}


class PredictionsConfig(TrainedModelConfig):
    """Walk-forward settings plus the model settings every evaluated model shares."""

    folds: int = Field(default=4, ge=1, description="Consecutive out-of-sample test blocks")
    epochs: int = Field(default=4, gt=0, description="Per fold (each fold trains a fresh model)")
    scheme: Literal["expanding", "rolling"] = Field(
        default="expanding", description="expanding: learn from all earlier rows; rolling: a fixed-length window"
    )
    min_train_fraction: float = Field(default=0.5, gt=0, lt=1, description="Share of rows before the first fold")
    models: list[str] = Field(
        default=["bilstm", "linear"], description=f"Models evaluated on equal terms, from: {', '.join(MODELS)}"
    )


@asset(
    **RESEARCH,
    kinds={"pytorch", "mlflow"},
    pool=GPU_POOL,
    op_tags={"dagster-k8s/config": GPU_K8S_CONFIG},
    description="Walk-forward out-of-sample forecasts: per model and fold, a fresh model trained on rows strictly "
    "before the fold (purge gap), one row per forecast bar with its label, fold, train span and MLflow run.",
)
def predictions(
    context: AssetExecutionContext, config: PredictionsConfig, features: pd.DataFrame, mlflow_tracking: MlflowResource
) -> Output[pd.DataFrame]:
    from trading_assets.training.pipeline import WalkForwardConfig, walk_forward

    symbol, timeframe = split_partition_key(context.partition_key)
    unknown = [m for m in config.models if m not in MODELS]
    if unknown or not config.models:
        raise ValueError(f"{symbol} {timeframe}: unknown models {unknown}; expected some of {', '.join(MODELS)}")
    wf = WalkForwardConfig(
        folds=config.folds,
        scheme=config.scheme,
        min_train_fraction=config.min_train_fraction,
        models=tuple(config.models),
    )
    tags = partition_tags(context, "predictions")
    with mlflow_tracking.open_run(
        f"{symbol}|{timeframe} walk-forward", tags, dagster_run_alive(context.instance)
    ) as parent:
        parent.log_params({"folds": wf.folds, "scheme": wf.scheme, "models": ",".join(wf.models)})
        frame = walk_forward(
            features,
            config.spec(),
            wf,
            parent,
            symbol,
            timeframe,
            on_fold=lambda m, f, r: context.log.info(f"{m} fold {f}: val_loss {r.val_loss:.4g}, {r.epochs_run} epochs"),
        )
    Provenance.of(features).but(
        breaks=(), feature_config={}, mlflow_parent_run_id=parent.run_id, horizon=config.horizon
    ).attach(frame)
    folds = frame.groupby(["model", "fold"]).agg(
        rows=("prediction", "size"),
        test_start=("prediction", lambda s: s.index.min().isoformat()),
        test_end=("prediction", lambda s: s.index.max().isoformat()),
        mlflow_run_id=("mlflow_run_id", "first"),
    )
    return Output(
        frame,
        metadata={
            **frame_metadata(frame),
            "mlflow_parent_run_id": parent.run_id,
            "mlflow_run": mlflow_tracking.run_link(parent.experiment_id, parent.run_id),
            "models": MetadataValue.json(list(wf.models)),
            "folds": MetadataValue.md(folds.reset_index().to_markdown(index=False)),
        },
    )


class EvaluationConfig(Config):
    fee_bp: float = Field(default=5.0, ge=0, description="Per-side fee in basis points (Upbit KRW taker: 5)")
    delay_bars: int = Field(default=1, ge=0, description="Bars between a forecast's close and its fill")
    significance_level: float = Field(default=0.05, gt=0, lt=1, description="DM p-value above which the edge WARNs")


def _best_overall(table: pd.DataFrame) -> pd.DataFrame:
    from trading_assets.evaluation import leaderboard_score

    overall = table[table["fold"] == 0].copy()
    overall["score"] = leaderboard_score(overall)
    return overall.sort_values("score", ascending=False)


@asset(
    **RESEARCH,
    kinds={"pandas", "mlflow"},
    check_specs=[
        AssetCheckSpec(
            "edge_significant",
            asset="evaluation",
            description="WARN when no model's edge over the zero forecast is significant (Diebold-Mariano p-value "
            "above significance_level)",
        ),
        AssetCheckSpec(
            "survives_costs",
            asset="evaluation",
            description="WARN when costs eat every model's edge: break-even cost below the fee, or net return below "
            "buy-and-hold",
        ),
    ],
    description="Out-of-sample signal metrics per model and fold (MSE ratio / R^2 vs zero, train-mean and AR(1); IC, "
    "rank IC, ICIR; directional accuracy; Diebold-Mariano vs zero) and a sign backtest with fees and delay.",
)
def evaluation(
    context: AssetExecutionContext,
    config: EvaluationConfig,
    predictions: pd.DataFrame,
    mlflow_tracking: MlflowResource,
) -> Iterator[Output[pd.DataFrame] | AssetCheckResult]:
    from trading_assets import charts
    from trading_assets.evaluation import evaluation_table

    symbol, timeframe = split_partition_key(context.partition_key)
    provenance = Provenance.of(predictions)
    horizon = provenance.horizon or 1
    bars_per_year = get_calendar(provenance.calendar).bars_per_year(timeframe)
    table = evaluation_table(predictions, bars_per_year, config.fee_bp, config.delay_bars, horizon)
    table.insert(0, "symbol", symbol)
    table.insert(1, "timeframe", timeframe)
    title = f"{symbol} {timeframe}"
    images = {
        "equity_curves": charts.equity_curves(predictions, config.fee_bp, config.delay_bars, title),
        "predicted_vs_realised": charts.predicted_vs_realised(predictions, title),
    }
    tags = {
        **partition_tags(context, "evaluation"),
        "predictions_run_id": provenance.mlflow_parent_run_id or "",
    }
    with mlflow_tracking.open_run(f"{symbol}|{timeframe} evaluation", tags) as tracker:
        tracker.log_params({"fee_bp": config.fee_bp, "delay_bars": config.delay_bars, "horizon": horizon})
        for _, row in table[table["fold"] == 0].iterrows():
            tracker.log_metrics({f"{row['model']}.{k}": v for k, v in row.items() if isinstance(v, float)})
        for name, png in images.items():
            tracker.log_image(png, f"{name}.png")
        tracker.log_table(table, "evaluation.parquet")

    ranked = _best_overall(table)
    level = config.significance_level
    significant = ranked[ranked["dm_pvalue"] <= level]
    survives = ranked[
        (ranked["backtest_break_even_cost_bp"] > config.fee_bp)
        & (ranked["backtest_net_log_return"] > ranked["backtest_buy_and_hold_log_return"])
    ]
    per_model = {
        r["model"]: {
            "dm_pvalue": r["dm_pvalue"],
            "break_even_cost_bp": r["backtest_break_even_cost_bp"],
            "net_log_return": r["backtest_net_log_return"],
            "buy_and_hold_log_return": r["backtest_buy_and_hold_log_return"],
        }
        for _, r in ranked.iterrows()
    }
    shown = [
        "model",
        "samples",
        "oos_r2_zero",
        "rank_ic_mean",
        "rank_icir",
        "directional_accuracy",
        "dm_pvalue",
        "backtest_net_log_return",
        "backtest_sharpe_annualized",
        "backtest_break_even_cost_bp",
        "score",
    ]
    yield Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            "mlflow_run": mlflow_tracking.run_link(tracker.experiment_id, tracker.run_id),
            "overall": MetadataValue.md(ranked[shown].to_markdown(index=False, floatfmt=".4g")),
            "equity_curves": MetadataValue.md(charts.markdown_image(images["equity_curves"], "equity curves")),
            "predicted_vs_realised": MetadataValue.md(
                charts.markdown_image(images["predicted_vs_realised"], "predicted vs realised")
            ),
        },
    )
    warn = AssetCheckSeverity.WARN
    not_significant = (
        f"no model beats the zero forecast at the {level:g} level (best DM p-value {ranked['dm_pvalue'].min():.3g})"
    )
    yield check_result(
        context,
        [] if len(significant) else [not_significant],
        {"significance_level": level, "per_model": MetadataValue.json(per_model)},
        warn,
        "edge_significant",
    )
    eaten = (
        f"costs eat every edge at {config.fee_bp:g} bp per side with a {config.delay_bars}-bar delay "
        f"(best break-even {ranked['backtest_break_even_cost_bp'].max():.3g} bp)"
    )
    yield check_result(
        context,
        [] if len(survives) else [eaten],
        {"fee_bp": config.fee_bp, "per_model": MetadataValue.json(per_model)},
        warn,
        "survives_costs",
    )


@asset(
    ins={
        "evaluation": AssetIn(
            "evaluation", partition_mapping=AllPartitionMapping(), metadata={"allow_missing_partitions": True}
        )
    },
    io_manager_key="parquet_io_manager",
    group_name="research",
    kinds={"pandas", "mlflow"},
    description="One table over every evaluated partition and model, sorted by a significance-aware score "
    "(min of the net-return and Diebold-Mariano t-statistics), so noise cannot top it.",
)
def leaderboard(
    context: AssetExecutionContext, evaluation: dict[str, pd.DataFrame], mlflow_tracking: MlflowResource
) -> Output[pd.DataFrame]:
    from trading_assets.evaluation import leaderboard_score

    if not evaluation:
        raise ValueError("no evaluated partition yet: materialize predictions and evaluation first")
    table = pd.concat([t[t["fold"] == 0] for t in evaluation.values()], ignore_index=True)
    table["score"] = leaderboard_score(table)
    board = pd.DataFrame(
        {
            "symbol": table["symbol"],
            "timeframe": table["timeframe"],
            "model": table["model"],
            "score": table["score"],
            "net_log_return": table["backtest_net_log_return"],
            "net_sharpe": table["backtest_sharpe_annualized"],
            "buy_and_hold": table["backtest_buy_and_hold_log_return"],
            "break_even_cost_bp": table["backtest_break_even_cost_bp"],
            "dm_pvalue": table["dm_pvalue"],
            "rank_ic": table["rank_ic_mean"],
            "oos_r2_zero": table["oos_r2_zero"],
            "samples": table["samples"].astype("int64"),
            "fee_bp": table["backtest_fee_bp"],
        }
    ).sort_values(["score", "dm_pvalue"], ascending=[False, True], ignore_index=True)
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    with mlflow_tracking.open_run(
        "leaderboard", {"dagster_run_id": context.run_id, "dagster_asset": "leaderboard"}
    ) as t:
        t.log_table(board, "leaderboard.parquet")
        t.log_metrics({"partitions": float(len(evaluation)), "entries": float(len(board))})
    return Output(
        board,
        metadata={
            "dagster/row_count": len(board),
            "partitions": len(evaluation),
            "leaderboard": MetadataValue.md(board.to_markdown(index=False, floatfmt=".4g")),
            "mlflow_run": mlflow_tracking.run_link(t.experiment_id, t.run_id),
        },
    )
