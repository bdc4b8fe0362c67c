"""Secrets never leave in text, Slack markup cannot be injected, local state is owner-only."""

import os
import stat

import pytest

from trading_assets.alerts import CheckAlert, Outbox, RunFailureAlert, append_line, post_webhook
from trading_assets.redaction import escape_mrkdwn, redact, redact_url, redacted_errors
from trading_assets.settings import data_dir
from trading_assets.timeframes import validate_symbol, validate_timeframe

SLACK = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/PlantedWebhookToken123"


def test_urls_lose_credentials_tokens_and_webhook_paths():
    assert redact("db postgresql+psycopg2://bob:s3cr%40t@db:5432/x up") == "db postgresql+psycopg2://***@db:5432/x up"
    assert redact(f"POST {SLACK} failed") == "POST https://hooks.slack.com/services/*** failed"
    assert redact("http://api/x?a=1&token=abcdef&key=zz") == "http://api/x?a=1&token=***&key=***"
    assert redact_url(SLACK, path_is_secret=True) == "https://hooks.slack.com/***"


def test_environment_secrets_are_hidden_even_without_their_url(monkeypatch):
    monkeypatch.setenv("TRADING_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hooks/T0/B0/PlantedToken")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://ml:PlantedPassword@mlflow.internal")
    requests_text = "Max retries exceeded with url: /hooks/T0/B0/PlantedToken (Caused by ...)"
    assert "PlantedToken" not in redact(requests_text)
    assert "PlantedPassword" not in redact("auth failed for PlantedPassword")
    with pytest.raises(RuntimeError) as raised:
        with redacted_errors():
            try:
                raise OSError("connect https://ml:PlantedPassword@mlflow.internal refused")
            except OSError as exc:
                raise ValueError("store unusable") from exc
    assert "PlantedPassword" not in str(raised.value) and raised.value.__cause__ is None
    with pytest.raises(KeyError):  # errors without a secret keep their type
        with redacted_errors():
            raise KeyError("plain")


def test_alert_text_is_escaped_for_slack():
    alert = CheckAlert(
        1, "raw_candles", "KRW-BTC|1m", "schema", "ERROR", "column <!channel> & <http://evil|click>", {}, "r" * 32,
        "http://127.0.0.1:3000/runs/" + "r" * 32, 0.0,
    )  # fmt: skip
    text = alert.text()
    assert "<!channel>" not in text and "<http://evil" not in text
    assert "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;" in text
    assert text.endswith(f"<http://127.0.0.1:3000/runs/{'r' * 32}|run rrrrrrrr>")  # the one real link
    assert escape_mrkdwn("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_run_failure_alert_is_escaped_and_redacted():
    alert = RunFailureAlert(
        "r" * 32, "market_data_job", "KRW-BTC|1m", "upbit", "raw_candles",
        "SourceUnavailableError: GET https://user:PlantedPw@api.example/v1?token=PlantedTok <!channel>\nmore",
        "http://127.0.0.1:3000/runs/" + "r" * 32, 0.0,
    )  # fmt: skip
    text = alert.text()
    assert "PlantedPw" not in text and "PlantedTok" not in text and "<!channel>" not in text and "more" not in text
    assert "step `raw_candles`: SourceUnavailableError: GET https://***@api.example/v1?token=***" in text
    assert text.endswith(f"<http://127.0.0.1:3000/runs/{'r' * 32}|run rrrrrrrr>")


def test_webhook_errors_do_not_quote_the_webhook_token():
    error = post_webhook("http://127.0.0.1:9/services/T0/B0/PlantedHookToken", "x", "check:1", timeout=1)
    assert error and "ConnectionError" in error and "PlantedHookToken" not in error


def test_alert_log_outbox_and_data_folder_are_owner_only(tmp_path, monkeypatch):
    path = tmp_path / "alerts" / "alerts.jsonl"
    append_line(path, {"text": "x"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    outbox = Outbox(tmp_path / "outbox" / "alerts_outbox.sqlite")
    alert = RunFailureAlert("r" * 32, "job", None, "synthetic", None, "boom", "http://ui/runs/r", 0.0)
    assert outbox.add(alert, path, webhook=True) and not outbox.add(alert, path, webhook=True)  # once per event id
    assert stat.S_IMODE(os.stat(tmp_path / "outbox").st_mode) == 0o700
    for file in (tmp_path / "outbox").iterdir():  # the database and its WAL files
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path / "fresh"))
    assert stat.S_IMODE(os.stat(data_dir()).st_mode) == 0o700


@pytest.mark.parametrize("symbol", ["KRW-BTC\n", "../../../outside", "KRW-BTC/..", "KRW-BTC|1m", "krw-btc", ""])
def test_symbols_are_matched_whole(symbol):
    with pytest.raises(ValueError, match="invalid symbol"):
        validate_symbol(symbol)


def test_timeframes_are_matched_whole():
    assert validate_timeframe("1m") == "1m"
    for bad in ("1m\n", "../1m", "2m"):
        with pytest.raises(ValueError, match="unknown timeframe"):
            validate_timeframe(bad)


def test_the_missed_forms_are_hidden():
    """'@' inside a password, Telegram bot tokens, Authorization headers (the round-2 findings)."""
    assert redact("http://user:p@ss@proxy.internal:8080/graphql") == "http://***@proxy.internal:8080/graphql"
    token = "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
    assert token not in redact(f"POST https://api.telegram.org/bot{token}/sendMessage failed")
    assert token not in redact(f"the bot {token} was refused")
    assert redact("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def") == "Authorization: Bearer ***"
    assert redact("header Basic dXNlcjpQbGFudGVkUHcx sent") == "header Basic *** sent"


@pytest.mark.parametrize(
    "variable", ["TRADING_CCXT_API_URL", "TRADING_UPBIT_BASE_URL", "TRADING_ASSETS_PATH", "DAGSTER_WEBUI_URL"]
)
def test_every_location_is_a_secret_bearing_setting(monkeypatch, variable):
    monkeypatch.setenv(variable, "https://user:PlantedLocationPw@mirror.internal/api")
    assert "PlantedLocationPw" not in redact("403 Forbidden for user PlantedLocationPw at mirror.internal")


def test_every_handler_redacts_what_libraries_log(monkeypatch):
    """A filter at the edge: urllib3's debug line (the path only) and a traceback, through a handler."""
    import io
    import logging

    from trading_assets.redaction import install_log_redaction, register_secrets

    monkeypatch.setenv("TRADING_ALERT_WEBHOOK_URL", SLACK)
    register_secrets(["PlantedCliProxyPw"])  # as `backfill --url https://u:PlantedCliProxyPw@proxy` does
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    pool = logging.getLogger("urllib3.connectionpool")
    pool_level = pool.level
    pool.setLevel(logging.DEBUG)  # as -v does
    try:
        install_log_redaction()
        logging.getLogger("urllib3.connectionpool").debug(
            'https://hooks.slack.com:443 "POST %s HTTP/1.1" 200 2', SLACK.split(".com", 1)[1]
        )
        try:
            raise ConnectionError("proxy https://u:PlantedCliProxyPw@proxy refused")
        except ConnectionError:
            logging.getLogger("requests").exception("call failed")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        pool.setLevel(pool_level)
    text = stream.getvalue()
    assert "POST" in text and "call failed" in text
    assert "PlantedWebhookToken123" not in text and "PlantedCliProxyPw" not in text
