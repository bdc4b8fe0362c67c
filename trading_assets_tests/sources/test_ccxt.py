"""The ccxt source against a local server speaking Binance's spot REST format (offline)."""

import pandas as pd
import pytest

from trading_assets.errors import UnknownSymbolError
from trading_assets.sources import SOURCES, CcxtSource, SyntheticSource, build_source
from trading_assets_tests.conftest import END
from trading_assets_tests.sources.fake_binance import FakeBinance

SPOT = {"fetchMarkets": {"types": ["spot"]}}


@pytest.fixture
def binance():
    candles = SyntheticSource(seed=5).fetch("KRW-BTC", "60m", END - pd.Timedelta(days=120), END)
    server = FakeBinance({("BTCUSDT", "1h"): candles}, {"BTCUSDT": ("BTC", "USDT")})
    yield server, candles
    server.stop()


def test_pages_by_since_through_binance_klines(binance):
    server, candles = binance
    source = CcxtSource("binance", {"USDT-BTC": "BTC/USDT"}, api_url=server.url, options=SPOT)
    start = END - pd.Timedelta(days=100)
    out = source.fetch("USDT-BTC", "60m", start, END - pd.Timedelta(hours=5))
    expected = candles.loc[(candles.index >= start) & (candles.index < END - pd.Timedelta(hours=5))]
    cols = ["open", "high", "low", "close", "volume"]
    pd.testing.assert_frame_equal(out[cols], expected[cols], check_freq=False)
    klines = [r for r in server.requests if r["path"] == "/api/v3/klines"]
    assert len(klines) == 3 and all(r["interval"] == "1h" and r["symbol"] == "BTCUSDT" for r in klines)
    assert [int(r["startTime"]) for r in klines][1] == int(out.index[1000].value // 1_000_000)  # next page: since
    assert source.identity == f"ccxt:binance:{server.url}"


def test_symbols_map_explicitly(binance):
    server, _ = binance
    source = CcxtSource("binance", {"USDT-BTC": "BTC/USDT", "USDT-ETH": "ETH/USDT"}, api_url=server.url, options=SPOT)
    with pytest.raises(UnknownSymbolError, match="no ccxt market mapped for USDT-XRP"):
        source.fetch("USDT-XRP", "60m", END - pd.Timedelta(days=1), END)
    with pytest.raises(UnknownSymbolError, match="binance has no market 'ETH/USDT'"):
        source.fetch("USDT-ETH", "60m", END - pd.Timedelta(days=1), END)


def test_registered_and_built_from_settings(binance):
    from trading_assets.defs.resources import CandleSourceResource, Locations

    server, _ = binance
    assert "ccxt" in SOURCES
    resource = CandleSourceResource(
        locations=Locations(ccxt_api_url=server.url),
        kind="ccxt",
        ccxt_markets={"USDT-BTC": "BTC/USDT"},
        ccxt_options=SPOT,
    )
    source = build_source("ccxt", resource)
    assert (
        isinstance(source, CcxtSource) and len(source.fetch("USDT-BTC", "60m", END - pd.Timedelta(days=1), END)) == 24
    )


def test_options_cannot_say_where_to_connect():
    for options in ({"hostname": "evil.example"}, {"fetchMarkets": {"types": ["http://127.0.0.1:9"]}}):
        with pytest.raises(ValueError, match="may not"):
            CcxtSource("binance", {}, options=options)
