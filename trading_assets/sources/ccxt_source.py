"""Candles from any exchange ccxt supports, through its unified ``fetch_ohlcv``.

The exchange is a ccxt id (``binance``, ``kraken``, ``okx``, ...); symbols map explicitly to ccxt
markets (``{"USDT-BTC": "BTC/USDT"}``): the partition keeps the ``QUOTE-BASE`` format, and a symbol
without a mapping is refused rather than guessed. ccxt's own rate limiter paces the requests
(``enableRateLimit``, the exchange's ``rateLimit``); pages are requested forward by ``since`` until
``end``. ccxt's OHLCV rows carry no quote turnover, so ``value`` is estimated as volume x typical price.
``api_url`` points the exchange's public API at a mirror or a test server (scheme and host replaced,
paths kept); ``options`` go to the exchange's ccxt ``options`` (e.g. Binance
``{"fetchMarkets": {"types": ["spot"]}}`` loads spot markets only).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

import ccxt
import pandas as pd

from trading_assets.candles import drop_invalid_bars, empty_candles
from trading_assets.errors import CandleDataError, SourceUnavailableError, UnknownSymbolError
from trading_assets.timeframes import get_timeframe, to_utc, validate_symbol

log = logging.getLogger(__name__)

CCXT_TIMEFRAMES = {"1m": "1m", "5m": "5m", "15m": "15m", "30m": "30m", "60m": "1h", "240m": "4h", "1d": "1d"}


_LOCATION_WORDS = ("url", "host", "proxy", "api", "endpoint", "domain", "socks")


def _check_options(options: Any, path: str = "ccxt_options") -> None:
    """Refuse options that would say where to connect: those come from the environment, never from run config."""
    if isinstance(options, dict):
        for key, value in options.items():
            if any(word in str(key).lower() for word in _LOCATION_WORDS):
                raise ValueError(f"{path}.{key}: ccxt options may not set a location (use $TRADING_CCXT_API_URL)")
            _check_options(value, f"{path}.{key}")
    elif isinstance(options, (list, tuple)):
        for i, value in enumerate(options):
            _check_options(value, f"{path}[{i}]")
    elif isinstance(options, str) and "://" in options:
        raise ValueError(f"{path}: ccxt options may not hold a URL (use $TRADING_CCXT_API_URL)")


def _rebase(urls: Any, base: str) -> Any:
    """``urls`` (a URL or a nested dict of them) with scheme and host replaced by ``base``'s."""
    if isinstance(urls, dict):
        return {k: _rebase(v, base) for k, v in urls.items()}
    if isinstance(urls, str) and urls.startswith("http"):
        parsed = urlparse(urls)
        return base.rstrip("/") + parsed.path
    return urls


class CcxtSource:
    """Candles of one ccxt exchange."""

    name = "ccxt"

    def __init__(
        self,
        exchange_id: str,
        markets: dict[str, str],
        api_url: str | None = None,
        page_limit: int = 1000,
        timeout_ms: int = 10_000,
        options: dict[str, Any] | None = None,
    ) -> None:
        if exchange_id not in ccxt.exchanges:
            raise ValueError(f"unknown ccxt exchange {exchange_id!r}; e.g. {', '.join(ccxt.exchanges[:8])}, ...")
        _check_options(options)
        config = {"enableRateLimit": True, "timeout": timeout_ms, "options": dict(options or {})}
        self.exchange: ccxt.Exchange = getattr(ccxt, exchange_id)(config)
        if api_url:
            self.exchange.urls["api"] = _rebase(self.exchange.urls["api"], api_url)
        self.exchange_id = exchange_id
        self.markets = dict(markets)
        self.page_limit = page_limit
        self.identity = f"ccxt:{exchange_id}" + (f":{api_url.rstrip('/')}" if api_url else "")
        self._markets_loaded = False

    def _market(self, symbol: str, timeframe: str) -> str:
        market = self.markets.get(symbol)
        if market is None:
            raise UnknownSymbolError(
                symbol,
                timeframe,
                f"no ccxt market mapped for {symbol} on {self.exchange_id} (ccxt_markets: {self.markets}); "
                "add e.g. {'" + symbol + "': 'BASE/QUOTE'}",
            )
        if not self._markets_loaded:
            self._call(symbol, timeframe, self.exchange.load_markets)
            self._markets_loaded = True
        if market not in self.exchange.markets:
            raise UnknownSymbolError(symbol, timeframe, f"{self.exchange_id} has no market {market!r}")
        return market

    def _call(self, symbol: str, timeframe: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ccxt.BadSymbol as exc:
            raise UnknownSymbolError(symbol, timeframe, f"{self.exchange_id}: {exc}") from exc
        except ccxt.NetworkError as exc:  # includes rate-limit and availability errors, after ccxt's own pacing
            raise SourceUnavailableError(f"{self.exchange_id} {symbol} {timeframe}: {exc}") from exc
        except ccxt.ExchangeError as exc:
            raise CandleDataError(symbol, timeframe, f"{self.exchange_id} refused the request: {exc}") from exc

    def fetch(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        validate_symbol(symbol)
        code = CCXT_TIMEFRAMES[timeframe]
        if code not in (self.exchange.timeframes or {}):
            raise CandleDataError(symbol, timeframe, f"{self.exchange_id} has no {code} candles")
        market = self._market(symbol, timeframe)
        step = int(get_timeframe(timeframe).delta.total_seconds() * 1000)
        since, end_ms = int(to_utc(start).value // 1_000_000), int(to_utc(end).value // 1_000_000)
        rows: list[list[Any]] = []
        while since < end_ms:
            page = self._call(symbol, timeframe, self.exchange.fetch_ohlcv, market, code, since, self.page_limit)
            rows += [r for r in page if since <= r[0] < end_ms]
            if not page or page[-1][0] < since:
                break
            since = int(page[-1][0]) + step
        log.info("%s %s: %d candles from %s %s", symbol, timeframe, len(rows), self.exchange_id, market)
        if not rows:
            return empty_candles()
        frame = pd.DataFrame(rows, columns=["open_time", "open", "high", "low", "close", "volume"])
        frame["open_time"] = pd.to_datetime(frame["open_time"], unit="ms", utc=True)
        prices = frame[["high", "low", "close"]].apply(pd.to_numeric, errors="coerce")
        frame["value"] = pd.to_numeric(frame["volume"], errors="coerce") * prices.mean(axis=1)
        candles, invalid = drop_invalid_bars(frame, symbol, timeframe)
        if invalid:
            log.warning(
                "%s %s: %d invalid bar(s) from %s treated as missing: %s",
                symbol,
                timeframe,
                len(invalid),
                self.exchange_id,
                invalid[:5],
            )
        candles.attrs["invalid_bars"] = invalid
        return candles
