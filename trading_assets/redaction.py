"""Text that leaves the process: secrets hidden (logs, alerts, metadata, tags, errors), Slack markup escaped.

Call sites redact what they write; on top of that, :func:`install_log_redaction` puts a
:class:`RedactingFilter` on every handler of the root logger and of the libraries that log URLs and
headers (dagster, urllib3, requests, ccxt, mlflow), so nothing logged, also with ``-v``, leaves unredacted.

Secrets are (1) the credentials inside any URL (``user:password@``), secret query parameters
(``token=``, ``key=``, ...) and the token path of known webhook services (Slack
``/services/T../B../XXX``, Discord ``/api/webhooks/<id>/<token>``, ...), found by pattern; and
(2) the exact secret parts of the environment's secret-bearing settings (:data:`SECRET_ENV_VARS`:
the webhook URL's path, the password of the database and MLflow URLs), which also catches them
where a library quotes them without the URL around them (``requests`` prints only the path).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import quote, unquote, urlsplit

from trading_assets import settings

MASK = "***"
# Variables whose values hold credentials: their secret parts are hidden wherever they appear.
SECRET_ENV_VARS: dict[str, bool] = {  # name -> the URL's path is itself the secret (webhooks)
    "TRADING_ALERT_WEBHOOK_URL": True,
    "TRADING_DB_URL": False,
    "MLFLOW_TRACKING_URI": False,
    "DAGSTER_PG_PASSWORD": False,
}
# Every other location may carry credentials in its URL (a mirror or a bucket behind a password).
LOCATION_ENV_VARS = ("TRADING_CCXT_API_URL", "TRADING_UPBIT_BASE_URL", "TRADING_ASSETS_PATH", "DAGSTER_WEBUI_URL")
_RUNTIME_SECRETS: set[str] = set()  # secrets given on a command line (backfill --url), for this process
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>|`]+")
_USERINFO = re.compile(r"(://)[^/\s]*@")  # up to the last @: a password may hold one
_SECRET_QUERY = re.compile(
    r"(?i)([?&;](?:access_token|token|api_key|apikey|key|secret|password|passwd|pwd|sig|signature|auth)=)[^&#\s'\"]+"
)
_WEBHOOK_PATH = re.compile(r"(?i)(/(?:services|api/webhooks|webhookb2|hooks|webhooks?))/[^\s'\"?#<>|`)]+")
_TELEGRAM_PATH = re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+")
_TELEGRAM_TOKEN = re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b")  # a bot token anywhere
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{8,}")
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


def register_secrets(secrets: Iterable[str]) -> None:
    """Hide ``secrets`` too, for the rest of this process (credentials given on a command line)."""
    _RUNTIME_SECRETS.update(s for s in secrets if len(s) >= _MIN_SECRET)


def environment_secrets() -> list[str]:
    """The secret parts of the secret-bearing environment variables that are set, of the locations given on
    a command line, and the registered ones."""
    out: list[str] = list(_RUNTIME_SECRETS)
    for name, path_is_secret in [*SECRET_ENV_VARS.items(), *((v, False) for v in LOCATION_ENV_VARS)]:
        value = settings.env(name)
        if value:
            out += url_secrets(value, path_is_secret)
    for field, value in settings.given_locations().items():
        out += url_secrets(value, SECRET_ENV_VARS.get(settings.LOCATION_VARS[field], False))
    return out


def redact(text: object, secrets: Iterable[str] = ()) -> str:
    """``text`` with every credential hidden: ``secrets``, the environment's secrets, URL passwords and tokens."""
    out = str(text)
    for secret in sorted({*environment_secrets(), *secrets}, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET:
            out = out.replace(secret, MASK)
    out = _AUTH_HEADER.sub(rf"\1\2{MASK}", _TELEGRAM_TOKEN.sub(MASK, out))
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
    url = _TELEGRAM_PATH.sub(rf"\1{MASK}", url)
    return _WEBHOOK_PATH.sub(rf"\1/{MASK}", url)


class RedactingFilter(logging.Filter):
    """Redacts a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


REDACTED_LOGGERS = ("", "dagster", "urllib3", "requests", "ccxt", "mlflow")
_FILTER = RedactingFilter()


def install_log_redaction(*extra: logging.Handler) -> None:
    """Put the redacting filter on every handler of the root logger and of :data:`REDACTED_LOGGERS` (and on
    ``extra`` handlers): records propagating from any library pass one of them."""
    handlers = [h for name in REDACTED_LOGGERS for h in logging.getLogger(name).handlers] + list(extra)
    for handler in handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


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
