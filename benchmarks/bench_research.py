"""Size and power of the default evaluation: how often noise is called an edge, how often a planted edge is found.

Each trial builds synthetic candles of one seed (trading_assets.sources.SyntheticSource, optionally with a
planted edge) through the real indicators and features code, runs the research loop's walk-forward
predictions with the default models and settings (no MLflow), and the partition's verdict
(trading_assets.evaluation.judge) under the default execution model. It prints, per edge strength, the
share of seeds on which

* ``edge_significant`` passes (DM against the best naive forecast, Holm-adjusted over the models), and
* ``survives_costs`` passes (net edge after costs, Holm-adjusted, with a positive net return),

the first row (strength 0) being the false-positive rate: the test's size.

    python benchmarks/bench_research.py                                  # 20 noise seeds, strengths 0.4..0.8
    python benchmarks/bench_research.py --seeds 40 --edge one_bar --strengths 0,0.2,0.4
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from trading_assets.evaluation import judge
from trading_assets.execution import Execution
from trading_assets.research import features_from_source, run_walk_forward
from trading_assets.sources import SyntheticSource
from trading_assets.splits import FOLD_PERIODS, FoldGrid
from trading_assets.timeframes import DEFAULT_SPAN_DAYS, get_timeframe
from trading_assets.training.config import build_spec
from trading_assets.training.pipeline import NullTracker


def trial(edge: str, strength: float, seed: int, args: argparse.Namespace) -> tuple[bool, bool, float]:
    execution = Execution()
    end = pd.Timestamp(args.end, tz="UTC")
    source = SyntheticSource(seed=seed, edge=edge if strength > 0 else "none", edge_strength=strength)
    features = features_from_source(source, args, end - pd.Timedelta(days=args.days), end, execution)
    spec = build_spec({"horizon": execution.horizon, "entry_lag": execution.entry_lag, "device": "cpu"})
    grid = FoldGrid(FOLD_PERIODS[args.timeframe])
    frame, _ = run_walk_forward(features, spec, grid, tuple(args.models.split(",")), execution, NullTracker(), args)
    verdict = judge(frame, get_timeframe(args.timeframe).bars_per_year, execution, args.timeframe, args.level)
    capped = float((frame.groupby(["model", "fold"])["stop_reason"].first() == "epoch_cap").mean())
    return verdict.edge_significant.passed, verdict.survives_costs.passed, capped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per strength (>= 20 for the size)")
    parser.add_argument("--edge", default="persistent", choices=["persistent", "one_bar"])
    parser.add_argument("--strengths", default="0,0.4,0.6,0.8", help="comma-separated; 0 = noise")
    parser.add_argument("--power-seeds", type=int, default=5, help="seeds per non-zero strength")
    parser.add_argument("--timeframe", default="5m")
    parser.add_argument("--days", type=float, default=None, help="default: the timeframe's default span")
    parser.add_argument("--models", default="bilstm,linear")
    parser.add_argument("--symbol", default="KRW-BTC")
    parser.add_argument("--end", default="2026-10-01")
    parser.add_argument("--level", type=float, default=0.05)
    args = parser.parse_args()
    args.days = args.days or DEFAULT_SPAN_DAYS[args.timeframe]

    print(
        f"{args.symbol} {args.timeframe}, {args.days:g} days to {args.end}, models {args.models}, default execution "
        f"({Execution().costs.per_side * 1e4:g} bp per side, long-only, cost-aware), level {args.level:g}\n"
    )
    header = f"planted edge ({args.edge}) | seeds | edge_significant | survives_costs | fits at the epoch cap | s/seed"
    print(f"| {header} |")
    print("|---|---|---|---|---|---|")
    for strength in (float(s) for s in args.strengths.split(",")):
        seeds = args.seeds if strength == 0 else args.power_seeds
        started = time.perf_counter()
        results = [trial(args.edge, strength, seed, args) for seed in range(1, seeds + 1)]
        seconds = (time.perf_counter() - started) / seeds
        significant = sum(r[0] for r in results) / seeds
        survives = sum(r[1] for r in results) / seeds
        capped = sum(r[2] for r in results) / seeds
        label = "none (noise): size" if strength == 0 else f"strength {strength:g}: power"
        print(f"| {label} | {seeds} | {significant:.0%} | {survives:.0%} | {capped:.0%} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
