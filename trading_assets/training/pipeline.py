"""Training runs as plain functions: one model on a chronological split, or walk-forward folds.

The Dagster assets are thin adapters around :func:`train_and_track` (``trained_model``) and
:func:`walk_forward` (``predictions``); both log through a :class:`~trading_assets.training.tracking.Tracker`
and share :func:`fit_model`, so a fold is trained exactly like the production model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from trading_assets import charts
from trading_assets.errors import CandleDataError
from trading_assets.evaluation import evaluate_predictions
from trading_assets.execution import Execution, ExecutionError
from trading_assets.features import DEFAULT_FEATURE_SET
from trading_assets.labels import TARGET
from trading_assets.partition import Partition
from trading_assets.provenance import Provenance
from trading_assets.splits import FoldGrid, Split, time_folds
from trading_assets.training.bundle import ModelBundle
from trading_assets.training.config import ModelSpec, with_kind, with_params
from trading_assets.training.models import build_model
from trading_assets.training.sequences import SequenceData, break_counts, build_sequences, required_rows
from trading_assets.training.trainer import TrainReport, naive_forecasts, train

EpochCallback = Callable[[int, dict[str, float]], Any]


class Tracker(Protocol):
    """What the pipeline records (MLflow implements it: :class:`~trading_assets.training.tracking.MlflowTracker`)."""

    run_id: str

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_dict(self, data: dict[str, Any], path: str) -> None: ...
    def log_image(self, png: bytes, path: str) -> None: ...
    def log_table(self, frame: pd.DataFrame, path: str) -> None: ...
    def log_dataset(self, features: pd.DataFrame, name: str) -> None: ...
    def log_bundle(self, bundle: ModelBundle, features: pd.DataFrame, registered_name: str) -> dict[str, str]: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def child(self, name: str, tags: dict[str, str]) -> AbstractContextManager[Tracker]: ...


class NullTracker(Tracker):
    """Records nothing (notebooks, benchmarks): the protocol's methods do nothing; folds share it."""

    run_id = "untracked"

    @contextmanager
    def child(self, name: str, tags: dict[str, str]) -> Iterator[Tracker]:
        yield self


@dataclass(frozen=True)
class WalkForwardConfig:
    grid: FoldGrid
    models: tuple[str, ...] = ("bilstm", "linear")
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per model: tuned settings over the spec


@dataclass
class FitResult:
    bundle: ModelBundle
    report: TrainReport
    data: SequenceData
    data_entry_lag: int = 1


@dataclass
class TrainOutcome:
    bundle: ModelBundle
    report: TrainReport
    test_predictions: pd.DataFrame
    test_metrics: dict[str, float]
    registered: dict[str, str]
    images: dict[str, bytes] = field(default_factory=dict)

    def baseline_verdict(self) -> BaselineVerdict:
        """How the model's test MSE compares with the best naive forecast's (fit on the train span)."""
        test = self.test_metrics
        baselines = {b: test["mse"] / test[f"mse_ratio_{b}"] for b in ("zero", "train_mean", "ar1")}
        best = min(baselines, key=baselines.__getitem__)
        return BaselineVerdict(
            test["mse"], best, baselines[best], int(test["samples"]), test["dm_benchmark"], test["dm_pvalue"]
        )


@dataclass(frozen=True)
class BaselineVerdict:
    """The model's test MSE against the best naive forecast (zero, train mean, AR(1))."""

    model_mse: float
    best: str
    best_mse: float
    samples: int
    dm_benchmark: str  # the naive forecast the Diebold-Mariano test compares with
    dm_pvalue: float

    def figures(self) -> dict[str, float | int | str]:
        return {
            "test_mse": self.model_mse,
            "best_baseline": self.best,
            "best_baseline_test_mse": self.best_mse,
            "test_samples": self.samples,
            "dm_benchmark": self.dm_benchmark,
            "dm_pvalue_vs_best_naive": self.dm_pvalue,
        }

    @property
    def problems(self) -> list[str]:
        """Why the model does not beat the naive forecast (empty: it does)."""
        if self.model_mse < self.best_mse:
            return []
        return [f"test MSE {self.model_mse:.4g} does not beat the {self.best} forecast ({self.best_mse:.4g})"]


def require_rows(features: pd.DataFrame, spec: ModelSpec, partition: Partition) -> None:
    """A clear error naming the partition, the rows it has and the rows the split needs."""
    symbol, timeframe = partition.symbol, partition.timeframe
    needed = required_rows(
        spec.sequence.seq_len,
        spec.sequence.horizon,
        spec.split.train_fraction,
        spec.split.validation_fraction,
        spec.gap,
        spec.sequence.entry_lag,
    )
    if len(features) < needed:
        raise CandleDataError(
            symbol,
            timeframe,
            f"{len(features)} feature rows are too few to train: the split (train {spec.split.train_fraction}, "
            f"validation {spec.split.validation_fraction}, gap {spec.gap}) with seq_len {spec.sequence.seq_len} and "
            f"horizon {spec.sequence.horizon} needs at least {needed}; request a longer span",
        )


def fit_model(
    features: pd.DataFrame,
    spec: ModelSpec,
    split: Split | None = None,
    on_epoch: EpochCallback | None = None,
    test_windows_from_history: bool = False,
) -> FitResult:
    """Split, scale on the train span, seed, build and train; the result carries a servable bundle."""
    seq = spec.sequence
    data = build_sequences(
        features,
        seq.seq_len,
        seq.horizon,
        spec.split.train_fraction,
        spec.split.validation_fraction,
        spec.gap,
        split=split,
        test_windows_from_history=test_windows_from_history,
        entry_lag=seq.entry_lag,
    )
    torch.manual_seed(spec.train.seed)  # before the weights are drawn: the same seed gives the same model
    network = build_model(len(data.feature_columns), spec.model)
    network, report = train(network, data, spec.train, on_epoch)
    bundle = ModelBundle(
        network,
        spec.model,
        data.feature_columns,
        data.scaler,
        seq.seq_len,
        seq.horizon,
        report.target_mean,
        report.target_std,
        {"feature_set": Provenance.of(features).feature_set or DEFAULT_FEATURE_SET},
    )
    return FitResult(bundle, report, data, seq.entry_lag)


def trade_return_columns(features: pd.DataFrame, entry_lag: int) -> pd.DataFrame:
    """Per features row: the trade's one-bar return (NaN where it spans a break), the same one bar later
    (the stress case: filled a bar late), and the segment (breaks before the row; no position crosses one)."""
    target = features[TARGET].to_numpy("float64")
    breaks = break_counts(features)
    n = len(target)
    ahead = np.minimum(np.arange(n) + entry_lag + 1, n - 1)  # the last price row target[t] reads
    trade = np.where(breaks[ahead] == breaks, target, np.nan)
    stress = np.full(n, np.nan)
    stress[:-1] = np.where(breaks[1:] == breaks[:-1], trade[1:], np.nan)
    return pd.DataFrame({"trade_return": trade, "stress_return": stress, "segment": breaks}, index=features.index)


def out_of_sample(fit: FitResult, features: pd.DataFrame, ends: torch.Tensor) -> pd.DataFrame:
    """One row per sample end: the bundle's forecast, the label, the trade's per-bar returns, the naive forecasts."""
    ends_np = ends.cpu().numpy()
    first = int(ends_np[0]) - fit.bundle.seq_len + 1
    forecast = fit.bundle.predict(features.iloc[first : int(ends_np[-1]) + 1]).to_numpy()[ends_np - first]
    naive = naive_forecasts(fit.data, ends.cpu())
    trades = trade_return_columns(features, fit.data_entry_lag).iloc[ends_np]
    return pd.DataFrame(
        {
            "prediction": forecast,
            "label": fit.data.labels[ends_np].double().numpy(),
            "trade_return": trades["trade_return"].to_numpy(),
            "stress_return": trades["stress_return"].to_numpy(),
            "segment": trades["segment"].to_numpy(),
            "baseline_train_mean": naive["train_mean"].numpy(),
            "baseline_ar1": naive["ar1"].numpy(),
        },
        index=features.index[ends_np],
    )


def train_and_track(
    features: pd.DataFrame,
    spec: ModelSpec,
    tracker: Tracker,
    partition: Partition,
    bars_per_year: float,
    execution: Execution = Execution(),
    registered_name: str | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainOutcome:
    """Train the production model on the chronological split, evaluate it on the held-out test span
    (never seen by early stopping), log everything and register the servable bundle."""
    symbol, timeframe = partition.symbol, partition.timeframe
    require_rows(features, spec, partition)

    def epoch(number: int, metrics: dict[str, float]) -> None:
        tracker.log_metrics(metrics, step=number)
        if on_epoch:
            on_epoch(number, metrics)

    fit = fit_model(features, spec, on_epoch=epoch)
    data = fit.data
    tracker.log_params(
        {
            **spec.params(),
            "train_samples": len(data.train_ends),
            "validation_samples": len(data.validation_ends),
            "test_samples": len(data.test_ends),
            "n_features": len(data.feature_columns),
            "parameters": sum(p.numel() for p in fit.bundle.network.parameters()),
            **{f"execution.{k}": v for k, v in execution.as_dict().items()},
        }
    )
    test = out_of_sample(fit, features, data.test_ends)
    metrics = evaluate_predictions(test, bars_per_year, execution, timeframe)
    tracker.log_metrics({f"final_{k}": v for k, v in fit.report.metrics().items()})
    tracker.log_metrics({f"test_{k}": v for k, v in metrics.items()})
    tracker.log_dict(
        {"report": fit.report.as_dict(), "test_metrics": metrics, "scaler": data.scaler.to_dict()}, "report.json"
    )
    tracker.log_table(test, "test_predictions.parquet")
    images = {"training_curves": charts.training_curves(fit.report.history, f"{symbol} {timeframe}")}
    for name, png in images.items():
        tracker.log_image(png, f"{name}.png")
    registered: dict[str, str] = {}
    if registered_name:
        tracker.log_dataset(features, f"features-{symbol}-{timeframe}")
        registered = tracker.log_bundle(fit.bundle, features, registered_name)
    return TrainOutcome(fit.bundle, fit.report, test, metrics, registered, images)


def walk_forward(
    features: pd.DataFrame,
    spec: ModelSpec,
    config: WalkForwardConfig,
    tracker: Tracker,
    partition: Partition,
    execution: Execution,
    on_fold: Callable[[str, int, TrainReport], Any] | None = None,
) -> pd.DataFrame:
    """Out-of-sample forecasts of every model in ``config.models`` over walk-forward folds on a calendar grid.

    Each fold trains a fresh model (:func:`fit_model`, the same seed and trainer as ``trained_model``)
    on rows strictly before its test block, a purge gap earlier, in a nested tracking run, and
    forecasts every bar of the block. The last fold is the hold-out (``holdout`` True): forecast like
    the others, never used for ranking. Bad settings are refused before any training.
    """
    symbol, timeframe = partition.symbol, partition.timeframe
    try:
        folds = time_folds(features.index, config.grid, spec.gap)
    except ValueError as exc:
        raise CandleDataError(symbol, timeframe, f"{exc}; request a longer span or fewer periods") from exc
    try:
        execution.check_fits(min(len(f.test) for f in folds), "the shortest test fold")
    except ExecutionError as exc:
        raise CandleDataError(symbol, timeframe, str(exc)) from exc
    index = features.index
    frames = []
    for kind in config.models:
        model_spec = with_params(with_kind(spec, kind), config.params.get(kind, {}))
        for fold in folds:
            name = f"{symbol}|{timeframe} {kind} fold {fold.number}" + (" (hold-out)" if fold.holdout else "")
            tags = {
                "symbol": symbol,
                "timeframe": timeframe,
                "model": kind,
                "fold": str(fold.number),
                "holdout": str(fold.holdout).lower(),
            }
            spans = {
                "train_start": index[fold.train.start],
                "train_end": index[fold.train.stop - 1],
                "validation_start": index[fold.validation.start],
                "validation_end": index[fold.validation.stop - 1],
                "test_start": index[fold.test.start],
                "test_end": index[fold.test.stop - 1],
            }
            with tracker.child(name, tags) as child:
                child.log_params(
                    {
                        **model_spec.params(),
                        "fold": fold.number,
                        "holdout": fold.holdout,
                        **{k: v.isoformat() for k, v in spans.items()},
                    }
                )
                fit = fit_model(
                    features,
                    model_spec,
                    Split(fold.train, fold.validation, fold.test),
                    on_epoch=lambda e, m, c=child: c.log_metrics(m, step=e),
                    test_windows_from_history=True,
                )
                frame = out_of_sample(fit, features, fit.data.test_ends)
                mse = float(np.mean((frame["prediction"] - frame["label"]) ** 2))
                child.log_metrics({"oos_mse": mse, "oos_samples": float(len(frame)), **fit.report.metrics()})
                child.set_tags({"stop_reason": fit.report.stop_reason})
                frame.insert(0, "model", kind)
                frame.insert(1, "fold", fold.number)
                frame.insert(2, "holdout", fold.holdout)
                for column in ("train_start", "train_end", "validation_start", "validation_end"):
                    frame[column] = spans[column]
                frame["epochs_run"] = fit.report.epochs_run
                frame["best_epoch"] = fit.report.best_epoch
                frame["stop_reason"] = fit.report.stop_reason
                frame["mlflow_run_id"] = child.run_id
                frames.append(frame)
            if on_fold:
                on_fold(kind, fold.number, fit.report)
    out = pd.concat(frames)
    out.index.name = "open_time"
    return out
