"""Hyperparameter sweeps (trading_assets.tuning): scored inside the training span only, stored and resumed,
pruned, and reported when nothing completes; the leaderboard counts their trials."""

import threading
import time

import numpy as np
import optuna
import pandas as pd
import pytest

from trading_assets.partition import Partition
from trading_assets.research import tuning_trials
from trading_assets.splits import FoldGrid, time_folds
from trading_assets.tuning import inner_splits, tune, tuning_span
from trading_assets_tests.test_research import SPEC, TF, _features

P = Partition("KRW-BTC", TF)
GRID = FoldGrid("D")


@pytest.fixture(scope="module")
def features():
    return _features("persistent", 0.5, days=14)


def _beat(storage, trial_id: int, stop: threading.Event) -> None:
    while not stop.wait(0.2):
        storage.record_heartbeat(trial_id)


def _tune(features, storage, trials=4, model="lightgbm", **kwargs):
    return tune(features, SPEC, GRID, model, P, storage, trials, **kwargs)


def test_a_sweep_never_reads_the_outer_test_folds_or_the_holdout(features, tmp_path):
    first_test = time_folds(features.index, GRID, SPEC.gap)[0].test.start
    span = tuning_span(features, SPEC, GRID, P)
    assert len(span) == first_test - SPEC.gap  # before the first test fold, its purge gap apart
    result = _tune(features, f"sqlite:///{tmp_path / 'a.sqlite'}")
    assert result.span_end == span.index[-1] < features.index[first_test]
    scrambled = features.copy()
    after = scrambled.index > result.span_end
    noise = np.random.default_rng(0).standard_normal((int(after.sum()), scrambled.shape[1])).astype("float32")
    scrambled.loc[after] = noise  # what the research loop tests on, replaced by noise
    again = _tune(scrambled, f"sqlite:///{tmp_path / 'b.sqlite'}")
    pd.testing.assert_frame_equal(
        result.trials.drop(columns="seconds"), again.trials.drop(columns="seconds")
    )  # the same trials, the same scores: nothing after the span was read
    assert result.best_params == again.best_params and result.tried == 4


def test_a_stored_study_resumes_after_a_kill_and_leaves_a_live_runs_trials_alone(features, tmp_path):
    storage = f"sqlite:///{tmp_path / 'studies.sqlite'}"
    first = _tune(features, storage, trials=3, heartbeat=2)
    assert first.tried == 3
    other = optuna.storages.RDBStorage(storage, heartbeat_interval=2)
    trial = optuna.load_study(study_name=first.study_name, storage=other).ask()  # another run's trial
    trial.set_user_attr("heartbeat", True)  # as its run's objective marks it
    beating, stop = threading.Thread(target=lambda: _beat(other, trial._trial_id, stop)), threading.Event()
    beating.start()
    try:  # the other run is alive: its trial keeps running
        alongside = _tune(features, storage, trials=4, heartbeat=2)
    finally:
        stop.set()
        beating.join()
    assert list(alongside.trials["state"]).count("RUNNING") == 1 and alongside.tried == 4
    optuna.load_study(study_name=first.study_name, storage=storage).ask()  # left by a run of the code before beats
    # the other run was killed: its heartbeat silent for more than two beats, as SQLite's clock (whole seconds,
    # the beat's and now's both truncated) sees it: 4.5 s can read as 4, not stale yet. Beats of 2 s: the beating
    # thread may stall for a second or more while another test worker loads the machine, and must not be taken
    # for dead meanwhile.
    time.sleep(5.5)
    resumed = _tune(features, storage, trials=5, heartbeat=2)
    states = list(resumed.trials["state"])
    assert states.count("FAIL") == 2 and resumed.tried == 5 and len(states) == 7  # 4 kept, 1 new, 2 failed
    assert resumed.study_name == first.study_name
    evaluated = resumed.trials[resumed.trials["state"] != "FAIL"]
    assert evaluated["params"].nunique() == 5  # the resumed sampler draws new configurations, not the first again
    assert _tune(features, storage, trials=5).tried == 5  # done: nothing more runs
    shorter = _tune(features.iloc[:-300], storage, trials=2)  # other data: another study, scored afresh
    assert shorter.study_name != first.study_name and len(shorter.trials) == 2


def test_trials_worse_than_the_median_are_pruned_and_a_sweep_without_a_result_is_reported(
    features, tmp_path, monkeypatch
):
    from trading_assets.training import pipeline

    fit = pipeline.fit_model
    calls = {"n": 0}

    def worse_each_time(*args, **kwargs):
        result = fit(*args, **kwargs)
        calls["n"] += 1
        result.report.test_loss = float(calls["n"])  # every fold of every later trial is worse
        return result

    monkeypatch.setattr(pipeline, "fit_model", worse_each_time)
    result = _tune(features, f"sqlite:///{tmp_path / 'p.sqlite'}", trials=6, inner_folds=3)
    assert result.count("PRUNED") >= 1 and result.count("COMPLETE") >= 3
    assert calls["n"] < 6 * 3  # pruned trials stopped before their last inner fold

    def broken(*args, **kwargs):
        raise RuntimeError("the network diverged")

    monkeypatch.setattr(pipeline, "fit_model", broken)
    failed = _tune(features, f"sqlite:///{tmp_path / 'f.sqlite'}", trials=2)
    assert failed.best_params is None and failed.count("FAIL") == 2
    assert failed.problem == "lightgbm: no completed trial (0 pruned, 2 failed): nothing to recommend"


def test_inner_folds_expand_and_keep_their_gaps():
    splits = inner_splits(1000, 3, 10, 0.2, 20)
    assert [s.test for s in splits] == [range(250, 500), range(500, 750), range(750, 1000)]
    for split in splits:
        assert split.train.start == 0 and split.train.stop + 10 == split.validation.start
        assert split.validation.stop + 10 == split.test.start
    with pytest.raises(ValueError, match="too few for 3 inner folds"):
        inner_splits(60, 3, 10, 0.2, 20)


def test_a_model_without_a_search_space_is_refused(features, tmp_path):
    with pytest.raises(ValueError, match="linear declares no search space"):
        _tune(features, f"sqlite:///{tmp_path / 'l.sqlite'}", model="linear")


def test_the_leaderboard_counts_every_trial_beyond_the_entry_it_became():
    tuned = pd.DataFrame()
    tuned.attrs["research"] = {"tuning_trials": {"lightgbm": 20, "gru": 5}}
    untuned = pd.DataFrame()
    untuned.attrs["research"] = {}
    assert tuning_trials([tuned, untuned]) == 19 + 4
