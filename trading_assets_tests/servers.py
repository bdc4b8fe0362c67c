"""Real servers for the tests: a PostgreSQL cluster and a local stand-in for Upbit's REST API."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pandas as pd
import requests


def free_port() -> int:
    return free_ports(1)[0]


def webserver_up(port: int, proc: subprocess.Popen, log_tail: Callable[[], str], timeout: float) -> bool:
    """Whether Dagster's webserver started as ``proc`` answers on ``port`` within ``timeout`` seconds. Fails at once
    when ``proc`` exited: another server answering on that port (it took the port meanwhile) must not pass for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "webserver exited: " + log_tail()
        try:
            if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                return True
        except requests.ConnectionError:
            time.sleep(1)
    return False


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free now (all held open while they are picked, so never the same twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class PostgresServer:
    """A throw-away PostgreSQL cluster from Debian's ``postgresql`` package, on a free loopback port."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins or not os.path.exists(os.path.join(os.path.dirname(bins[-1]), "postgres")):
            raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql (done by .ci/run)")
        self.bin = os.path.dirname(bins[-1])
        self.dir = tempfile.mkdtemp(prefix="ta-pg-")
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", f"{self.dir}/data", "-A", "trust", "-U", "postgres", "--no-sync")
        # The port is picked just before the start, and picked again if another process (a second test worker)
        # took it meanwhile: a free port is only free until somebody binds it.
        for attempt in range(3):
            self.port = free_port()
            try:
                self._run(
                    "pg_ctl",
                    "-D",
                    f"{self.dir}/data",
                    "-w",
                    "-l",
                    f"{self.dir}/log",
                    "-o",
                    f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "start",
                )
                break
            except subprocess.CalledProcessError:
                if attempt == 2:
                    raise

    def _run(self, tool: str, *args: str) -> None:
        cmd = [f"{self.bin}/{tool}", *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def create_database(self, name: str) -> str:
        """Create database ``name``; returns its SQLAlchemy URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", f"{self.dir}/data", "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps test output clean and answers JSON."""

    def log_message(self, *args):
        pass

    def start_json(
        self, status: int, length: int, headers: dict[str, str] | None = None, content_type: str = "application/json"
    ) -> None:
        """Status line and headers of a JSON answer whose body of ``length`` bytes follows."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()


class LoopbackServer:
    """An HTTP server on a free loopback port, serving from a daemon thread until :meth:`stop`."""

    def _serve(self, handler: type[BaseHTTPRequestHandler], path: str = "") -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeUpbit(LoopbackServer):
    """Serves candles in Upbit's exact JSON format from a candle frame per (market, timeframe).

    Implements ``GET /v1/candles/minutes/{unit}`` and ``/v1/candles/days`` with ``market``, ``to``
    (exclusive; ISO 8601 with ``Z``/offset or ``yyyy-MM-dd HH:mm:ss``, UTC) and ``count`` (<= 200),
    newest first; the ``Remaining-Req`` header with a per-second budget; 429 when over it; 404 for
    an unknown market. ``fail_next`` queues status codes to answer before serving normally;
    ``faults`` queues broken answers: ``malformed`` (a 200 whose body is not JSON), ``truncated``
    (the connection closes halfway through the body), ``dropped`` (closed before any answer),
    ``polluted`` (a page whose prices are strings), ``stale`` (the newest page, ``to`` ignored, as a cache
    may answer), ``short`` (half the page, although more candles exist); ``None`` answers normally.
    ``delay`` seconds pass before each answer. With ``hold_after`` set, every request after that many is held
    unanswered until ``release`` is set (a client killed mid-fetch, at a known page).
    """

    def __init__(self, candles: dict[tuple[str, str], pd.DataFrame], per_second: int = 10) -> None:
        self.candles = candles
        self.per_second = per_second
        self.fail_next: deque[int] = deque()
        self.retry_after: str | None = None  # Retry-After header of the injected failures
        self.faults: deque[str] = deque()
        self.delay = 0.0
        self.hold_after: int | None = None
        self.release = threading.Event()
        self.requests: list[dict[str, str]] = []
        self._window: deque[float] = deque()
        self._lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def do_GET(self):  # noqa: N802
                time.sleep(fake.delay)
                if fake.hold_after is not None and len(fake.requests) >= fake.hold_after:
                    fake.release.wait(300)
                with fake._lock:
                    fault = fake.faults.popleft() if fake.faults else None
                if fault == "dropped":
                    fake.requests.append({"path": urlparse(self.path).path, "fault": fault})
                    self.close_connection = True
                    return
                status, body, headers = (
                    fake.answer(self.path, stale=True) if fault == "stale" else fake.answer(self.path)
                )
                if fault == "polluted" and status == 200 and body:
                    body[len(body) // 2]["trade_price"] = "KRW-BTC"
                if fault == "short" and status == 200 and body:
                    body = body[: len(body) // 2]  # half a page, although more candles exist
                payload = json.dumps(body).encode()
                if fault == "malformed":
                    payload = b"<html>502 Bad Gateway</html>"
                self.start_json(status, len(payload), headers, "application/json; charset=utf-8")
                if fault == "truncated":
                    self.wfile.write(payload[: len(payload) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self._serve(Handler)

    def answer(self, raw_path: str, stale: bool = False) -> tuple[int, object, dict[str, str]]:
        url = urlparse(raw_path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self._lock:
            self.requests.append({"path": url.path, **query})
            now = time.monotonic()
            while self._window and now - self._window[0] >= 1.0:
                self._window.popleft()
            if self.fail_next:
                code = self.fail_next.popleft()
                headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                return code, {"error": {"name": str(code), "message": "injected failure"}}, headers
            if len(self._window) >= self.per_second:
                return 429, {"error": {"name": "too_many_requests", "message": "Too many requests"}}, {}
            self._window.append(now)
            remaining = {"Remaining-Req": f"group=candles; min=600; sec={self.per_second - len(self._window)}"}
        if url.path == "/v1/candles/days":
            timeframe = "1d"
        elif url.path.startswith("/v1/candles/minutes/"):
            timeframe = f"{url.path.rsplit('/', 1)[1]}m"
        else:
            return 404, {"error": {"name": "404", "message": "Not found"}}, remaining
        market = query.get("market", "")
        if (market, timeframe) not in self.candles:
            return 404, {"error": {"name": "404", "message": "Code not found"}}, remaining
        count = int(query.get("count", "1"))
        if not 1 <= count <= 200:
            return 400, {"error": {"name": "invalid_parameter", "message": "count must be 1..200"}}, remaining
        to = pd.Timestamp(query["to"]) if "to" in query and not stale else pd.Timestamp.now(tz="UTC")
        to = to.tz_localize("UTC") if to.tzinfo is None else to.tz_convert("UTC")
        frame = self.candles[(market, timeframe)]
        page = frame.loc[frame.index < to].iloc[-count:].iloc[::-1]
        return 200, [_upbit_row(market, timeframe, ts, row) for ts, row in page.iterrows()], remaining


def _upbit_row(market: str, timeframe: str, ts: pd.Timestamp, row: pd.Series) -> dict[str, object]:
    kst = ts.tz_convert("Asia/Seoul")
    out = {
        "market": market,
        "candle_date_time_utc": ts.strftime("%Y-%m-%dT%H:%M:%S"),
        "candle_date_time_kst": kst.strftime("%Y-%m-%dT%H:%M:%S"),
        "opening_price": float(row["open"]),
        "high_price": float(row["high"]),
        "low_price": float(row["low"]),
        "trade_price": float(row["close"]),
        "timestamp": int((ts + pd.Timedelta(seconds=59)).value // 1_000_000),  # last trade, not the bar start
        "candle_acc_trade_price": float(row["value"]),
        "candle_acc_trade_volume": float(row["volume"]),
    }
    if timeframe == "1d":
        out.update(
            prev_closing_price=float(row["open"]),
            change_price=float(row["close"] - row["open"]),
            change_rate=float(row["close"] / row["open"] - 1),
            converted_trade_price=None,
        )
    else:
        out["unit"] = int(timeframe[:-1])
    return out


class WebhookReceiver(LoopbackServer):
    """A local stand-in for a Slack incoming webhook: records each accepted JSON body (and its
    ``X-Alert-Id`` header in ``ids``).

    ``mode``: ``up`` accepts; ``down`` answers HTTP 500; ``hang`` answers nothing for ``hang_seconds``
    and then 503, recording nothing. ``fail_next`` answers that many requests with HTTP 500 first.
    """

    def __init__(self, hang_seconds: float = 5.0) -> None:
        self.bodies: list[dict] = []
        self.ids: list[str | None] = []
        self.fail_next = 0
        self.mode = "up"
        self.hang_seconds = hang_seconds
        self.attempts = 0
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.attempts += 1
                mode = receiver.mode  # as when the request came in
                if mode == "hang":
                    time.sleep(receiver.hang_seconds)
                if receiver.fail_next > 0 or mode != "up":
                    receiver.fail_next = max(0, receiver.fail_next - 1)
                    self.send_response(500 if mode != "hang" else 503)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(body))
                receiver.ids.append(self.headers.get("X-Alert-Id"))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

        self._serve(Handler, "/hooks/T000/B000")


class DagsterProcess:
    """``dagster-daemon run`` or ``dagster-webserver`` on loopback, started and stopped by a test."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: str, log_path: str) -> None:
        self.args, self.env, self.cwd, self.log_path = args, env, cwd, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "DagsterProcess":
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def stop(self, timeout: float = 30.0) -> None:
        import signal

        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self._log.close()

    def log_tail(self, chars: int = 3000) -> str:
        with open(self.log_path, encoding="utf8", errors="replace") as f:
            return f.read()[-chars:]
