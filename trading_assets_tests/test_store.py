import pandas as pd
import pytest
import sqlalchemy as sa

from trading_assets.errors import CandleDataError
from trading_assets.sources import SyntheticSource
from trading_assets.store import CandleStore, Coverage, candles_table
from trading_assets_tests.conftest import END


class CountingSource:
    """Records what the store asks for, serves synthetic candles."""

    name = "counting"

    def __init__(self):
        self.inner = SyntheticSource(seed=4)
        self.calls = []

    def fetch(self, symbol, timeframe, start, end):
        self.calls.append((start, end))
        return self.inner.fetch(symbol, timeframe, start, end)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/candles.sqlite"
    else:
        url = request.getfixturevalue("postgres").create_database(
            f"store_{tmp_path.name[-12:].lower().replace('-', '_')}"
        )
    with CandleStore(url) as s:
        yield s


def test_upsert_is_idempotent_and_updates(store, candles_1m):
    assert store.upsert("KRW-BTC", "1m", candles_1m) == len(candles_1m)
    store.upsert("KRW-BTC", "1m", candles_1m)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(candles_table)).scalar() == len(candles_1m)
    loaded = store.load("KRW-BTC", "1m", candles_1m.index[0], END)
    pd.testing.assert_frame_equal(loaded, candles_1m, check_freq=False)
    changed = candles_1m.iloc[:3].copy()
    changed["volume"] += 1
    changed["value"] += 1
    store.upsert("KRW-BTC", "1m", changed)
    again = store.load("KRW-BTC", "1m", candles_1m.index[0], candles_1m.index[3])
    pd.testing.assert_frame_equal(again, changed, check_freq=False)
    assert store.load("KRW-ETH", "1m", candles_1m.index[0], END).empty


def test_incremental_collection_fetches_only_what_is_missing(store):
    source = CountingSource()
    day = pd.Timedelta(days=1)
    first = store.collect(source, "KRW-ETH", "5m", END - 2 * day, END - day)
    assert first.fetched_spans == [(END - 2 * day, END - day)] and first.rows_fetched > 250
    second = store.collect(source, "KRW-ETH", "5m", END - 2 * day, END - day)
    assert second.fetched_spans == [] and len(source.calls) == 1
    third = store.collect(source, "KRW-ETH", "5m", END - 3 * day, END)
    assert third.fetched_spans == [(END - 3 * day, END - 2 * day), (END - day, END)]
    assert store.coverage("KRW-ETH", "5m") == Coverage(END - 3 * day, END, "counting")
    expected = source.inner.fetch("KRW-ETH", "5m", END - 3 * day, END)
    pd.testing.assert_frame_equal(store.load("KRW-ETH", "5m", END - 3 * day, END), expected, check_freq=False)


def test_failed_write_leaves_nothing_behind(store, candles_1m):
    bad = candles_1m.iloc[:10].copy()
    bad.iloc[5, bad.columns.get_loc("low")] = bad["high"].iloc[5] * 2
    with pytest.raises(CandleDataError, match="high < low"):
        store.upsert("KRW-BTC", "1m", bad, covered=(bad.index[0], bad.index[-1], "test"))
    assert store.load("KRW-BTC", "1m", bad.index[0], END).empty
    assert store.coverage("KRW-BTC", "1m") is None


def test_candles_of_two_sources_never_mix(store):
    day = pd.Timedelta(days=1)
    store.collect(SyntheticSource(seed=1), "KRW-BTC", "60m", END - 2 * day, END)
    with pytest.raises(
        CandleDataError,
        match=r"KRW-BTC 60m: the candle store .* holds candles collected from "
        r"'synthetic\(seed=1\)', not from 'synthetic\(seed=2\)'",
    ):
        store.collect(SyntheticSource(seed=2), "KRW-BTC", "60m", END - 3 * day, END)
