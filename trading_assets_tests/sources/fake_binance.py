"""A local stand-in for Binance's public spot REST API, in its exact response formats (for the ccxt source)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pandas as pd

from trading_assets_tests.servers import LoopbackServer, QuietHandler

INTERVALS = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "4h": 240, "1d": 1440}


def _market(symbol: str, base: str, quote: str) -> dict[str, object]:
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.0", "stepSize": "0.00001"},
        ],
    }


class FakeBinance(LoopbackServer):
    """``GET /api/v3/exchangeInfo`` and ``GET /api/v3/klines`` (symbol, interval, startTime, endTime, limit <= 1000,
    oldest first, 12-field rows with prices as strings), from a candle frame per (exchange symbol, interval)."""

    def __init__(self, candles: dict[tuple[str, str], pd.DataFrame], markets: dict[str, tuple[str, str]]) -> None:
        self.candles = candles
        self.markets = markets
        self.requests: list[dict[str, str]] = []
        fake = self

        class Handler(QuietHandler):
            def do_GET(self):  # noqa: N802
                status, body = fake.answer(self.path)
                payload = json.dumps(body).encode()
                self.start_json(status, len(payload), content_type="application/json;charset=UTF-8")
                self.wfile.write(payload)

        self._serve(Handler)

    def answer(self, raw_path: str) -> tuple[int, object]:
        url = urlparse(raw_path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.requests.append({"path": url.path, **query})
        if url.path == "/api/v3/exchangeInfo":
            return 200, {
                "timezone": "UTC",
                "serverTime": 1_700_000_000_000,
                "rateLimits": [],
                "symbols": [_market(s, b, q) for s, (b, q) in self.markets.items()],
            }
        if url.path != "/api/v3/klines":
            return 404, {"code": -1, "msg": "not found"}
        key = (query.get("symbol", ""), query.get("interval", ""))
        if key not in self.candles:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        limit = min(int(query.get("limit", 500)), 1000)
        frame = self.candles[key]
        start = pd.Timestamp(int(query.get("startTime", 0)), unit="ms", tz="UTC")
        page = frame.loc[frame.index >= start]
        if "endTime" in query:
            page = page.loc[page.index <= pd.Timestamp(int(query["endTime"]), unit="ms", tz="UTC")]
        step = INTERVALS[key[1]] * 60_000
        rows = []
        for ts, r in page.iloc[:limit].iterrows():
            t = int(ts.value // 1_000_000)
            rows.append(
                [
                    t,
                    repr(float(r["open"])),
                    repr(float(r["high"])),
                    repr(float(r["low"])),
                    repr(float(r["close"])),
                    repr(float(r["volume"])),
                    t + step - 1,
                    repr(float(r["value"])),
                    10,
                    "0.0",
                    "0.0",
                    "0",
                ]
            )
        return 200, rows
