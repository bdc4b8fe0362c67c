"""Many symbols: a real asset backfill run by dagster-daemon, all state in PostgreSQL.

Starts a throw-away PostgreSQL cluster (Dagster's run/event/schedule storage and the candle store,
two databases), the project's ``dagster.yaml`` (queued coordinator, 4 runs at once) and
``dagster-daemon``; launches ``trading-assets backfill`` of symbols x timeframes x days (synthetic
source, raw_candles -> indicators -> features with all their checks) and waits for it. Prints
partitions per minute, and per run the wall time next to the compute time (the sum of its step
durations) and the difference, Dagster's overhead (run worker start, step processes, event log).

    python benchmarks/bench_backfill.py [--symbols 20] [--timeframes 1m,5m,15m,30m,60m,240m,1d] [--days 30]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from dagster import DagsterEventType, DagsterInstance, RunsFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from trading_assets_tests.servers import DagsterProcess, PostgresServer  # noqa: E402

BIN = Path(sys.executable).parent
END = pd.Timestamp("2026-01-01", tz="UTC")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=20, help="number of markets (KRW-S00, KRW-S01, ...)")
    parser.add_argument("--timeframes", default="1m,5m,15m,30m,60m,240m,1d")
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=7200.0)
    args = parser.parse_args()
    symbols = [f"KRW-S{i:02d}" for i in range(args.symbols)]
    timeframes = args.timeframes.split(",")
    server = PostgresServer()
    home = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    daemon = None
    try:
        server.create_database("dagster")
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "TRADING_DATA_DIR": str(home / "data"),
            "TRADING_DB_URL": server.create_database("candles"),
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(server.port),
            "DAGSTER_PG_USER": "postgres",
            "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
            "DAGSTER_PG_DB": "dagster",
            "PYTHONWARNINGS": "ignore",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        daemon = DagsterProcess(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, str(ROOT), str(home / "daemon.log")
        ).start()
        t0 = time.perf_counter()
        out = subprocess.run(
            [
                *(str(BIN / "trading-assets"), "backfill", "--symbols", ",".join(symbols)),
                *("--timeframes", ",".join(timeframes), "--select", "raw_candles,indicators,features"),
                *("--days", str(args.days), "--end", END.isoformat(), "--wait", "--timeout", str(args.timeout)),
            ],
            env=env,
            cwd=str(ROOT),
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if "backfill " not in out.stdout:
            sys.exit(out.stdout[-3000:] + out.stderr[-3000:] + daemon.log_tail())
        os.environ.update({k: v for k, v in env.items() if k.startswith("DAGSTER_PG_")})
        instance = DagsterInstance.from_config(str(home))
        backfill_id = re.search(r"^backfill (\w+):", out.stdout, re.M).group(1)
        records = instance.get_run_records(RunsFilter(tags={"dagster/backfill": backfill_id}))
        runs, compute = [], []
        for record in records:
            runs.append(record.end_time - record.start_time)
            steps = instance.get_records_for_run(record.dagster_run.run_id, of_type=DagsterEventType.STEP_SUCCESS)
            compute.append(sum(r.event_log_entry.dagster_event.event_specific_data.duration_ms for r in steps.records))
        compute_s = [c / 1000 for c in compute]
        n = len(symbols) * len(timeframes)
        failed = [r.dagster_run.tags.get("dagster/partition") for r in records if not r.dagster_run.is_success]
        print(f"backfill: {len(symbols)} symbols x {len(timeframes)} timeframes x {args.days:g} days = {n} partitions")
        print(f"runs: {len(records)}, failed (retries included): {len(failed)} {sorted(set(failed))}")
        print(f"wall time (launch to last run done): {wall:.0f} s -> {n / wall * 60:.1f} partitions/minute")
        print(
            f"per run, mean (median): wall {statistics.mean(runs):.1f} s ({statistics.median(runs):.1f}), "
            f"compute {statistics.mean(compute_s):.1f} s ({statistics.median(compute_s):.1f}), "
            f"Dagster overhead {statistics.mean(runs) - statistics.mean(compute_s):.1f} s"
        )
        instance.dispose()
    finally:
        if daemon is not None:
            daemon.stop()
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
