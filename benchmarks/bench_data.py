"""Indicators and features on one year of 1-minute candles (525,600 rows), on one core.

Prints rows/s for ``compute_indicators`` and ``build_features``, the time of the bare TA-Lib calls
for the same 23 indicators beside them, and the process's peak memory. Target: indicators +
features in at most 1.0 s, peak memory under 1 GiB.

    python benchmarks/bench_data.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import talib  # noqa: E402

from trading_assets.candles import fill_candle_grid  # noqa: E402
from trading_assets.features import build_features  # noqa: E402
from trading_assets.indicators import compute_indicators, warmup_bars  # noqa: E402
from trading_assets.partition import Partition
from trading_assets.sources import SyntheticSource  # noqa: E402

ROWS = 525_600


def bare_talib(c: pd.DataFrame) -> None:
    o, h, lo, cl, v = (c[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    talib.SMA(cl, 5), talib.SMA(cl, 20), talib.EMA(cl, 12), talib.EMA(cl, 26), talib.MACD(cl, 12, 26, 9)
    talib.RSI(cl, 14), talib.BBANDS(cl, 20), talib.ATR(h, lo, cl, 14), talib.STOCH(h, lo, cl)
    talib.MFI(h, lo, cl, v, 14), talib.OBV(cl, v), talib.SAR(h, lo), talib.CCI(h, lo, cl, 20)
    talib.ADX(h, lo, cl, 14), talib.WILLR(h, lo, cl, 14), talib.RSI(v, 14), talib.ROC(cl, 10), talib.SMA(v, 20)


def best_of(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warm = warmup_bars()
    end = pd.Timestamp("2026-01-01", tz="UTC")
    span_start = end - pd.Timedelta(minutes=ROWS)
    start = span_start - pd.Timedelta(minutes=warm)
    raw = SyntheticSource().fetch("KRW-BTC", "1m", start, end)
    candles = fill_candle_grid(raw, "1m", start, end).frame
    assert len(candles) == ROWS + warm

    t_bare, _ = best_of(lambda: bare_talib(candles), args.repeat)
    t_ind, result = best_of(lambda: compute_indicators(candles, span_start), args.repeat)
    indicators = result.frame
    t_feat, feats = best_of(lambda: build_features(indicators, Partition("KRW-BTC", "1m")), args.repeat)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows (1m, one year)        : {len(indicators):,} (+{warm} warm-up)")
    print(f"bare TA-Lib, 23 indicators : {t_bare:.3f} s  ({len(candles) / t_bare:,.0f} rows/s)")
    print(f"indicators                 : {t_ind:.3f} s  ({len(candles) / t_ind:,.0f} rows/s)")
    print(f"features                   : {t_feat:.3f} s  ({len(indicators) / t_feat:,.0f} rows/s)")
    print(f"indicators + features      : {t_ind + t_feat:.3f} s  (target <= 1.0 s)")
    print(f"peak memory (max RSS)      : {peak_mib:,.0f} MiB (target < 1024 MiB)")
    assert np.isfinite(feats.frame.to_numpy()).all()


if __name__ == "__main__":
    main()
