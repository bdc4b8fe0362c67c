"""Hyperparameter sweeps without selection bias: an optuna study per partition and model, over the search space
declared with the model (``MODELS[kind].search_space``), scored only inside the training span.

* **What a trial sees.** The rows before the research loop's first test fold, less its purge gap
  (:func:`tuning_span`): the outer test folds and the hold-out are never read. Inside that span a trial is
  scored by walk-forward validation: ``inner_folds`` expanding folds, each fit on the rows before its block
  (early stopping on the last share of them, a gap apart), its loss the MSE of the block after a gap.
* **Pruning.** After each inner fold the running mean is reported; optuna's median pruner stops a trial that
  is worse than the median of the earlier trials at the same fold.
* **Storage.** The study lives in a database (an optuna RDB storage URL: a SQLite file beside the instance by
  default, or the instance's PostgreSQL), named after the partition, the model, the feature set and a digest
  of the data and terms it is scored on, so a run that was killed resumes: its finished trials count, a trial
  it left running is marked failed once its heartbeat (every ``heartbeat`` seconds, optuna's) has been silent
  for two of them, and only the rest are run (the sampler seeded on the trials so far, so it draws new
  configurations); other data starts another study. Runs on one study at once leave each other's running
  trials alone (they may then evaluate a few more configurations than asked, all counted).
* **Counting.** Every trial that was evaluated (complete or pruned) is a configuration tried: the leaderboard's
  multiple-testing adjustment counts them (see :func:`trading_assets.evaluation.rank_board`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trading_assets.errors import CandleDataError
from trading_assets.partition import Partition
from trading_assets.splits import FoldGrid, Split, time_folds
from trading_assets.training.config import MODELS, ModelSpec, Param, known_model, with_kind, with_params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyResult:
    """One model's study on one partition."""

    model: str
    study_name: str
    trials: pd.DataFrame  # one row per trial: number, state, value, params (JSON), seconds
    best_params: dict[str, Any] | None
    best_value: float | None
    span_end: pd.Timestamp  # the last row any trial read

    def count(self, state: str) -> int:
        return int((self.trials["state"] == state).sum()) if len(self.trials) else 0

    @property
    def tried(self) -> int:
        """Configurations evaluated: complete and pruned trials (failed ones never produced a score)."""
        return self.count("COMPLETE") + self.count("PRUNED")

    @property
    def problem(self) -> str | None:
        """Why there is no best configuration, or None."""
        if self.best_params is not None:
            return None
        return (
            f"{self.model}: no completed trial ({self.count('PRUNED')} pruned, {self.count('FAIL')} failed): "
            "nothing to recommend"
        )


def tuning_span(features: pd.DataFrame, spec: ModelSpec, grid: FoldGrid, partition: Partition) -> pd.DataFrame:
    """The rows a sweep may read: those before the research loop's first test fold, less its purge gap."""
    try:
        folds = time_folds(features.index, grid, spec.gap)
    except ValueError as exc:
        raise CandleDataError(partition.symbol, partition.timeframe, f"{exc}; request a longer span") from exc
    return features.iloc[: folds[0].test.start - spec.gap]


def inner_splits(rows: int, folds: int, gap: int, validation_fraction: float, min_rows: int) -> list[Split]:
    """Expanding walk-forward folds over ``rows``: the last ``folds`` of ``folds + 1`` equal blocks are scored,
    each fit on the rows before it, ``gap`` apart, early stopping on the last ``validation_fraction`` of them."""
    edges = np.linspace(0, rows, folds + 2).astype(int)
    splits = []
    for start, stop in zip(edges[1:-1], edges[2:]):
        learn_stop = int(start) - gap
        n_val = int(learn_stop * validation_fraction)
        validation = range(learn_stop - n_val, learn_stop)
        train = range(0, validation.start - gap)
        if min(len(train), len(validation), stop - start) < min_rows:
            raise ValueError(
                f"{rows} rows are too few for {folds} inner folds with gap {gap} (train {len(train)}, "
                f"validation {len(validation)}, scored {stop - start} rows; at least {min_rows} each)"
            )
        splits.append(Split(train, validation, range(int(start), int(stop))))
    return splits


def suggest(trial, space: dict[str, Param]) -> dict[str, Any]:
    """One sample of ``space`` from an optuna trial."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if p.integer:
            out[name] = trial.suggest_int(name, int(p.low), int(p.high), step=p.step, log=p.log)
        else:
            out[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
    return out


def study_name(partition: Partition, model: str, feature_set: str, scored_on: dict[str, Any]) -> str:
    """``<partition>:<model>:<feature set>:<digest>``; the digest covers what a trial's score depends on besides
    its settings (the span's rows, the inner folds, the spec, the search space), so a study is resumed only on
    the same data and terms, and another span starts another study."""
    digest = hashlib.blake2b(json.dumps(scored_on, sort_keys=True, default=str).encode(), digest_size=6)
    return f"{partition.key}:{model}:{feature_set}:{digest.hexdigest()}"


# Heartbeats are "experimental" in optuna (since 2.9, still in 5.1): not a warning on every tuning run's terminal.
warnings.filterwarnings("ignore", message=r"(Argument ``heartbeat_interval``|.*fail_stale_trials) is (an )?experiment")

HEARTBEAT_SECONDS = 30  # a running trial's heartbeat; silent for twice that, its run is taken for dead
BEATING = "heartbeat"  # user attribute of the trials run with heartbeats


def tune(
    features: pd.DataFrame,
    spec: ModelSpec,
    grid: FoldGrid,
    model: str,
    partition: Partition,
    storage: str,
    trials: int,
    inner_folds: int = 3,
    feature_set: str = "default",
    tracker=None,  # trading_assets.training.pipeline.Tracker: a nested run per trial
    on_trial: Callable[[str], Any] | None = None,
    heartbeat: int = HEARTBEAT_SECONDS,
) -> StudyResult:
    """Run the study of ``model`` on ``partition`` until ``trials`` configurations were evaluated (resuming a
    stored one), and return its trials and best configuration (None when no trial completed)."""
    import optuna

    from trading_assets.training.pipeline import NullTracker, fit_model

    space = MODELS[known_model(model)].search_space
    if not space:
        raise ValueError(f"{partition}: {model} declares no search space (MODELS[{model!r}].search_space)")
    span = tuning_span(features, spec, grid, partition)
    base = with_kind(spec, model)
    try:
        splits = inner_splits(len(span), inner_folds, spec.gap, grid.validation_fraction, spec.sequence.seq_len + 1)
    except ValueError as exc:
        raise CandleDataError(partition.symbol, partition.timeframe, f"tuning span: {exc}") from exc
    tracker = tracker or NullTracker()
    scored_on = {
        "rows": len(span),
        "first": span.index[0],
        "last": span.index[-1],
        "splits": [(s.train.stop, s.validation.stop, s.test.start, s.test.stop) for s in splits],
        "spec": base.params(),
        "space": {k: repr(v) for k, v in space.items()},
    }
    name = study_name(partition, model, feature_set, scored_on)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial: the caller's on_trial says it
    study = optuna.create_study(
        study_name=name,
        storage=optuna.storages.RDBStorage(storage, heartbeat_interval=heartbeat, grace_period=2 * heartbeat),
        direction="minimize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
        load_if_exists=True,
    )
    # seeded on where the study stands: a resumed study draws new configurations, not the first ones again
    study.sampler = optuna.samplers.TPESampler(seed=spec.train.seed + len(study.trials))
    running = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    optuna.storages.fail_stale_trials(study)  # left running by a run whose heartbeat stopped: a killed run
    now = pd.Timestamp.now()  # optuna keeps naive local times
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        started = trial.datetime_start and pd.Timestamp(trial.datetime_start)
        if BEATING not in trial.user_attrs and started and now - started > pd.Timedelta(seconds=2 * heartbeat):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)  # of code before heartbeats: never beats
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        if stale.number in running:
            log.warning("%s: trial %d was left running by a run that ended; marked failed", name, stale.number)

    def objective(trial) -> float:
        trial.set_user_attr(BEATING, True)  # its run beats: only its silence makes it stale
        params = suggest(trial, space)
        trial_spec = with_params(base, params)
        tags = {
            "symbol": partition.symbol,
            "timeframe": partition.timeframe,
            "model": model,
            "trial": str(trial.number),
        }
        with tracker.child(f"{partition} {model} trial {trial.number}", tags) as child:
            child.log_params({**trial_spec.params(), "trial": trial.number})
            losses = []
            for step, split in enumerate(splits):
                fit = fit_model(span, trial_spec, split, test_windows_from_history=True)
                losses.append(fit.report.test_loss)
                value = float(np.mean(losses))
                child.log_metrics({"inner_fold_loss": fit.report.test_loss, "objective": value}, step=step)
                trial.report(value, step)
                if trial.should_prune():
                    child.set_tags({"state": "PRUNED"})
                    raise optuna.TrialPruned()
            child.set_tags({"state": "COMPLETE"})
        if on_trial:
            on_trial(f"{partition} {model} trial {trial.number}: {value:.4g} {params}")
        return value

    done = sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.trials)
    if trials > done:
        study.optimize(objective, n_trials=trials - done, catch=(RuntimeError, ValueError, FloatingPointError))
    return _result(study, model, span.index[-1])


def _result(study, model: str, span_end: pd.Timestamp) -> StudyResult:
    import optuna

    rows = [
        {
            "model": model,
            "number": t.number,
            "state": t.state.name,
            "value": t.value if t.value is not None and math.isfinite(t.value) else np.nan,
            "params": json.dumps(t.params, sort_keys=True),
            "seconds": t.duration.total_seconds() if t.duration else np.nan,
        }
        for t in study.trials
    ]
    trials = pd.DataFrame(rows, columns=["model", "number", "state", "value", "params", "seconds"])
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value) if complete else None
    return StudyResult(
        model,
        study.study_name,
        trials,
        dict(best.params) if best else None,
        float(best.value) if best else None,
        span_end,
    )
