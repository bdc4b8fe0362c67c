"""The research loop as plain functions: walk-forward predictions, a partition's evaluation, the leaderboard.

The Dagster assets (trading_assets.defs.research) call these and only map the results to outputs,
metadata and check results; a notebook can call them with a :class:`~trading_assets.training.pipeline.NullTracker`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from trading_assets import charts
from trading_assets.evaluation import Verdict, judge, rank_board
from trading_assets.execution import Execution
from trading_assets.features import FeatureConfig
from trading_assets.partition import Partition
from trading_assets.provenance import Provenance
from trading_assets.sources.base import CandleSource
from trading_assets.splits import FoldGrid
from trading_assets.training.config import ModelSpec
from trading_assets.training.pipeline import Tracker, WalkForwardConfig, walk_forward
from trading_assets.training.trainer import TrainReport

OVERALL_SHOWN = [
    "model",
    "chosen",
    "samples",
    "oos_r2_zero",
    "dm_benchmark",
    "dm_pvalue_adj",
    "rank_ic",
    "rank_ic_t",
    "directional_accuracy",
    "backtest_net_log_return",
    "backtest_stress_net_log_return",
    "backtest_sharpe_annualized",
    "backtest_sharpe_se",
    "backtest_days",
    "backtest_edge_t_stat",
    "edge_pvalue_adj",
    "backtest_break_even_cost_bp",
]
TOP_SHOWN = [
    "rank",
    "symbol",
    "timeframe",
    "model",
    "edge_t",
    "edge_pvalue_adj",
    "net_log_return",
    "net_sharpe",
    "survives",
]


def features_from_source(
    source: CandleSource,
    partition: Partition,
    span_start: pd.Timestamp,
    end: pd.Timestamp,
    execution: Execution = Execution(),
    config: FeatureConfig = FeatureConfig(),
) -> pd.DataFrame:
    """The features frame (feature set and preprocessing of ``config``) of ``[span_start, end)`` straight from a
    candle source (no store, no Dagster), with the warm-up and lead-in loaded before it: what benchmarks and
    notebooks start from. What the set reads from other partitions (coarser timeframes, the reference symbol) is
    fetched from the source too."""
    from trading_assets import settings
    from trading_assets.errors import CandleDataError
    from trading_assets.features import FeatureContext, build_features, context_shortfalls, feature_breaks, feature_set

    symbol, timeframe = partition.symbol, partition.timeframe
    filled, indicators = _source_indicators(source, partition, span_start, end, config)
    reads = feature_set(config.feature_set).reads(partition, settings.reference_symbols())
    frames = []
    for asset, other in reads:
        candles, computed = _source_indicators(source, other, span_start, end, config)
        frames.append(computed if asset == "indicators" else candles.frame)
    context = FeatureContext.from_reads(reads, frames)
    problems = context_shortfalls(context, indicators.index, timeframe, config.ffill_limit)
    if problems:
        raise CandleDataError(symbol, timeframe, "; ".join(problems))
    frame = build_features(indicators, partition, config, span_start, execution, context=context).frame
    resumes = pd.DatetimeIndex([b.resume for b in filled.breaks], tz="UTC")
    breaks = feature_breaks(indicators.index, frame.index, resumes)
    return Provenance(symbol=symbol, timeframe=timeframe, breaks=breaks, execution=execution.as_dict()).attach(frame)


def _source_indicators(source: CandleSource, partition: Partition, span_start, end, config: FeatureConfig):
    """``partition``'s filled candles from the warm-up before ``span_start`` to ``end``, and their indicators from
    the features' lead-in on."""
    from trading_assets.candles import fill_candle_grid
    from trading_assets.features import lead_in_bars
    from trading_assets.indicators import compute_indicators, warmup_bars
    from trading_assets.timeframes import get_timeframe

    tf = get_timeframe(partition.timeframe)
    lead = lead_in_bars(config)
    start = span_start - (warmup_bars() + lead) * tf.delta
    filled = fill_candle_grid(
        source.fetch(partition.symbol, partition.timeframe, start, end), partition.timeframe, start, end
    )
    return filled, compute_indicators(filled.frame, span_start - lead * tf.delta).frame


def run_walk_forward(
    features: pd.DataFrame,
    spec: ModelSpec,
    grid: FoldGrid,
    models: tuple[str, ...],
    execution: Execution,
    tracker: Tracker,
    partition: Partition,
    on_fold: Callable[[str, int, TrainReport], Any] | None = None,
    tuned: dict[str, dict] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Walk-forward forecasts of ``models`` with their provenance attached, and one summary row per model and fold.

    ``tuned``: per model, settings a sweep chose (``{"params": ..., "trials": n}``, see trading_assets.tuning);
    their trials are recorded (``research.tuning_trials``) for the leaderboard's multiple-testing adjustment."""
    symbol, timeframe = partition.symbol, partition.timeframe
    from trading_assets.training.config import MODELS

    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"{symbol} {timeframe}: unknown models {unknown}; expected some of {', '.join(MODELS)}")
    research = {
        "seq_len": spec.sequence.seq_len,
        "gap": spec.gap,
        "fold_grid": {
            "period": grid.period,
            "min_train_periods": grid.min_train_periods,
            "max_folds": grid.max_folds,
            "holdout_periods": grid.holdout_periods,
            "scheme": grid.scheme,
            "validation_fraction": grid.validation_fraction,
        },
        "models": list(models),
        "epochs_cap": spec.train.epochs,
        "patience": spec.train.patience,
        "tuned": {m: t["params"] for m, t in (tuned or {}).items()},
        "tuning_trials": {m: int(t["trials"]) for m, t in (tuned or {}).items()},
    }
    tracker.log_params(
        {
            **{f"research.{k}": v for k, v in research.items()},
            **{f"execution.{k}": v for k, v in execution.as_dict().items()},
        }
    )
    config = WalkForwardConfig(grid, models, research["tuned"])
    frame = walk_forward(features, spec, config, tracker, partition, execution, on_fold)
    folds = (
        frame.reset_index()
        .groupby(["model", "fold"])
        .agg(
            holdout=("holdout", "first"),
            rows=("prediction", "size"),
            test_start=("open_time", "min"),
            test_end=("open_time", "max"),
            validation_start=("validation_start", "first"),
            validation_end=("validation_end", "first"),
            epochs_run=("epochs_run", "first"),
            best_epoch=("best_epoch", "first"),
            stop_reason=("stop_reason", "first"),
        )
        .reset_index()
    )
    research["folds"] = [
        {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in row.items()}
        for row in folds.to_dict("records")
    ]
    research["holdout_start"] = frame.index[frame["holdout"]].min().isoformat() if frame["holdout"].any() else None
    Provenance.of(features).but(
        breaks=(),
        feature_config={},
        execution=execution.as_dict(),
        research=research,
        mlflow_parent_run_id=tracker.run_id,
    ).attach(frame)
    tracker.log_dict(research, "research.json")
    return frame, folds


def fold_summary(model: str, fold: int, report: TrainReport) -> str:
    """One log line per trained fold: its validation loss and why training stopped."""
    return f"{model} fold {fold}: val_loss {report.val_loss:.4g}, {report.epochs_run} epochs ({report.stop_reason})"


@dataclass
class PartitionReport:
    verdict: Verdict
    overall_markdown: str
    images: dict[str, str]  # name -> markdown with the PNG inlined


def evaluate_partition(
    predictions: pd.DataFrame,
    partition: Partition,
    bars_per_year: float,
    execution: Execution,
    level: float,
    tracker: Tracker,
) -> PartitionReport:
    """Judge a partition's predictions, chart them and record everything in ``tracker``."""
    symbol, timeframe = partition.symbol, partition.timeframe
    verdict = judge(predictions, bars_per_year, execution, timeframe, level)
    table = verdict.table
    table.insert(0, "symbol", symbol)
    table.insert(1, "timeframe", timeframe)
    title = f"{symbol} {timeframe}"
    pngs = {
        "equity_curves": charts.equity_curves(predictions, execution, title),
        "predicted_vs_realised": charts.predicted_vs_realised(predictions, title),
    }
    tracker.log_params({f"execution.{k}": v for k, v in execution.as_dict().items()} | {"significance_level": level})
    for _, row in table[table["scope"].isin(["overall", "holdout"])].iterrows():
        prefix = f"{row['model']}." + ("holdout." if row["scope"] == "holdout" else "")
        tracker.log_metrics({prefix + k: v for k, v in row.items() if isinstance(v, float)})
    tracker.set_tags({"chosen_model": verdict.chosen, "edge_significant": str(verdict.edge_significant.passed).lower()})
    for name, png in pngs.items():
        tracker.log_image(png, f"{name}.png")
    tracker.log_table(table, "evaluation.parquet")
    ranked = verdict.ranked.assign(chosen=lambda r: r["model"] == verdict.chosen)
    overall = ranked[[c for c in OVERALL_SHOWN if c in ranked]].to_markdown(index=False, floatfmt=".4g")
    caption = (
        f"{execution.fill} fill {execution.delay_bars} bar(s) later, held {execution.horizon}, {execution.side}, "
        f"fee {execution.costs.fee_bp:g} + half-spread {execution.costs.half_spread_bp:g} + slippage "
        f"{execution.costs.slippage_bp:g} bp per side"
    )
    images = {name: charts.markdown_image(png, name.replace("_", " ")) for name, png in pngs.items()}
    return PartitionReport(verdict, f"{caption}\n\n{overall}", images)


def tuning_trials(evaluations: Sequence[pd.DataFrame]) -> int:
    """The configurations tried besides the entries themselves: for each tuned model of each partition, its
    sweep's evaluated trials less the one it became (``research.tuning_trials``, see run_walk_forward)."""
    counts = (t.attrs.get("research", {}).get("tuning_trials", {}) for t in evaluations)
    return sum(max(int(n) - 1, 0) for per_model in counts for n in per_model.values())


def build_leaderboard(
    evaluations: Sequence[pd.DataFrame], level: float, tracker: Tracker
) -> tuple[pd.DataFrame, str, str]:
    """The ranked board over every partition's evaluation table, its headline and a short top as text."""
    tables = pd.concat(list(evaluations), ignore_index=True)
    board, headline = rank_board(
        tables[tables["scope"] == "overall"].reset_index(drop=True),
        tables[tables["scope"] == "holdout"].reset_index(drop=True),
        level,
        extra_trials=tuning_trials(evaluations),
    )
    top = board[[c for c in TOP_SHOWN if c in board]].head(5).to_markdown(index=False, floatfmt=".3g")
    tracker.set_tags({"verdict": headline[:5000]})
    tracker.log_table(board, "leaderboard.parquet")
    tracker.log_metrics(
        {
            "partitions": float(len(evaluations)),
            "entries": float(len(board)),
            "survivors": float(board["survives"].sum()),
        }
    )
    return board, headline, top
