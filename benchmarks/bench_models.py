"""Every registered model on equal terms: the research loop's walk-forward and verdict on a planted-edge
synthetic partition and on edge-free ones (the default partitions' symbols), with train and predict time.

Per data set, every model runs the same walk-forward (5m bars, daily folds, the hold-out kept apart) with
the same settings; the verdict adjusts the net-edge p-values over the models (Holm). Times are summed over
the folds: ``train`` is the trainer's wall time (fit and early stopping), ``predict`` is the rest of the
walk-forward (scaling, the forecasts of each test block, bookkeeping). Device: ``--device auto`` takes a GPU
when there is one.

    python benchmarks/bench_models.py [--days 14] [--device cpu] [--models bilstm,linear]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

END = pd.Timestamp("2026-06-01", tz="UTC")
TIMEFRAME = "5m"


def main() -> None:
    from trading_assets.evaluation import judge
    from trading_assets.execution import Execution
    from trading_assets.partition import Partition
    from trading_assets.research import features_from_source, run_walk_forward
    from trading_assets.sources import SyntheticSource
    from trading_assets.splits import FoldGrid
    from trading_assets.timeframes import get_timeframe
    from trading_assets.training.config import MODELS, build_spec
    from trading_assets.training.pipeline import NullTracker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    models = tuple(args.models.split(","))
    execution = Execution()
    spec = build_spec({"seq_len": 24, "hidden_size": 16, "horizon": 1, "entry_lag": 1, "device": args.device})
    start = END - pd.Timedelta(days=args.days)
    data_sets = {
        "planted edge (persistent 0.5)": ("KRW-BTC", SyntheticSource(seed=7, edge="persistent", edge_strength=0.5)),
        "no edge, KRW-BTC": ("KRW-BTC", SyntheticSource(seed=1)),
        "no edge, KRW-ETH": ("KRW-ETH", SyntheticSource(seed=2)),
    }
    rows = []
    for label, (symbol, source) in data_sets.items():
        partition = Partition(symbol, TIMEFRAME)
        features = features_from_source(source, partition, start, END, execution)
        frames, times = [], {}
        for model in models:
            train_seconds = []
            t0 = time.perf_counter()
            frame, _ = run_walk_forward(
                features,
                spec,
                FoldGrid("D"),
                (model,),
                execution,
                NullTracker(),
                partition,
                on_fold=lambda m, f, r, s=train_seconds: s.append(r.wall_seconds),
            )
            total = time.perf_counter() - t0
            times[model] = (sum(train_seconds), total - sum(train_seconds))
            frames.append(frame)
        verdict = judge(pd.concat(frames), get_timeframe(TIMEFRAME).bars_per_year, execution, TIMEFRAME)
        for _, row in verdict.ranked.iterrows():
            train_s, predict_s = times[row["model"]]
            rows.append(
                {
                    "data": label,
                    "model": row["model"],
                    "net edge t": row["backtest_edge_t_stat"],
                    "edge p (Holm)": row["edge_pvalue_adj"],
                    "net log return": row["backtest_net_log_return"],
                    "train s": train_s,
                    "predict s": predict_s,
                }
            )
    table = pd.DataFrame(rows)
    print(f"{len(models)} models, {TIMEFRAME}, {args.days:g} days, device {args.device}")
    print(table.to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
