"""From new candles to live signals, and the refresh of one partition against its first run.

* signals: 20 symbols x 1m with 30 days stored and a champion each, then 5 new bars per symbol: the time
  from the new candles in the source to all 20 signals written, as the platform does it (per partition a
  ``market_data_job`` run, an incremental refresh; then the one ``signals_job`` run over the range of
  symbols the sensor asks for), in one process on an ephemeral instance. The champions are one trained
  linear model (``training_job`` on the first partition) cached for every partition: this times scoring,
  not the champion decision.
  Goal (issue "From leaderboard to live signal"): <= 10 s on the 2-core machine.
* refresh: ``trading-assets materialize --assets data --days 365`` of one 1m partition, then the same with
  ``--end`` 5 minutes later, whole command each (a fresh process, as a user runs it). Goal: the second
  <= 40 % of the first.
* floors: each measure again when the source has no new candle (the same runs, the same command): what the
  runs and the command cost before there is anything to compute. And Dagster's part alone: the same 20 runs of
  the data graph's shape with no work in it (the same assets, dependencies, partitions and checks, in the same
  steps, each returning a constant, kept in memory).

    python benchmarks/bench_signals.py [--symbols 20] [--skip-refresh] [--shape-only]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
END = pd.Timestamp("2026-01-01", tz="UTC")
NEW_BARS = 5


def bench_signals(symbols: int) -> None:
    from dagster import DagsterInstance

    from trading_assets.champions import ChampionCache
    from trading_assets.defs import defs
    from trading_assets.defs.live import range_tags
    from trading_assets.defs.partitions import add_symbols, partition_key
    from trading_assets.defs.runs import QUIET_LOGGERS
    from trading_assets.partition import Partition
    from trading_assets.settings import data_dir, default_tracking_uri
    from trading_assets.training.registry import Registry

    names = [f"KRW-B{i:02d}" for i in range(symbols)]
    instance = DagsterInstance.ephemeral()
    add_symbols(instance, names)

    def window(end: pd.Timestamp) -> dict:
        return {"ops": {"raw_candles": {"config": {"days": 30.0, "end": end.isoformat()}}}}

    def run(job: str, symbol: str, config: dict | None = None) -> float:
        t0 = time.perf_counter()
        result = defs.resolve_job_def(job).execute_in_process(
            partition_key=partition_key(symbol, "1m"),
            instance=instance,
            run_config={**(config or {}), **QUIET_LOGGERS},
            raise_on_error=True,
        )
        assert result.success
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    for symbol in names:
        run("market_data_job", symbol, window(END))
    print(f"setup: {symbols} partitions x 30 days of 1m stored in {time.perf_counter() - t0:.1f} s")
    run("training_job", names[0], {"ops": {"trained_model": {"config": {"model": "linear", "seq_len": 32}}}})
    registry = Registry(default_tracking_uri(), ChampionCache(data_dir() / "champions"))
    first = Partition(names[0], "1m")
    champion = registry.promote(first, registry.alias(first, "challenger"))
    for symbol in names[1:]:
        registry.cache.write(Partition(symbol, "1m"), champion.model_name, champion.version, champion.bundle_dir)

    def signals_run() -> float:  # one run over the range of symbols, as the sensor asks for it
        t0 = time.perf_counter()
        tags = range_tags(Partition(names[0], "1m").key, Partition(names[-1], "1m").key)
        result = defs.resolve_job_def("signals_job").execute_in_process(
            instance=instance, run_config=QUIET_LOGGERS, tags=tags, raise_on_error=True
        )
        assert result.success
        return time.perf_counter() - t0

    signals_run()  # the first signal of each partition: the newest bar

    later = END + pd.Timedelta(minutes=NEW_BARS)
    data_s = 0.0
    t0 = time.perf_counter()
    for symbol in names:
        data_s += run("market_data_job", symbol, window(later))
    signals_s = signals_run()
    total = time.perf_counter() - t0
    print(
        f"signals: {symbols} symbols x {NEW_BARS} new 1m bars, new candles to all signals written: {total:.1f} s "
        f"(data runs {data_s:.1f} s, one signals run {signals_s:.1f} s; goal <= 10 s)"
    )
    t0 = time.perf_counter()
    for symbol in names:  # the floor: the same runs when the source has no new candle
        run("market_data_job", symbol, window(later))
    print(f"floor: the same {symbols} data runs with no new candle: {time.perf_counter() - t0:.1f} s")


def shape_of_data_graph(range_runs: bool = False):
    """``market_data_job``'s shape with no work in it: the same assets, their dependencies and partitions, and
    their checks (those evaluated in the asset's own step, and those in steps of their own that load the asset,
    blocking as they are), every step returning a constant that an in-memory IO manager keeps. ``range_runs``:
    the assets take a single-run backfill policy, so that one run may cover a range of partitions."""
    from dagster import (
        AssetCheckResult,
        AssetCheckSpec,
        AssetIn,
        BackfillPolicy,
        Definitions,
        Output,
        asset,
        asset_check,
        define_asset_job,
        mem_io_manager,
    )

    from trading_assets.defs import defs
    from trading_assets.defs.jobs import DATA_ASSETS
    from trading_assets.defs.partitions import market_partitions

    graph = defs.resolve_asset_graph()

    def asset_body(specs: list):
        def body(context, **inputs):
            yield Output(0)
            for spec in specs:
                yield AssetCheckResult(check_name=spec.name, passed=True)

        return body

    def check_body(context, frame):
        return AssetCheckResult(passed=True)

    assets, checks, policy = [], [], BackfillPolicy.single_run() if range_runs else None
    for key in DATA_ASSETS.resolve(graph):
        node, own = graph.get(key), defs.resolve_assets_def(key).check_keys
        blocking = {c: graph.get_check_spec(c).blocking for c in node.check_keys}
        specs = [AssetCheckSpec(c.name, asset=key, partitions_def=market_partitions, blocking=blocking[c]) for c in own]
        ins = {parent.path[-1]: AssetIn(parent) for parent in node.parent_keys}
        assets.append(
            asset(key=key, partitions_def=market_partitions, ins=ins, check_specs=specs, backfill_policy=policy)(
                asset_body(specs)
            )
        )
        for c in sorted(node.check_keys - own, key=str):
            checks.append(
                asset_check(asset=key, name=c.name, partitions_def=market_partitions, blocking=blocking[c])(check_body)
            )
    job = define_asset_job("shape_of_market_data_job", DATA_ASSETS)
    return Definitions(assets=assets, asset_checks=checks, jobs=[job], resources={"io_manager": mem_io_manager})


def bench_shape(symbols: int) -> None:
    from dagster import DagsterInstance

    from trading_assets.defs.live import range_tags
    from trading_assets.defs.partitions import add_symbols, partition_key
    from trading_assets.defs.runs import QUIET_LOGGERS
    from trading_assets.partition import Partition

    job = shape_of_data_graph().resolve_job_def("shape_of_market_data_job")
    names = [f"KRW-B{i:02d}" for i in range(symbols)]
    instance = DagsterInstance.ephemeral()
    add_symbols(instance, names)
    times = []
    for _ in range(2):  # a first materialization of each partition, then the timed round (as in bench_signals)
        t0 = time.perf_counter()
        for symbol in names:
            result = job.execute_in_process(
                partition_key=partition_key(symbol, "1m"), instance=instance, run_config=QUIET_LOGGERS
            )
            assert result.success
        times.append(time.perf_counter() - t0)
    steps = sum(e.event_type_value == "STEP_SUCCESS" for e in result.all_events)
    print(
        f"floor: Dagster alone, the data graph's shape with no work ({steps} steps a run), the same {symbols} runs: "
        f"{times[1]:.1f} s"
    )
    # What one run over the range would cost Dagster (the design the data assets cannot take in Dagster 1.13:
    # a range step records one data version for every partition, its check results name no partition).
    job = shape_of_data_graph(range_runs=True).resolve_job_def("shape_of_market_data_job")
    tags = range_tags(Partition(names[0], "1m").key, Partition(names[-1], "1m").key)
    for _ in range(2):
        t0 = time.perf_counter()
        result = job.execute_in_process(instance=instance, run_config=QUIET_LOGGERS, tags=tags)
        assert result.success
    print(f"  the same shape as one run over the range of {symbols} symbols: {time.perf_counter() - t0:.1f} s")


def bench_refresh() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TRADING_DATA_DIR": str(Path(tmp) / "data")}
        for var in ("TRADING_DB_URL", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"):
            env.pop(var, None)
        times = []
        later = END + pd.Timedelta(minutes=NEW_BARS)
        for end in (END, later, later):  # first run, refresh, and the same command with no new candle (the floor)
            command = [sys.executable, "-m", "trading_assets.app.cli", "materialize", "--assets", "data"]
            command += ["--symbols", "KRW-BTC", "--timeframes", "1m", "--days", "365", "--end", end.isoformat()]
            t0 = time.perf_counter()
            subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
    print(
        f"refresh: 365 days of 1m, first run {times[0]:.1f} s, {NEW_BARS} minutes later {times[1]:.1f} s "
        f"({times[1] / times[0]:.0%} of the first; goal <= 40 %); again with no new candle {times[2]:.1f} s "
        f"({times[2] / times[0]:.0%}: the floor of a whole command)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--skip-refresh", action="store_true")
    parser.add_argument("--shape-only", action="store_true", help="only Dagster's floor (the graph with no work)")
    args = parser.parse_args()
    if args.shape_only:
        bench_shape(args.symbols)
        return
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRADING_DATA_DIR"] = str(Path(tmp) / "data")
        for var in ("TRADING_DB_URL", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"):
            os.environ.pop(var, None)
        bench_signals(args.symbols)
    bench_shape(args.symbols)
    if not args.skip_refresh:
        bench_refresh()


if __name__ == "__main__":
    main()
