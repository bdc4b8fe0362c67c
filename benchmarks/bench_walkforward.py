"""Walk-forward evaluation time: K folds, each training a fresh model, on the device it runs on.

Builds 30 days of synthetic 5-minute candles through the real indicators and features code, then
runs the ``predictions`` pipeline (trading_assets.research.run_walk_forward: daily folds, the last day
the hold-out) and the ``evaluation`` verdict on it, without MLflow (a tracker that records nothing),
and prints the time per fold and in total.

    python benchmarks/bench_walkforward.py                      # 5 folds, default BiLSTM, CPU/GPU auto
    python benchmarks/bench_walkforward.py --preset research    # the research BiLSTM (for a GPU)
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from trading_assets.evaluation import judge
from trading_assets.execution import Execution
from trading_assets.partition import Partition
from trading_assets.research import features_from_source, run_walk_forward
from trading_assets.sources import SyntheticSource
from trading_assets.splits import FOLD_PERIODS, FoldGrid
from trading_assets.timeframes import get_timeframe
from trading_assets.training.config import build_spec
from trading_assets.training.pipeline import NullTracker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--timeframe", default="5m")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--models", default="bilstm", help="comma-separated MODELS keys")
    parser.add_argument("--preset", default=None, help="e.g. research")
    parser.add_argument("--epochs", type=int, default=100, help="cap; early stopping ends training")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    tf = get_timeframe(args.timeframe)
    end = pd.Timestamp("2026-10-01", tz="UTC")
    execution = Execution()
    features = features_from_source(
        SyntheticSource(), Partition("KRW-BTC", tf.name), end - pd.Timedelta(days=args.days), end, execution
    )
    spec = build_spec({"epochs": args.epochs, "device": args.device}, preset=args.preset)
    grid = FoldGrid(FOLD_PERIODS[tf.name], max_folds=args.folds)
    folds: list[tuple[str, int, float, int, str, str]] = []
    last = [time.perf_counter()]

    def on_fold(model: str, fold: int, report) -> None:
        now = time.perf_counter()
        folds.append((model, fold, now - last[0], report.epochs_run, report.device, report.stop_reason))
        last[0] = now

    started = time.perf_counter()
    models = tuple(args.models.split(","))
    predictions, _ = run_walk_forward(
        features, spec, grid, models, execution, NullTracker(), Partition("KRW-BTC", tf.name), on_fold=on_fold
    )
    walk_seconds = time.perf_counter() - started
    t0 = time.perf_counter()
    table = judge(predictions, tf.bars_per_year, execution, tf.name).table
    eval_seconds = time.perf_counter() - t0

    device = folds[0][4]
    print(f"device              : {device}" + (f" ({torch.cuda.get_device_name()})" if "cuda" in device else ""))
    print(f"data                : {args.days:g} days of {tf.name} = {len(features):,} feature rows")
    print(f"models              : {args.models} ({args.preset or 'default'} settings, up to {args.epochs} epochs)")
    for model, fold, seconds, epochs, _, reason in folds:
        print(f"  {model:<12} fold {fold}: {seconds:7.2f} s ({epochs} epochs, {reason})")
    print(f"walk-forward total  : {walk_seconds:.1f} s for {len(folds)} folds, {len(predictions):,} forecasts")
    print(f"evaluation verdict  : {eval_seconds:.2f} s ({len(table)} rows: per fold, overall, hold-out)")


if __name__ == "__main__":
    main()
