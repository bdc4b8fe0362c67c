"""Candle store I/O and the whole data graph of one partition, one year of 1-minute candles.

* store: upsert and read rows/s on SQLite (WAL) and on PostgreSQL (a throw-away cluster started
  here, like the tests do). Targets: read >= 2 M rows/s, upsert >= 300 k rows/s on both.
  On PostgreSQL it also times the server's own floor for the read: ``psql``'s client-side copy of the same
  query, in the same binary format, to /dev/null.
* graph: ``trading-assets materialize --assets data --days 365`` for one partition, run in a fresh
  data folder: first (collects the year), second (the store has it, the candles are the same:
  indicators and features are fresh and not run again), then ``--force`` (everything computed and
  checked again). Prints the wall time of the whole command, the sum of its step durations, and the
  peak RSS. Targets: <= 10 s first, <= 5 s second, peak RSS < 2 GiB.

    python benchmarks/bench_store.py [--skip-postgres] [--skip-graph]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from trading_assets.partition import Partition
from trading_assets.sources import SyntheticSource
from trading_assets.store import CandleStore

ROOT = Path(__file__).resolve().parents[1]
END = pd.Timestamp("2026-01-01", tz="UTC")
BTC_1M = Partition("KRW-BTC", "1m")
START = END - pd.Timedelta(days=365)


def bench_store(url: str, label: str, candles: pd.DataFrame) -> None:
    with CandleStore(url) as store:
        t0 = time.perf_counter()
        store.upsert(BTC_1M, candles, covered=(START, END, "bench"))
        t_insert = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.upsert(BTC_1M, candles, covered=(START, END, "bench"))  # every row conflicts, none changed
        t_update = time.perf_counter() - t0
        reads = []
        for _ in range(3):
            t0 = time.perf_counter()
            loaded = store.load(BTC_1M, START, END)
            reads.append(time.perf_counter() - t0)
    n = len(candles)
    assert len(loaded) == n
    print(f"{label:<10} upsert (new rows)     : {t_insert:.3f} s  {n / t_insert / 1e3:,.0f} k rows/s")
    print(f"{label:<10} upsert (same rows)    : {t_update:.3f} s  {n / t_update / 1e3:,.0f} k rows/s")
    print(f"{label:<10} read (best of 3)      : {min(reads):.3f} s  {n / min(reads) / 1e6:,.2f} M rows/s")


def bench_psql_floor(server, rows: int) -> None:
    """The server's COPY of the store's read query, with psql (C, no Arrow) as the client."""
    query = (
        "SELECT open_time, open, high, low, close, volume, value FROM candles WHERE symbol = 'KRW-BTC' "
        f"AND timeframe = '1m' AND open_time >= {int(START.value // 10**6)} AND open_time < {int(END.value // 10**6)} "
        "ORDER BY open_time"
    )
    psql = [f"{server.bin}/psql", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-d", "bench"]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(
            [*psql, "-c", f"\\copy ({query}) to '/dev/null' with (format binary)"], check=True, capture_output=True
        )
        times.append(time.perf_counter() - t0)
    print(f"{'PostgreSQL':<10} psql \\copy floor      : {min(times):.3f} s  {rows / min(times) / 1e6:,.2f} M rows/s")


def bench_graph() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-graph-") as tmp:
        env = {**os.environ, "TRADING_DATA_DIR": f"{tmp}/data", "PYTHONWARNINGS": "ignore"}
        for var in ("TRADING_DB_URL", "DAGSTER_HOME"):
            env.pop(var, None)
        cmd = [
            *("/usr/bin/time", "-f", "maxrss_kib=%M"),
            *(sys.executable, "-m", "trading_assets.app.cli", "materialize", "--assets", "data", "--days", "365"),
            *("--symbols", "KRW-BTC", "--timeframes", "1m", "--end", END.isoformat()),
        ]
        for attempt, extra in (("first", []), ("second", []), ("--force", ["--force"])):
            t0 = time.perf_counter()
            out = subprocess.run([*cmd, *extra], env=env, cwd=tmp, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t0
            output = out.stdout + out.stderr
            # the CLI keeps Dagster's events out of the terminal: they are in the log file it names
            events = Path(re.search(r"Dagster event log: (\S+)", output).group(1)).read_text()
            steps = sum(
                float(v) / (1000 if unit == "ms" else 1)
                for v, unit in re.findall(r"Finished execution of step \S+ in ([\d.]+)(ms|s)\.", events)
            )
            rss = int(re.search(r"maxrss_kib=(\d+)", output).group(1)) / 1024
            print(
                f"data graph, {attempt + ' run':<11}: command {wall:.1f} s (steps {steps:.1f} s, the rest is "
                f"start-up and Dagster), peak RSS {rss:,.0f} MiB"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-graph", action="store_true")
    args = parser.parse_args()
    candles = SyntheticSource().fetch("KRW-BTC", "1m", START, END)
    print(f"rows: {len(candles):,} (one year of 1m, synthetic, ~1% missing bars)")
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        bench_store(f"sqlite:///{tmp}/candles.sqlite", "SQLite", candles)
    if not args.skip_postgres:
        sys.path.insert(0, str(ROOT))
        from trading_assets_tests.servers import PostgresServer

        server = PostgresServer()
        try:
            bench_store(server.create_database("bench"), "PostgreSQL", candles)
            bench_psql_floor(server, len(candles))
        finally:
            server.stop()
    if not args.skip_graph:
        bench_graph()


if __name__ == "__main__":
    main()
