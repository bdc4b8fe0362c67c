"""Alerts: a JSON line in a log file, and a Slack-style webhook POST delivered from an outbox.

Raising an alert writes it to the outbox (a small SQLite file keyed by the alert's event id, so the
same event is never queued twice) and appends one line to the log file. Delivery is separate and
bounded: :meth:`Outbox.deliver` POSTs due alerts with a short timeout until a time budget is spent;
a failed POST is retried on a later call with exponential backoff, until it is delivered or expires
(logged). Delivery is at-least-once: the webhook gets the event id in the ``X-Alert-Id`` header.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
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

    @property
    def key(self) -> str:
        return f"check:{self.event_id}"

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


@dataclass(frozen=True)
class RunFailureAlert:
    """A failed run: its failing step and error (a source failure, a crash, a worker that died)."""

    run_id: str
    job: str
    partition: str | None
    source: str
    step: str | None
    error: str
    run_url: str
    timestamp: float

    @property
    def key(self) -> str:
        return f"run:{self.run_id}"

    def text(self) -> str:
        """Slack mrkdwn; every value escaped (only the run link is markup) and redacted."""
        first_line = self.error.strip().splitlines()[0] if self.error.strip() else "no error message"
        body = (
            f"run failed: `{self.job}` partition `{self.partition}` (source {self.source})"
            + (f", step `{self.step}`" if self.step else "")
            + f": {first_line}"
        )
        link = f"<{escape_mrkdwn(redact(self.run_url))}|run {escape_mrkdwn(self.run_id[:8])}>"
        return f":x: {escape_mrkdwn(redact(body))} {link}"


@dataclass(frozen=True)
class ModelAlert:
    """A champion decision: a challenger promoted or refused, a champion rolled back."""

    partition: str
    model: str  # the registered model
    version: str
    decision: str  # promoted | refused | rolled back
    reason: str
    run_id: str
    run_url: str
    timestamp: float

    @property
    def key(self) -> str:
        return f"model:{self.model}:{self.version}:{self.decision}:{self.run_id}"

    def text(self) -> str:
        """Slack mrkdwn; every value escaped (only the run link is markup) and redacted."""
        icon = {"promoted": ":trophy:", "refused": ":no_entry:"}.get(self.decision, ":leftwards_arrow_with_hook:")
        body = f"{self.decision}: `{self.model}` version {self.version} (partition `{self.partition}`): {self.reason}"
        link = f"<{escape_mrkdwn(redact(self.run_url))}|run {escape_mrkdwn(self.run_id[:8])}>"
        return f"{icon} {escape_mrkdwn(redact(body))} {link}"


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single ``write`` on an ``O_APPEND`` descriptor (no torn lines)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = (redact(json.dumps(record, default=str, sort_keys=True)) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # owner only: alerts quote data and errors
    try:
        if os.fstat(fd).st_mode & 0o077:  # a log made by an older version, or by hand: owner only again
            os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def post_webhook(url: str, text: str, event_id: str, timeout: float) -> str | None:
    """POST ``{"text": ...}`` (Slack incoming-webhook format) once; returns the error, or None when accepted."""
    secrets = url_secrets(url, True)  # a webhook's path is its token; requests quotes it in errors
    try:
        response = requests.post(url, json={"text": text}, headers={"X-Alert-Id": event_id}, timeout=timeout)
    except requests.RequestException as exc:
        return redact(f"{type(exc).__name__}: {exc}", secrets)
    if response.status_code < 300:
        return None
    return redact(f"HTTP {response.status_code}: {response.text[:200]}", secrets)


@dataclass
class DeliveryReport:
    """What one :meth:`Outbox.deliver` call did."""

    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    expired: list[str] = field(default_factory=list)
    pending: int = 0


class Outbox:
    """Alerts waiting for the webhook, in SQLite (one row per event id); owner-only, like the alert log."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = path
        # created owner-only before SQLite opens it (its -wal and -shm files take the same mode)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS outbox (event_id TEXT PRIMARY KEY, text TEXT NOT NULL, "
                "record TEXT NOT NULL, created REAL NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, "
                "next_attempt REAL NOT NULL, last_error TEXT, delivered REAL)"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)  # autocommit, one statement each
        try:
            yield conn
        finally:
            conn.close()

    def add(self, alert: CheckAlert | RunFailureAlert | ModelAlert, log_path: Path, webhook: bool) -> bool:
        """Queue ``alert`` (state ``pending``, or ``logged`` without a webhook) and log it; False if known."""
        record = {**asdict(alert), "event_id": alert.key, "text": alert.text()}
        row = (
            alert.key,
            alert.text(),
            redact(json.dumps(record, default=str)),
            time.time(),
            "pending" if webhook else "logged",
        )
        with self._connect() as conn:
            added = conn.execute(
                "INSERT OR IGNORE INTO outbox (event_id, text, record, created, state, attempts, next_attempt) "
                "VALUES (?, ?, ?, ?, ?, 0, 0)",
                row,
            ).rowcount
        if added:
            append_line(log_path, {**record, "webhook": "queued" if webhook else "not configured"})
        return bool(added)

    def state(self, event_id: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM outbox WHERE event_id = ?", (event_id,)).fetchone()
        return dict(row) if row else None

    def deliver(
        self,
        webhook_url: str,
        budget_seconds: float,
        timeout_seconds: float,
        backoff_seconds: float,
        max_backoff_seconds: float,
        expire_after_seconds: float,
    ) -> DeliveryReport:
        """POST due alerts, longest waiting first, while a full ``timeout_seconds`` still fits in ``budget_seconds``,
        until one POST fails (the webhook is down: the rest wait for a later call)."""
        report = DeliveryReport()
        deadline = time.monotonic() + budget_seconds
        with self._connect() as conn:
            due = conn.execute(
                # the longest waiting first: new alerts (next_attempt 0), then retries in the order they fell
                # due, so one alert failing on every tick cannot keep the others from ever being tried
                "SELECT event_id, text, created, attempts FROM outbox WHERE state = 'pending' AND next_attempt <= ? "
                "ORDER BY next_attempt, created, event_id",
                (time.time(),),
            ).fetchall()
        for event_id, text, created, attempts in due:
            if time.time() - created > expire_after_seconds:
                self._set(event_id, state="expired")
                log.error("alert %s expired undelivered after %d attempts: %s", event_id, attempts, text)
                report.expired.append(event_id)
                continue
            if deadline - time.monotonic() < timeout_seconds:
                # no POST with a timeout cut short to fit the budget: the webhook might accept it after
                # the cut and get it again on a later tick; the rest wait for the next call
                break
            error = post_webhook(webhook_url, text, event_id, timeout_seconds)
            if error is None:
                self._set(event_id, state="delivered", attempts=attempts + 1, delivered=time.time(), last_error=None)
                report.delivered.append(event_id)
                continue
            wait = min(backoff_seconds * 2**attempts, max_backoff_seconds)
            self._set(event_id, attempts=attempts + 1, next_attempt=time.time() + wait, last_error=error)
            log.warning("alert %s not delivered (%s); retry in %.0fs", event_id, error, wait)
            report.failed[event_id] = error
            break
        with self._connect() as conn:
            report.pending = conn.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        return report

    def _set(self, event_id: str, **values: Any) -> None:
        columns = ", ".join(f"{k} = ?" for k in values)
        with self._connect() as conn:
            conn.execute(f"UPDATE outbox SET {columns} WHERE event_id = ?", (*values.values(), event_id))  # noqa: S608
