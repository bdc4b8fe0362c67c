"""Markets as they are: trading calendars, short gaps filled, long gaps kept as breaks, bad cells made missing bars,
short history reported, files exported by pandas, through real materializations."""

import numpy as np
import pandas as pd
import pytest
from dagster import materialize

from trading_assets.calendars import get_calendar
from trading_assets.candles import drop_invalid_bars, fill_candle_grid
from trading_assets.defs.assets import features, indicators, raw_candles
from trading_assets.defs.causality_checks import indicators_warmup_sufficient
from trading_assets.defs.checks import data_checks
from trading_assets.defs.partitions import add_symbols, partition_key
from trading_assets.defs.resources import (
    CandleSourceResource,
    Locations,
)
from trading_assets.features import FeatureConfig, lead_in_bars
from trading_assets.provenance import Provenance
from trading_assets.quality import continuity, percent
from trading_assets.training.sequences import build_sequences
from trading_assets_tests.conftest import data_resources

FX_END = pd.Timestamp("2024-07-01", tz="UTC")  # a Monday
DAY_END = pd.Timestamp("2024-07-10", tz="UTC")
OUTAGE = slice(pd.Timestamp("2024-06-19 03:00", tz="UTC"), pd.Timestamp("2024-06-19 12:00", tz="UTC"))  # 10 bars
SHORT_GAP = [pd.Timestamp("2024-06-25 08:00", tz="UTC"), pd.Timestamp("2024-06-25 09:00", tz="UTC")]
BAD_CELL = pd.Timestamp("2024-06-26 14:00", tz="UTC")


def session_candles(calendar: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp, seed: int = 1):
    """A random walk on the calendar's session bars only (what an FX or equity export holds)."""
    index = get_calendar(calendar).grid(timeframe, start, end)
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, len(index))))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0, 0.002, len(index))) * close
    volume = rng.uniform(1, 10, len(index))
    high, low = np.maximum(open_, close) + wick, np.minimum(open_, close) - wick
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume, "value": volume * close},
        index=index,
    )
    return frame


def fx_hourly() -> pd.DataFrame:
    frame = session_candles("FX", "60m", FX_END - pd.Timedelta(days=90), FX_END)
    frame = frame.drop(frame.loc[OUTAGE].index).drop(SHORT_GAP)
    frame["volume"] = frame["volume"].astype(object)
    frame.loc[BAD_CELL, "volume"] = np.nan  # one bad cell: a NaN volume, as in the exchange sample
    return frame


def run_assets(instance, symbol, timeframe, files_dir, source_config, window, checks=(), max_fill_bars=5):
    add_symbols(instance, [symbol])
    return materialize(
        [raw_candles, indicators, features, *checks],
        partition_key=partition_key(symbol, timeframe),
        instance=instance,
        resources=data_resources(
            candle_source=CandleSourceResource(locations=Locations(files_dir=files_dir), **source_config)
        ),
        run_config={"ops": {"raw_candles": {"config": {**window, "max_fill_bars": max_fill_bars}}}},
        raise_on_error=False,
    )


def outputs(result, data_dir, symbol, timeframe):
    out = {}
    for asset in ("raw_candles", "indicators", "features"):
        path = data_dir / "assets" / asset / symbol / f"{timeframe}.parquet"
        if path.exists():
            out[asset] = pd.read_parquet(path)
    meta = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    return out, meta


def test_calendars_grid_sessions_and_annualisation():
    week = (pd.Timestamp("2024-07-01", tz="UTC"), pd.Timestamp("2024-07-08", tz="UTC"))
    assert len(get_calendar("24/7").grid("60m", *week)) == 168
    fx = get_calendar("FX").grid("60m", *week)
    assert len(fx) == 120 and fx[0] == pd.Timestamp("2024-07-01 00:00", tz="UTC")
    assert pd.Timestamp("2024-07-07 21:00", tz="UTC") in fx and pd.Timestamp("2024-07-06 12:00", tz="UTC") not in fx
    nyse = get_calendar("XNYS").grid("1d", *week)
    assert [d.day for d in nyse] == [1, 2, 3, 5]  # 4 July is a holiday, the weekend is closed
    assert get_calendar("XNYS").bars_per_year("1d") == pytest.approx(252, abs=3)
    assert get_calendar("24/7").bars_per_year("1d") == 365
    fx_end = pd.Timestamp("2024-07-08", tz="UTC")
    assert get_calendar("FX").start_before("60m", fx_end, 120) == week[0]  # 117 weekday bars + 3 on Sunday
    sunday_open = pd.Timestamp("2024-06-30 21:00", tz="UTC")  # 17:00 New York (EDT)
    assert get_calendar("FX").start_before("60m", fx_end, 123) == sunday_open
    with pytest.raises(ValueError, match="unknown trading calendar 'XXXX'"):
        get_calendar("XXXX")


def test_fill_counts_short_gaps_and_keeps_long_ones_as_breaks():
    frame = fx_hourly()
    frame.loc[BAD_CELL, "volume"] = 1.0
    frame = frame.astype("float64")
    start, end = FX_END - pd.Timedelta(days=30), FX_END
    filled = fill_candle_grid(frame, "60m", start, end, get_calendar("FX"), max_fill_bars=5)
    sessions = get_calendar("FX").grid("60m", start, end)
    assert filled.filled == 2 and list(filled.frame.index[filled.filled_mask]) == SHORT_GAP
    assert [(b.after, b.resume, b.missing_bars) for b in filled.breaks] == [
        (OUTAGE.start - pd.Timedelta(hours=1), OUTAGE.stop + pd.Timedelta(hours=1), 10)
    ]
    assert len(filled.frame) == len(sessions) - 10  # no weekend bar expected, filled or counted
    assert not filled.frame.index.dayofweek.isin([5]).any()
    everything = fill_candle_grid(frame, "60m", start, end, get_calendar("FX"), max_fill_bars=None)
    assert everything.filled == 12 and not everything.breaks
    c = continuity(filled.frame, "60m", start, end, filled.filled, get_calendar("FX"))
    assert c.gaps == 1 and c.missing_bars == 10 and c.expected_rows == len(sessions)
    assert c.coverage == pytest.approx(1 - 10 / len(sessions))
    assert continuity(filled.frame, "60m", start, end, calendar=get_calendar("24/7")).gaps > 4  # every weekend


def test_invalid_bars_are_dropped_and_named():
    frame = session_candles(
        "24/7", "1m", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-01 01:00", tz="UTC")
    )
    frame = frame.astype(object)
    frame.iloc[3, 4] = "n/a"
    frame.iloc[7, 1] = frame.iloc[7, 2] * 0.5  # high < low
    frame.iloc[9, 4] = -1.0
    clean, invalid = drop_invalid_bars(frame, "KRW-BTC", "1m")
    assert len(clean) == 57 and len(invalid) == 3
    assert invalid[0].endswith("volume = 'n/a'") and "high < low" in invalid[1] and "negative volume" in invalid[2]


def test_percent_has_enough_digits():
    assert (
        percent(0.99986) == "99.99%"
        and percent(0.9999996) == "99.99996%"
        and percent(1.0) == "100.0%"
        and percent(0.5) == "50.0%"
    )
    assert percent(0.0000004) == "0.00004%"


def test_fx_hourly_file_sessions_outage_and_one_bad_cell(instance, data_dir, tmp_path):
    files = tmp_path / "fx"
    files.mkdir()
    fx_hourly().to_csv(files / "USD-EUR_60m.csv")  # pandas' own export: unnamed DatetimeIndex column
    source = {"kind": "files", "calendar": "FX"}
    result = run_assets(
        instance, "USD-EUR", "60m", str(files), source, {"days": 21, "end": FX_END.isoformat()}, data_checks
    )
    assert result.success
    out, meta = outputs(result, data_dir, "USD-EUR", "60m")
    raw, ind, feats = out["raw_candles"], out["indicators"], out["features"]
    span_start = FX_END - pd.Timedelta(days=21)
    sessions = get_calendar("FX").grid("60m", span_start, FX_END)
    m = meta["raw_candles"]
    assert m["calendar"] == "FX" and m["span_session_bars"] == len(sessions) == 15 * 24
    assert m["breaks"] == 1 and m["break_examples"] == [
        "2024-06-19T02:00:00+00:00 -> 2024-06-19T13:00:00+00:00 (10 bars)"
    ]
    assert m["missing_bars_filled_in_span"] == 3  # the 2-bar gap and the bad bar; no weekend bar
    assert m["invalid_bars"] == 1 and m["invalid_bar_examples"] == [f"{BAD_CELL.isoformat()}: volume = nan"]
    assert raw.loc[BAD_CELL, "volume"] == 0.0 and raw.loc[BAD_CELL, "close"] == raw["close"].shift().loc[BAD_CELL]
    assert not raw.index.dayofweek.isin([5]).any()
    assert m["warmup_bars"] == (raw.index < span_start).sum()  # the warm-up counted in session bars

    # the bad cell costs no row: features cover every bar of the span that is present
    assert len(ind) == len(sessions) - 10 + lead_in_bars_default() and not ind.isna().any().any()
    # the last two bars have no label yet: their trade (bought at the next open) has not ended
    assert feats.index[0] == span_start and len(feats) == len(sessions) - 10 - 2
    provenance = Provenance.of(feats)
    assert provenance.calendar == "FX" and provenance.breaks == ("2024-06-19T13:00:00+00:00",)
    assert provenance.filled_bars_in_span == 3 and provenance.feature_set == "default"

    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    assert not checks[("raw_candles", "continuity")].passed
    assert checks[("raw_candles", "continuity")].severity.value == "WARN"
    assert "1 breaks (10 missing session bars" in checks[("raw_candles", "continuity")].description
    assert all(e.passed for k, e in checks.items() if k[1] != "continuity")

    # no sequence window or horizon label spans the break
    seq_len, horizon = 24, 3
    data = build_sequences(feats, seq_len, horizon, gap=seq_len + 1 + horizon - 1)  # entry lag 1: the next open
    resume = int(feats.index.get_loc(pd.Timestamp(provenance.breaks[0])))
    ends = np.concatenate([data.train_ends.numpy(), data.validation_ends.numpy(), data.test_ends.numpy()])
    # the label reads prices up to row end + 1 + horizon: none of them past the break
    assert len(ends) and not ((ends - seq_len + 1 < resume) & (ends + 1 + horizon >= resume)).any()
    unbroken = build_sequences(Provenance.of(feats).but(breaks=()).attach(feats.copy()), seq_len, horizon)
    assert len(unbroken.train_ends) + len(unbroken.validation_ends) + len(unbroken.test_ends) > len(ends)


def lead_in_bars_default() -> int:
    from trading_assets.features import FeatureConfig

    return lead_in_bars(FeatureConfig())


def test_equity_daily_parquet_holidays_short_history_and_warmup_check(instance, data_dir, tmp_path):
    files = tmp_path / "equity"
    files.mkdir()
    daily = session_candles("XNYS", "1d", DAY_END - pd.Timedelta(days=500), DAY_END, seed=2)
    export = daily.rename(columns=str.capitalize).rename(columns={"Value": "Turnover"})
    export["Adj Close"] = export["Close"] * 0.5
    export.index = export.index.tz_localize(None).rename("Date")  # as yfinance/pandas write it: naive dates
    export.to_parquet(files / "USD-SPY_1d.parquet")
    source = {"kind": "files", "calendar": "XNYS"}
    window = {"days": 100, "end": DAY_END.isoformat()}
    result = run_assets(
        instance, "USD-SPY", "1d", str(files), source, window, [*data_checks, indicators_warmup_sufficient]
    )
    out, meta = outputs(result, data_dir, "USD-SPY", "1d")
    raw = out["raw_candles"]
    m = meta["raw_candles"]
    assert m["missing_bars_filled"] == 0 and m["breaks"] == 0  # weekends and holidays are not gaps
    assert pd.Timestamp("2024-07-04", tz="UTC") not in raw.index
    assert m["span_session_bars"] == len(get_calendar("XNYS").grid("1d", DAY_END - pd.Timedelta(days=100), DAY_END))
    np.testing.assert_array_equal(raw["close"].to_numpy(), daily.loc[raw.index, "close"].to_numpy())  # Adj ignored
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    warm = checks[("indicators", "warmup_sufficient")]
    assert not warm.passed and warm.severity.value == "WARN"
    available = int(raw.index.searchsorted(out["indicators"].index[0]))
    assert f"history is short: {available} bars available" in warm.description and "401 needed" in warm.description
    wm = {k: v.value for k, v in warm.metadata.items()}
    assert wm["bars_missing"] == 401 - available and "adx_14" in wm["affected_columns"]
    cont = checks[("raw_candles", "continuity")]
    assert cont.passed  # no WARN for a market that is closed on weekends and holidays
    nan = checks[("indicators", "nan_rate")]  # blocking: the features wait for enough history
    assert not nan.passed and "features" not in out
    history = Provenance.of(raw).history_bars
    warmup = Provenance.of(raw).warmup_bars  # the indicators' warm-up plus the features' lead-in
    assert warmup == 401 + lead_in_bars(FeatureConfig())
    assert f"because history is missing: {history} of {warmup} warm-up bars were available" in nan.description
    assert Provenance.of(raw).history_bars == (raw.index < DAY_END - pd.Timedelta(days=100)).sum()


def test_adjusted_close_used_on_request_and_naive_times_in_a_timezone(tmp_path):
    from trading_assets.sources import FileSource

    daily = session_candles("XNYS", "60m", pd.Timestamp("2024-07-01", tz="UTC"), pd.Timestamp("2024-07-03", tz="UTC"))
    export = daily.rename(columns=str.capitalize)
    export["Adj Close"] = export["Close"] * 0.5
    export.index = export.index.tz_convert("America/New_York").tz_localize(None).rename("Datetime")
    export.to_csv(tmp_path / "USD-SPY_60m.csv")
    source = FileSource(tmp_path, timezone="America/New_York", adjusted="use")
    out = source.fetch("USD-SPY", "60m", daily.index[0], daily.index[-1] + pd.Timedelta(hours=1))
    assert out.index.equals(daily.index.rename("open_time"))
    np.testing.assert_allclose(out["close"], daily["close"] * 0.5, rtol=1e-15)
    np.testing.assert_allclose(out["high"], daily["high"] * 0.5, rtol=1e-15)


def test_a_span_in_bars_counts_session_bars():
    from trading_assets.window import WindowRequest, requested_span

    request = WindowRequest(bars=48, end="2026-10-05T00:00:00Z")  # a Monday, 00:00 UTC
    assert requested_span(request, "60m", get_calendar())[0] == pd.Timestamp("2026-10-03", tz="UTC")
    # FX: Sunday 21:00 UTC to Monday 00:00 is 3 bars, the other 45 end at Friday's 21:00 close
    assert requested_span(request, "60m", get_calendar("FX"))[0] == pd.Timestamp("2026-10-01", tz="UTC")
