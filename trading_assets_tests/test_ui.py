"""``trading-assets ui`` on the embedded instance: it starts, serves the asset graph, shows the charts of a
materialization in a real browser (headless Chromium over the DevTools protocol), and stops on a signal."""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import websocket
from click.testing import CliRunner

from trading_assets.app.cli import main
from trading_assets_tests.conftest import END
from trading_assets_tests.servers import free_port, webserver_up

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
ASSETS = {
    *("raw_candles", "indicators", "features", "trained_model", "predictions", "evaluation", "leaderboard"),
    *("champion", "signals"),  # the live path
    "tuning",
}


def start_ui(data_dir: Path, log: Path, *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "TRADING_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    env.pop("DAGSTER_HOME", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "trading_assets.app.cli", "ui", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if webserver_up(port, proc, lambda: log.read_text()[-3000:], timeout=180):
        return proc, port
    stop(proc, signal.SIGKILL)
    raise AssertionError("UI did not come up: " + log.read_text()[-3000:])


def stop(proc: subprocess.Popen, sig: int) -> int:
    """Send ``sig`` to the ``trading-assets ui`` process only; its exit code once it and its children are gone."""
    proc.send_signal(sig)
    code = proc.wait(60)
    with pytest.raises(ProcessLookupError):  # nothing of its process group is left
        os.killpg(proc.pid, 0)
    return code


def asset_names(port: int) -> set[str]:
    body = requests.post(
        f"http://127.0.0.1:{port}/graphql", json={"query": "{ assetNodes { assetKey { path } } }"}, timeout=60
    ).json()
    assert "errors" not in body, body
    return {n["assetKey"]["path"][0] for n in body["data"]["assetNodes"]}


class Browser:
    """Headless Chromium driven over the DevTools protocol (one page)."""

    def __init__(self, profile: Path) -> None:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        assert chromium, "Debian's chromium is needed (installed by .ci/run)"
        self.proc = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--hide-scrollbars",
                "--window-size=1600,1200",
                "--remote-debugging-port=0",  # Chromium binds a free port and names it in DevToolsActivePort
                "--remote-allow-origins=*",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline, active = time.monotonic() + 60, profile / "DevToolsActivePort"
        while True:
            try:
                self.port = int(active.read_text().split()[0])
                pages = requests.get(f"http://127.0.0.1:{self.port}/json/list", timeout=2).json()
                page = next(p for p in pages if p["type"] == "page")
                break
            except (OSError, ValueError, IndexError, requests.ConnectionError, StopIteration):
                assert self.proc.poll() is None and time.monotonic() < deadline, "chromium did not start"
                time.sleep(0.5)
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 90):
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.5)
        return value

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(30)


# Opens the "[Show Markdown]" of the metadata row labelled `label` (Dagster shows long Markdown in a dialog).
SHOW_MARKDOWN = """(() => {
  const row = [...document.querySelectorAll('tr')].find(r => r.cells.length > 1 && r.cells[0].innerText.trim() === %r);
  const link = row && [...row.querySelectorAll('a')].find(e => e.innerText.trim() === '[Show Markdown]');
  if (!link) return false;
  link.click();
  return true;
})()"""
# The chart image once loaded: its natural size, or nothing yet.
LOADED_CHART = """(() => {
  const img = [...document.querySelectorAll('img')].find(i => i.src.startsWith('data:image/png'));
  return img && img.complete && img.naturalWidth > 0 ? [img.naturalWidth, img.naturalHeight] : null;
})()"""


def test_ui_shows_charts_of_the_latest_materializations(tmp_path, data_dir):
    runner = CliRunner()
    result = runner.invoke(
        main, ["materialize", "--symbols", "KRW-BTC", "--timeframes", "15m", "--end", END.isoformat()]
    )
    assert result.exit_code == 0, result.output
    ARTIFACTS.mkdir(exist_ok=True)
    proc, port = start_ui(data_dir, tmp_path / "ui.log", "--no-daemon")
    browser = Browser(tmp_path / "chromium")
    try:
        assert asset_names(port) == ASSETS
        for asset, label in (("raw_candles", "chart"), ("indicators", "chart"), ("evaluation", "equity_curves")):
            browser.call("Page.navigate", url=f"http://127.0.0.1:{port}/assets/{asset}?view=events")
            browser.wait_for(SHOW_MARKDOWN % label)
            width, height = browser.wait_for(LOADED_CHART)
            assert width > 300 and height > 200
            assert '<img src="data:image/png' in browser.evaluate("document.documentElement.outerHTML")
            shot = ARTIFACTS / f"ui_{asset}_{label}.png"
            time.sleep(1.5)  # the dialog fades in: let the screenshot show it fully
            browser.screenshot(shot)
            assert shot.stat().st_size > 20_000
    finally:
        browser.close()
        code = stop(proc, signal.SIGTERM)
    assert code == 0


def test_ui_with_daemon_serves_the_asset_graph_and_stops_on_ctrl_c(tmp_path, data_dir):
    proc, port = start_ui(data_dir, tmp_path / "ui.log")
    try:
        assert asset_names(port) == ASSETS
    finally:
        code = stop(proc, signal.SIGINT)
    log = (tmp_path / "ui.log").read_text()
    assert code == 0 and f"http://127.0.0.1:{port}" in log and str(data_dir / "dagster_home") in log
    assert "DAGSTER_PG" not in log
