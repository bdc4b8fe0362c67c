import pandas as pd
import pytest

from trading_assets.errors import SourceUnavailableError, UnknownSymbolError
from trading_assets.sources import SyntheticSource, UpbitSource
from trading_assets.sources.upbit import MAX_RETRY_AFTER_SECONDS
from trading_assets_tests.conftest import END
from trading_assets_tests.servers import FakeUpbit


@pytest.fixture
def exchange():
    src = SyntheticSource(seed=2)
    frames = {
        ("KRW-BTC", "1m"): src.fetch("KRW-BTC", "1m", END - pd.Timedelta(days=2), END),
        ("KRW-BTC", "1d"): src.fetch("KRW-BTC", "1d", END - pd.Timedelta(days=500), END),
        ("KRW-ETH", "1m"): src.fetch("KRW-ETH", "1m", END - pd.Timedelta(days=1), END),
    }
    server = FakeUpbit(frames)
    yield server
    server.stop()


def _client(exchange, **kw):
    sleeps = []
    kw.setdefault("requests_per_second", 1000)
    return UpbitSource(exchange.url, backoff_seconds=0.01, sleep=sleeps.append, **kw), sleeps


def test_pages_backwards_200_at_a_time_to_exclusive(exchange):
    client, _ = _client(exchange)
    start, end = END - pd.Timedelta(hours=20), END - pd.Timedelta(hours=1)
    out = client.fetch("KRW-BTC", "1m", start, end)
    expected = exchange.candles[("KRW-BTC", "1m")]
    expected = expected.loc[(expected.index >= start) & (expected.index < end)]
    pd.testing.assert_frame_equal(out, expected, check_freq=False)
    assert all(int(r["count"]) == 200 for r in exchange.requests)
    assert len(exchange.requests) == -(-len(expected) // 200) or len(exchange.requests) == len(expected) // 200 + 1
    assert exchange.requests[0]["to"] == "2026-09-30T23:00:00Z"
    assert exchange.requests[0]["path"] == "/v1/candles/minutes/1"


def test_day_candles_and_history_start(exchange):
    client, _ = _client(exchange)
    out = client.fetch("KRW-BTC", "1d", END - pd.Timedelta(days=2000), END)
    assert len(out) == 500 and out.index[0] == END - pd.Timedelta(days=500)
    assert exchange.requests[0]["path"] == "/v1/candles/days"
    # 200 + 200 + 100, then an empty answer: only that proves the history starts there (a short page may be cut)
    assert len(exchange.requests) == 4


def test_rate_limit_header_and_429_backoff(exchange):
    client, sleeps = _client(exchange)
    exchange.fail_next.extend([429, 503])
    out = client.fetch("KRW-ETH", "1m", END - pd.Timedelta(hours=2), END)
    assert len(out) > 100
    assert sleeps[:2] == [0.01, 0.02]  # exponential backoff on 429 then 503
    # a real-time client honours the server's budget: 30 pages at 10/s never earn a 429
    exchange.requests.clear()
    real = UpbitSource(exchange.url, requests_per_second=10)
    real.fetch("KRW-BTC", "1m", END - pd.Timedelta(hours=40), END)
    assert real.requests_made == len(exchange.requests) >= 12


def test_retries_exhausted_and_ban(exchange):
    client, _ = _client(exchange, max_retries=2)
    exchange.fail_next.extend([500, 500, 500])
    with pytest.raises(SourceUnavailableError, match="after 3 attempts"):
        client.fetch("KRW-ETH", "1m", END - pd.Timedelta(hours=1), END)
    exchange.fail_next.clear()
    exchange.fail_next.append(418)
    with pytest.raises(SourceUnavailableError, match="418"):
        client.fetch("KRW-ETH", "1m", END - pd.Timedelta(hours=1), END)


def test_unknown_market_and_empty_span(exchange):
    client, _ = _client(exchange)
    with pytest.raises(UnknownSymbolError, match="KRW-NOPE 1m: Upbit does not know this market"):
        client.fetch("KRW-NOPE", "1m", END - pd.Timedelta(hours=1), END)
    assert client.fetch("KRW-ETH", "1m", END - pd.Timedelta(days=30), END - pd.Timedelta(days=29)).empty


def test_connection_refused_is_retried_then_reported():
    client = UpbitSource("http://127.0.0.1:9", max_retries=1, backoff_seconds=0.0, sleep=lambda s: None)
    with pytest.raises(SourceUnavailableError, match="after 2 attempts"):
        client.fetch("KRW-BTC", "1m", END - pd.Timedelta(hours=1), END)


def test_retry_after_is_obeyed_but_capped(exchange):
    client, sleeps = _client(exchange)
    exchange.retry_after = "86400"  # a day: a hostile or broken server must not park the run
    exchange.fail_next.extend([429])
    client.fetch("KRW-ETH", "1m", END - pd.Timedelta(hours=2), END)
    assert sleeps[0] == MAX_RETRY_AFTER_SECONDS == 60.0


@pytest.mark.parametrize("fault", ["stale", "short"])
def test_pages_that_do_not_answer_the_request_lose_nothing(exchange, fault):
    """A cached newest page (``to`` ignored) is retried; a page cut short is not taken as the end of
    history: every candle of the window arrives, and the last batch reaches the window's start only
    through an empty answer."""
    exchange.per_second = 1000  # this test is about pages, not the rate limit
    client, _ = _client(exchange)
    start = END - pd.Timedelta(days=2)
    expected = client.fetch("KRW-BTC", "1m", start, END)
    exchange.requests.clear()
    exchange.faults.extend([None, fault, None, fault])  # the 2nd and 4th answers misbehave
    batches = list(client.fetch_batches("KRW-BTC", "1m", start, END))
    got = pd.concat([b.candles for b in batches]).sort_index()
    pd.testing.assert_frame_equal(got, expected, check_freq=False)
    covered = sorted((b.start, b.end) for b in batches)
    assert covered[0][0] == start and all(a[1] == b[0] for a, b in zip(covered, covered[1:]))
    for batch in batches[:-1]:  # every batch but the last covers only from its oldest candle received
        assert batch.candles.index.min() == batch.start
