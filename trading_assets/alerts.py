"""Alerts for failed data-quality checks: a JSON line in a log file, and a Slack-style webhook POST.

The log line is always written (atomically appended, one line per alert). The webhook is optional;
a webhook that is down is retried with backoff and then reported as undelivered, never raised.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from trading_assets.redaction import escape_mrkdwn, redact, url_secrets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckAlert:
    """One failed check evaluation."""

    event_id: int
    asset: str
    partition: str | None
    check: str
    severity: str
    description: str | None
    figures: dict[str, Any]
    run_id: str
    run_url: str
    timestamp: float

    def text(self) -> str:
        """Slack mrkdwn; every value escaped (only the run link is markup) and redacted."""
        icon = ":rotating_light:" if self.severity == "ERROR" else ":warning:"
        figures = ", ".join(f"{k}={v}" for k, v in self.figures.items())
        body = (
            f"{self.severity}: check `{self.check}` failed on `{self.asset}` partition "
            f"`{self.partition}`: {self.description or 'no description'}" + (f" ({figures})" if figures else "")
        )
        link = f"<{escape_mrkdwn(redact(self.run_url))}|run {escape_mrkdwn(self.run_id[:8])}>"
        return f"{icon} {escape_mrkdwn(redact(body))} {link}"


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single ``write`` on an ``O_APPEND`` descriptor (no torn lines)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = (redact(json.dumps(record, default=str, sort_keys=True)) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # owner only: alerts quote data and errors
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def post_webhook(
    url: str,
    text: str,
    retries: int = 3,
    backoff_seconds: float = 1.0,
    timeout: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, str]:
    """POST ``{"text": ...}`` (Slack incoming-webhook format); returns (delivered, last error)."""
    error = ""
    for attempt in range(retries + 1):
        try:
            response = requests.post(url, json={"text": text}, timeout=timeout)
            if response.status_code < 300:
                return True, ""
            error = redact(f"HTTP {response.status_code}: {response.text[:200]}", url_secrets(url, True))
        except requests.RequestException as exc:
            error = redact(exc, url_secrets(url, True))
        if attempt < retries:
            log.warning("alert webhook failed (%s); retry %d/%d", error, attempt + 1, retries)
            sleep(backoff_seconds * 2**attempt)
    log.error("alert webhook undelivered after %d attempts: %s", retries + 1, error)
    return False, error


def deliver(
    alert: CheckAlert, log_path: Path, webhook_url: str | None, retries: int = 3, backoff_seconds: float = 1.0
) -> bool:
    """Send one alert; the log line records whether the webhook got it."""
    delivered, error = (
        post_webhook(webhook_url, alert.text(), retries, backoff_seconds)
        if webhook_url
        else (False, "no webhook configured")
    )
    append_line(
        log_path,
        {**asdict(alert), "text": alert.text(), "webhook_delivered": delivered, "webhook_error": error or None},
    )
    return delivered
