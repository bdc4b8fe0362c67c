"""Exchange faults through real materializations of raw_candles against a local Upbit-format server:
broken answers are retried, pages are committed as they arrive, and only transient errors re-run a step."""

import pandas as pd
import pytest
from dagster import DagsterEventType, materialize

from trading_assets.defs.assets import raw_candles
from trading_assets.defs.partitions import partition_key
from trading_assets.defs.resources import (
    CandleSourceResource,
    CandleStoreResource,
    Locations,
)
from trading_assets.errors import CandleDataError, SourceUnavailableError
from trading_assets.partition import Partition
from trading_assets.sources import SyntheticSource, UpbitSource
from trading_assets.store import CandleStore
from trading_assets_tests.conftest import END, data_resources
from trading_assets_tests.servers import FakeUpbit

DAYS = 1.0


@pytest.fixture
def exchange():
    src = SyntheticSource(seed=5)
    server = FakeUpbit({("KRW-BTC", "5m"): src.fetch("KRW-BTC", "5m", END - pd.Timedelta(days=30), END)}, 1000)
    yield server
    server.stop()


def _materialize(instance, exchange, symbol="KRW-BTC", refresh=False, window=None, **source):
    source = {"upbit_max_retries": 2, "step_retries": 2, "step_retry_seconds": 0.0, **source}
    return materialize(
        [raw_candles],
        partition_key=partition_key(symbol, "5m"),
        instance=instance,
        resources=data_resources(
            candle_source=CandleSourceResource(
                locations=Locations(upbit_base_url=exchange.url), kind="upbit", upbit_requests_per_second=1000, **source
            ),
            candle_store=CandleStoreResource(locations=Locations(), refresh=refresh),
        ),
        run_config={"ops": {"raw_candles": {"config": {"days": DAYS, "end": END.isoformat(), **(window or {})}}}},
        raise_on_error=False,
    )


def _events(result, kind):
    return [e for e in result.all_events if e.event_type == kind]


def _error(result):
    return result.get_step_failure_events()[0].event_specific_data.error.to_string()


@pytest.mark.parametrize("fault", ["malformed", "truncated", "dropped"])
def test_broken_answers_are_retried_like_5xx(instance, exchange, fault):
    exchange.faults.extend([fault, fault])
    result = _materialize(instance, exchange)
    assert result.success, _error(result)
    assert not _events(result, DagsterEventType.STEP_RESTARTED)  # absorbed by the client's own retries


def test_broken_answers_past_the_retries_name_market_url_and_window(exchange):
    client = UpbitSource(exchange.url, requests_per_second=1000, max_retries=1, backoff_seconds=0.0)
    exchange.faults.extend(["malformed", "malformed"])
    with pytest.raises(SourceUnavailableError) as caught:
        client.fetch("KRW-BTC", "5m", END - pd.Timedelta(hours=3), END)
    message = str(caught.value)
    assert "Upbit KRW-BTC 5m window [2026-09-30 21:00:00+00:00, 2026-10-01 00:00:00+00:00)" in message
    assert f"GET {exchange.url}/v1/candles/minutes/5?market=KRW-BTC" in message
    assert "after 2 attempts: malformed JSON" in message and caught.value.transient


def test_a_polluted_cell_from_upbit_is_a_missing_bar_counted_and_named(instance, exchange):
    """One invalid policy for every source: a string price makes its bar missing (counted, named); the
    partition stops only above max_invalid_fraction, with an error naming the market and the bar."""
    exchange.faults.append("polluted")
    result = _materialize(instance, exchange)
    assert result.success, _error(result)
    metadata = result.asset_materializations_for_node("raw_candles")[0].metadata
    assert metadata["invalid_bars"].value == 1
    [example] = metadata["invalid_bar_examples"].value
    assert example.endswith("close = 'KRW-BTC'")
    assert not _events(result, DagsterEventType.STEP_RESTARTED)
    exchange.faults.append("polluted")
    strict = _materialize(instance, exchange, refresh=True, window={"max_invalid_fraction": 0.0})
    assert not strict.success
    error = _error(strict)
    assert "KRW-BTC 5m: 1 of " in error and "more than max_invalid_fraction 0.00%" in error and "close = " in error


def test_a_failure_keeps_committed_pages_and_the_rerun_resumes(instance, exchange, data_dir):
    total_pages = -(-int(DAYS * 288 + 600) // 200)  # span + warm-up bars, 200 a page
    # serve two pages, then break for good (more 500s than the client and the step retry)
    original = exchange.answer
    calls = {"n": 0}

    def breaking(raw_path):
        calls["n"] += 1
        return (500, {"error": {"message": "down"}}, {}) if calls["n"] > 2 else original(raw_path)

    exchange.answer = breaking
    result = _materialize(instance, exchange, step_retries=1)
    assert not result.success
    assert "HTTP 500" in _error(result) and "window [" in _error(result)
    assert len(_events(result, DagsterEventType.STEP_RESTARTED)) == 1  # transient: the step was re-run once
    store = CandleStore(f"sqlite:///{data_dir / 'candles.sqlite'}")
    coverage = store.coverage(Partition("KRW-BTC", "5m"))
    assert coverage is not None and coverage.end == END  # the two committed pages
    kept = store.load(Partition("KRW-BTC", "5m"), coverage.start, coverage.end)
    assert len(kept) == 400 and kept.index[0] == coverage.start
    store.dispose()

    exchange.answer = original
    exchange.requests.clear()
    result = _materialize(instance, exchange)
    assert result.success
    assert all(pd.Timestamp(r["to"]) <= coverage.start for r in exchange.requests)  # resumed below the kept pages
    assert len(exchange.requests) <= total_pages - 1


def test_unknown_symbol_and_ban_are_not_retried(instance, exchange):
    from trading_assets.defs.partitions import add_symbols

    add_symbols(instance, ["KRW-NOPE"])
    result = _materialize(instance, exchange, symbol="KRW-NOPE")
    assert not result.success and "KRW-NOPE 5m: Upbit does not know this market" in _error(result)
    assert not _events(result, DagsterEventType.STEP_RESTARTED)
    exchange.fail_next.append(418)
    result = _materialize(instance, exchange)
    assert not result.success and "HTTP 418" in _error(result)
    assert not _events(result, DagsterEventType.STEP_RESTARTED) and len(exchange.requests) == 2


def test_store_collect_commits_each_page(exchange, data_dir):
    """A source failing on its third page leaves the first two pages stored and covered."""
    store = CandleStore(f"sqlite:///{data_dir / 'c.sqlite'}")
    client = UpbitSource(exchange.url, requests_per_second=1000, max_retries=0)
    start = END - pd.Timedelta(days=3)
    original = exchange.answer
    calls = {"n": 0}

    def breaking(raw_path):
        calls["n"] += 1
        return (500, {"error": {"message": "down"}}, {}) if calls["n"] == 3 else original(raw_path)

    exchange.answer = breaking
    with pytest.raises(SourceUnavailableError):
        store.collect(client, Partition("KRW-BTC", "5m"), start, END)
    coverage = store.coverage(Partition("KRW-BTC", "5m"))
    kept = store.load(Partition("KRW-BTC", "5m"), start, END)
    assert coverage.end == END and coverage.start == kept.index[0] and len(kept) == 400
    result = store.collect(client, Partition("KRW-BTC", "5m"), start, END)
    assert result.fetched_spans == [(start, coverage.start)]
    served = exchange.candles[("KRW-BTC", "5m")]
    pd.testing.assert_frame_equal(
        store.load(Partition("KRW-BTC", "5m"), start, END), served.loc[served.index >= start], check_freq=False
    )
    with pytest.raises(CandleDataError, match="holds candles collected from 'upbit:http"):
        store.collect(SyntheticSource(), Partition("KRW-BTC", "5m"), start, END)
    store.dispose()
