"""Walk-forward evaluation time: K folds, each training a fresh model, on the device it runs on.

Builds 30 days of synthetic 5-minute candles through the real indicators and features code, then
runs the ``predictions`` pipeline (trading_assets.training.pipeline.walk_forward) and the
``evaluation`` statistics on it, without MLflow (a tracker that records nothing), and prints the
time per fold and in total.

    python benchmarks/bench_walkforward.py                      # 5 folds, default BiLSTM, CPU/GPU auto
    python benchmarks/bench_walkforward.py --preset research    # the research BiLSTM (for a GPU)
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from trading_assets.candles import fill_candle_grid
from trading_assets.evaluation import evaluation_table
from trading_assets.features import FeatureConfig, build_features, lead_in_bars
from trading_assets.indicators import compute_indicators, warmup_bars
from trading_assets.sources import SyntheticSource
from trading_assets.timeframes import get_timeframe
from trading_assets.training.config import build_spec
from trading_assets.training.pipeline import NullTracker, WalkForwardConfig, walk_forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--timeframe", default="5m")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--models", default="bilstm", help="comma-separated MODELS keys")
    parser.add_argument("--preset", default=None, help="e.g. research")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    tf = get_timeframe(args.timeframe)
    end = pd.Timestamp("2026-10-01", tz="UTC")
    span_start = end - pd.Timedelta(days=args.days)
    lead = lead_in_bars(FeatureConfig())
    start = span_start - (warmup_bars() + lead) * tf.delta
    candles = fill_candle_grid(SyntheticSource().fetch("KRW-BTC", tf.name, start, end), tf.name, start, end).frame
    indicators = compute_indicators(candles, span_start - lead * tf.delta).frame
    features = build_features(indicators, "KRW-BTC", tf.name, span_start=span_start).frame

    spec = build_spec({"epochs": args.epochs, "device": args.device}, preset=args.preset)
    config = WalkForwardConfig(folds=args.folds, models=tuple(args.models.split(",")))
    folds: list[tuple[str, int, float, int, str]] = []
    last = [time.perf_counter()]

    def on_fold(model: str, fold: int, report) -> None:
        now = time.perf_counter()
        folds.append((model, fold, now - last[0], report.epochs_run, report.device))
        last[0] = now

    started = time.perf_counter()
    predictions = walk_forward(features, spec, config, NullTracker(), "KRW-BTC", tf.name, on_fold=on_fold)
    walk_seconds = time.perf_counter() - started
    t0 = time.perf_counter()
    table = evaluation_table(predictions, tf.bars_per_year, fee_bp=5.0)
    eval_seconds = time.perf_counter() - t0

    device = folds[0][4]
    print(f"device              : {device}" + (f" ({torch.cuda.get_device_name()})" if "cuda" in device else ""))
    print(f"data                : {args.days:g} days of {tf.name} = {len(features):,} feature rows")
    print(f"models              : {args.models} ({args.preset or 'default'} settings, up to {args.epochs} epochs)")
    for model, fold, seconds, epochs, _ in folds:
        print(f"  {model:<12} fold {fold}: {seconds:7.2f} s ({epochs} epochs)")
    print(f"walk-forward total  : {walk_seconds:.1f} s for {len(folds)} folds, {len(predictions):,} forecasts")
    print(f"evaluation stats    : {eval_seconds:.2f} s ({len(table)} rows: per fold and overall)")


if __name__ == "__main__":
    main()
