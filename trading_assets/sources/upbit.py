"""Upbit's public quotation REST API (minute and day candles).

Upbit returns at most 200 candles a request, newest first, strictly before ``to`` (exclusive,
UTC unless an offset is given). We page backwards from the oldest ``candle_date_time_utc`` of
each answer. The candle endpoints share a budget of about 10 requests per second, announced in
the ``Remaining-Req: group=candles; min=..; sec=N`` header; going over it answers HTTP 429, and
repeated 429s earn a temporary ban (HTTP 418). ``timestamp`` in the answer is the last trade's
time, not the bar's start, so it is ignored.

Malformed, truncated or dropped answers are retried like HTTP 5xx (bounded, exponential backoff);
pages are yielded as they arrive (``fetch_batches``) so the store commits each one.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import requests

from trading_assets.candles import drop_invalid_bars, empty_candles
from trading_assets.errors import CandleDataError, SourceUnavailableError, UnknownSymbolError
from trading_assets.redaction import redact
from trading_assets.sources.base import CandleBatch
from trading_assets.timeframes import get_timeframe, to_utc, validate_symbol

log = logging.getLogger(__name__)

PAGE_SIZE = 200
_FIELDS = {
    "opening_price": "open",
    "high_price": "high",
    "low_price": "low",
    "trade_price": "close",
    "candle_acc_trade_volume": "volume",
    "candle_acc_trade_price": "value",
}
_REMAINING_SEC = re.compile(r"sec=(\d+)")
MAX_RETRY_AFTER_SECONDS = 60.0  # a server's Retry-After is obeyed up to this, never for hours
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class UpbitSource:
    """Candles from Upbit's REST API, rate-limited and retried."""

    name = "upbit"

    def __init__(
        self,
        base_url: str = "https://api.upbit.com",
        requests_per_second: float = 8.0,
        max_retries: int = 5,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 10.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.min_interval = 1.0 / requests_per_second
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.session = session or requests.Session()
        self._sleep = sleep
        self._next_request_at = 0.0
        self.requests_made = 0
        self.on_page: Callable[[int, int], None] | None = None  # (pages done, pages expected) after each page

    def fetch(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        batches = [b.candles for b in self.fetch_batches(symbol, timeframe, start, end) if not b.candles.empty]
        return pd.concat(batches).sort_index() if batches else empty_candles()

    def fetch_batches(
        self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> Iterator[CandleBatch]:
        """One batch per page, newest first; each covers ``[its oldest candle, the previous page's oldest)``,
        the last one down to ``start``."""
        validate_symbol(symbol)
        tf = get_timeframe(timeframe)
        start, end = to_utc(start), to_utc(end)
        path = "/v1/candles/days" if tf.minutes == 1440 else f"/v1/candles/minutes/{tf.minutes}"
        to = end
        expected, done = max(1, math.ceil(len(tf.grid(start, end)) / PAGE_SIZE)), 0
        while to > start:
            params = {"market": symbol, "to": to.strftime("%Y-%m-%dT%H:%M:%SZ"), "count": PAGE_SIZE}
            page = self._get(path, params, symbol, timeframe, f"window [{start}, {end})")
            done += 1
            if self.on_page is not None:
                self.on_page(done, max(done, expected))
            if not page:
                yield CandleBatch(empty_candles(), start, to)
                return
            frame = pd.DataFrame(page).rename(columns=_FIELDS)
            frame["open_time"] = pd.to_datetime(frame["candle_date_time_utc"], utc=True)
            try:  # a bad cell makes its bar missing (counted and named), as for every source
                candles, invalid = drop_invalid_bars(frame[["open_time", *_FIELDS.values()]], symbol, timeframe)
            except CandleDataError as exc:  # unusable timestamps: bad data, not a bad transfer, never retried
                where = redact(f"{exc.problem} from {self.base_url}{path}?{urlencode(params)}, window [{start}, {end})")
                raise CandleDataError(symbol, timeframe, where, exc.column, exc.examples) from exc
            if invalid:
                log.warning("%s %s: %d invalid bar(s) from Upbit treated as missing: %s", symbol, timeframe,
                            len(invalid), invalid[:5])  # fmt: skip
            oldest = frame["open_time"].min()  # of the page as sent: a dropped bar is not asked for again
            # A short page is not the start of history (a cache or a proxy may cut pages): only an empty
            # answer says there is nothing older, so coverage never claims bars that did not arrive.
            last = oldest <= start
            lo = start if last else oldest
            batch = candles.loc[(candles.index >= lo) & (candles.index < min(to, end))]
            batch.attrs["invalid_bars"] = [bar for bar in invalid if lo <= pd.Timestamp(bar.split(": ")[0]) < to]
            yield CandleBatch(batch, lo, to)
            if last:
                return
            to = oldest

    def _get(self, path: str, params: dict[str, Any], symbol: str, timeframe: str, window: str) -> list[dict[str, Any]]:
        url = self.base_url + path
        where = redact(f"Upbit {symbol} {timeframe} {window}, GET {url}?{urlencode(params)}")
        for attempt in range(self.max_retries + 1):
            self._throttle()
            try:
                response = self.session.get(url, params=params, timeout=self.timeout_seconds)
            except _TRANSIENT as exc:  # refused, timed out, dropped or cut off mid-answer
                self._retry_or_raise(attempt, where, f"{type(exc).__name__}: {exc}")
                continue
            self.requests_made += 1
            self._honour_remaining(response)
            status = response.status_code
            if status == 200:
                page, problem = _parse_page(response)
                if problem is None:
                    problem = _outside_request(page, params.get("to"))
                if problem is None:
                    return page
                self._retry_or_raise(attempt, where, problem)
                continue
            if status == 418:
                raise SourceUnavailableError(
                    f"{where}: Upbit temporarily banned this client (HTTP 418); "
                    f"retry after {response.headers.get('Retry-After', 'a while')}",
                    transient=False,
                )
            if status == 429 or status >= 500:
                self._retry_or_raise(attempt, where, f"HTTP {status}", response.headers.get("Retry-After"))
                continue
            message = _error_message(response)
            if status == 404 or "not found" in message.lower():
                raise UnknownSymbolError(
                    symbol, timeframe, redact(f"Upbit does not know this market ({message}; {url})")
                )
            raise CandleDataError(symbol, timeframe, redact(f"Upbit answered HTTP {status}: {message} ({where})"))
        raise AssertionError("unreachable")

    def _throttle(self) -> None:
        now = time.monotonic()
        if now < self._next_request_at:
            self._sleep(self._next_request_at - now)
        self._next_request_at = max(now, self._next_request_at) + self.min_interval

    def _honour_remaining(self, response: requests.Response) -> None:
        match = _REMAINING_SEC.search(response.headers.get("Remaining-Req", ""))
        if match and int(match.group(1)) <= 0:
            self._next_request_at = max(self._next_request_at, time.monotonic() + 1.0)

    def _retry_or_raise(self, attempt: int, where: str, problem: str, retry_after: str | None = None) -> None:
        where, problem = redact(where), redact(problem)  # a base URL or proxy may carry credentials
        if attempt >= self.max_retries:
            raise SourceUnavailableError(f"{where}: request failed after {attempt + 1} attempts: {problem}")
        delay = (
            min(float(retry_after), MAX_RETRY_AFTER_SECONDS)
            if retry_after and retry_after.isdigit()
            else self.backoff_seconds * 2**attempt
        )
        log.warning("%s: %s; retrying in %.2fs (attempt %d/%d)", where, problem, delay, attempt + 1, self.max_retries)
        self._sleep(delay)


def _outside_request(page: list[dict[str, Any]], to: str | None) -> str | None:
    """Why a page does not answer a request for candles before ``to`` (a stale, cached page), or None."""
    if not page or to is None:
        return None
    limit = pd.Timestamp(to)
    limit = limit.tz_localize("UTC") if limit.tzinfo is None else limit.tz_convert("UTC")
    newest = max(pd.Timestamp(row.get("candle_date_time_utc", ""), tz="UTC") for row in page)
    if newest >= limit:
        return f"stale page: candles up to {newest.isoformat()} answer a request for candles before {limit.isoformat()}"
    return None


def _parse_page(response: requests.Response) -> tuple[list[dict[str, Any]], str | None]:
    """The page's rows, or why the answer is malformed (bad JSON, not a list of candles, fields missing)."""
    try:
        page = response.json()
    except ValueError as exc:
        return [], f"malformed JSON ({exc}): {response.text[:120]!r}"
    if not isinstance(page, list) or not all(isinstance(r, dict) for r in page):
        return [], f"malformed answer, expected a list of candles: {response.text[:120]!r}"
    missing = sorted({f for r in page for f in ("candle_date_time_utc", *_FIELDS) if f not in r})
    if missing:
        return [], f"malformed answer, candles lack fields {missing}"
    return page, None


def _error_message(response: requests.Response) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message") or error)
    except ValueError:
        return response.text[:200]
