"""Text that leaves the process: secrets hidden (logs, alerts, metadata, tags, errors), Slack markup escaped.

Secrets are (1) the credentials inside any URL (``user:password@``), secret query parameters
(``token=``, ``key=``, ...) and the token path of known webhook services (Slack
``/services/T../B../XXX``, Discord ``/api/webhooks/<id>/<token>``, ...), found by pattern; and
(2) the exact secret parts of the environment's secret-bearing settings (:data:`SECRET_ENV_VARS`:
the webhook URL's path, the password of the database and MLflow URLs), which also catches them
where a library quotes them without the URL around them (``requests`` prints only the path).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
# Variables whose values hold credentials: their secret parts are hidden wherever they appear.
SECRET_ENV_VARS: dict[str, bool] = {  # name -> the URL's path is itself the secret (webhooks)
    "TRADING_ALERT_WEBHOOK_URL": True,
    "TRADING_DB_URL": False,
    "MLFLOW_TRACKING_URI": False,
    "DAGSTER_PG_PASSWORD": False,
}
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>|`]+")
_USERINFO = re.compile(r"(://)[^/@\s]+@")
_SECRET_QUERY = re.compile(
    r"(?i)([?&;](?:access_token|token|api_key|apikey|key|secret|password|passwd|pwd|sig|signature|auth)=)[^&#\s'\"]+"
)
_WEBHOOK_PATH = re.compile(r"(?i)(/(?:services|api/webhooks|webhookb2|hooks|webhooks?))/[^\s'\"?#<>|`)]+")
_MIN_SECRET = 4  # shorter fragments would mask ordinary words


def url_secrets(url: str, path_is_secret: bool = False) -> list[str]:
    """The secret parts of ``url``: its user info and password, and its path and query when they are the secret."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    if not parts.scheme:  # a bare value (a password variable): the whole value is the secret
        return [url]
    out: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        out.append(userinfo)
        if parts.password:
            out += [parts.password, unquote(parts.password), quote(unquote(parts.password), safe="")]
    if path_is_secret:
        out += [p for p in (parts.path.rstrip("/"), parts.query) if p and p != "/"]
    return [s for s in out if len(s) >= _MIN_SECRET]


def environment_secrets() -> list[str]:
    """The secret parts of the secret-bearing environment variables that are set."""
    out: list[str] = []
    for name, path_is_secret in SECRET_ENV_VARS.items():
        value = os.environ.get(name)
        if value:
            out += url_secrets(value, path_is_secret)
    return out


def redact(text: object, secrets: Iterable[str] = ()) -> str:
    """``text`` with every credential hidden: ``secrets``, the environment's secrets, URL passwords and tokens."""
    out = str(text)
    for secret in sorted({*environment_secrets(), *secrets}, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET:
            out = out.replace(secret, MASK)
    return _URL.sub(lambda m: _redact_url_text(m.group(0)), out)


def redact_url(url: str, path_is_secret: bool = False) -> str:
    """A URL safe to show: no credentials, and no path when the path is the secret (a webhook)."""
    if path_is_secret:
        parts = urlsplit(url)
        return redact(f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/{MASK}")
    return redact(url)


def _redact_url_text(url: str) -> str:
    url = _USERINFO.sub(rf"\1{MASK}@", url)
    url = _SECRET_QUERY.sub(rf"\1{MASK}", url)
    return _WEBHOOK_PATH.sub(rf"\1/{MASK}", url)


class RedactedError(RuntimeError):
    """An error whose text (or whose cause's text) held a secret: the same message, redacted."""


@contextmanager
def redacted_errors(secrets: Iterable[str] = ()) -> Iterator[None]:
    """Re-raise an exception whose text or cause chain shows a secret as :class:`RedactedError`, cleaned.

    Exceptions without a secret pass through unchanged (their type matters to retries and callers).
    """
    secrets = list(secrets)
    try:
        yield
    except Exception as exc:
        chain = list(_chain(exc))
        texts = [f"{type(e).__name__}: {e}" for e in chain]
        cleaned = [redact(t, secrets) for t in texts]
        if cleaned != texts:
            raise RedactedError(" <- caused by ".join(cleaned)) from None
        raise


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def escape_mrkdwn(text: object) -> str:
    """``text`` as literal Slack mrkdwn: ``&``, ``<``, ``>`` escaped, so no ``<!channel>`` or ``<url|label>``
    link can come from a symbol, a column name or an error message."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
