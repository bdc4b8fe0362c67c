"""Every resource of the code location: locations, candle source and store, MLflow tracking, alerts.

Paths, hosts and credentials live in the nested :class:`Locations` resource, bound from the
environment and never settable from run config: Dagster lets a run's config override any field of a
top-level resource (the UI's launchpad offers exactly that to whoever reaches it), but a nested
resource's fields are not part of the run config schema (a test proves it).
:meth:`Locations.from_env` binds each field to its variable with ``EnvVar``, so the UI shows the
variable's name, never its value. The other resources' own fields only tune behaviour.

No `from __future__ import annotations` here: Dagster reads the field annotations.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dagster import ConfigurableResource, EnvVar, InitResourceContext, MetadataValue
from pydantic import Field, field_validator

from trading_assets import settings
from trading_assets.alerts import CheckAlert, ModelAlert, Outbox, RunFailureAlert
from trading_assets.calendars import TradingCalendar, get_calendar
from trading_assets.champions import ChampionCache
from trading_assets.defs.run_guard import refuse_environment_in_run_config
from trading_assets.execution import Costs, Execution, market_costs
from trading_assets.features import DEFAULT_FEATURE_SET, FeatureConfig, lead_in_bars
from trading_assets.partition import Partition
from trading_assets.redaction import redact, redacted_errors, url_secrets
from trading_assets.settings import LOCATION_VARS, data_dir, default_db_url, default_tracking_uri
from trading_assets.sources import CandleSource, build_source, known_source
from trading_assets.store import CandleStore
from trading_assets.timeframes import CALENDAR_PATTERN, NAME_PATTERN

if TYPE_CHECKING:
    import pandas as pd

    from trading_assets.features import FeatureContext
    from trading_assets.training.registry import Registry
    from trading_assets.training.tracking import MlflowTracker

UPBIT_URL = "https://api.upbit.com"
WEBUI_URL = "http://127.0.0.1:3000"


class GuardedResource(ConfigurableResource):
    """A resource that refuses, when a step sets it up, a run whose config reads the environment."""

    def setup_for_execution(self, context: InitResourceContext) -> None:
        refuse_environment_in_run_config(context.dagster_run)


class Locations(ConfigurableResource):
    """Paths, hosts and credentials. Unset fields fall back to their variable, then to the data folder."""

    db_url: str | None = Field(default=None, description="Candle store URL; default SQLite in the data folder")
    assets_path: str | None = Field(default=None, description="Base path or URL of the Parquet assets")
    files_dir: str | None = Field(default=None, description="Candle files of the files source")
    upbit_base_url: str | None = Field(default=None, description=f"Upbit REST API base URL; default {UPBIT_URL}")
    ccxt_api_url: str | None = Field(
        default=None, description="Public API URL of the ccxt exchange (a mirror); default the exchange's own"
    )
    mlflow_tracking_uri: str | None = Field(default=None, description="MLflow tracking and registry URI")
    alert_webhook_url: str | None = Field(default=None, description="Slack-compatible webhook (a secret)")
    alert_log_path: str | None = Field(default=None, description="JSON-lines alert log")
    alert_outbox_path: str | None = Field(
        default=None, description="SQLite outbox of alerts to deliver; default <data dir>/alerts_outbox.sqlite"
    )
    webui_url: str | None = Field(default=None, description=f"Base of run links in alerts; default {WEBUI_URL}")
    champion_cache: str | None = Field(
        default=None,
        description="Local copies of the champions' bundles (signals score from them); default <data dir>/champions",
    )
    optuna_storage: str | None = Field(
        default=None,
        description="Database of the tuning studies (an optuna RDB storage URL, e.g. the instance's PostgreSQL); "
        "default SQLite <data dir>/optuna.sqlite",
    )

    @classmethod
    def from_env(cls) -> "Locations":
        """Every field whose variable is set, bound to it with ``EnvVar`` (the rest take their defaults)."""
        return cls(**{field: EnvVar(var) for field, var in LOCATION_VARS.items() if settings.env(var)})

    def _get(self, field: str) -> str | None:
        """Given by the caller (the CLI), else this resource's field, else the variable."""
        return settings.given_locations().get(field) or getattr(self, field) or settings.env(LOCATION_VARS[field])

    def resolved_db_url(self) -> str:
        return self._get("db_url") or default_db_url()

    def resolved_assets_path(self) -> str:
        return self._get("assets_path") or str(data_dir() / "assets")

    def resolved_files_dir(self) -> Path:
        files_dir = self._get("files_dir")
        return Path(files_dir) if files_dir else data_dir() / "candle_files"

    def resolved_upbit_base_url(self) -> str:
        return self._get("upbit_base_url") or UPBIT_URL

    def resolved_ccxt_api_url(self) -> str | None:
        return self._get("ccxt_api_url")

    def resolved_tracking_uri(self) -> str:
        return self._get("mlflow_tracking_uri") or default_tracking_uri()

    def resolved_webhook(self) -> str | None:
        return self._get("alert_webhook_url")

    def resolved_alert_log(self) -> Path:
        log_path = self._get("alert_log_path")
        return Path(log_path) if log_path else data_dir() / "alerts.jsonl"

    def resolved_alert_outbox(self) -> Path:
        outbox_path = self._get("alert_outbox_path")
        return Path(outbox_path) if outbox_path else data_dir() / "alerts_outbox.sqlite"

    def resolved_webui_url(self) -> str:
        return self._get("webui_url") or WEBUI_URL

    def resolved_champion_cache(self) -> Path:
        path = self._get("champion_cache")
        return Path(path) if path else data_dir() / "champions"

    def resolved_optuna_storage(self) -> str:
        return self._get("optuna_storage") or f"sqlite:///{data_dir() / 'optuna.sqlite'}"


class CandleSourceResource(GuardedResource):
    """Selects and configures the candle source (see trading_assets.sources.SOURCES)."""

    locations: Locations
    kind: str = Field(
        default="synthetic",
        pattern=NAME_PATTERN,
        description="A source of trading_assets.sources.SOURCES: synthetic, upbit, ccxt, files, or one an extension "
        "registers; checked against the registry when the run starts",
    )
    upbit_requests_per_second: float = Field(default=8.0, description="Client-side request rate (Upbit allows 10/s)")
    upbit_max_retries: int = Field(default=5, description="Retries on HTTP 429/5xx and network errors")
    files_timezone: str = Field(
        default="UTC", description="Time zone of naive timestamps in candle files (e.g. America/New_York)"
    )
    files_adjusted: Literal["ignore", "use"] = Field(
        default="ignore",
        description="An 'Adj Close' column: 'ignore' it (raw prices, a warning says so) or 'use' it "
        "(open/high/low scaled by adj_close / close, close = adj_close)",
    )
    ccxt_exchange: str = Field(
        pattern=NAME_PATTERN, default="binance", description="ccxt exchange id for kind 'ccxt' (e.g. binance, kraken)"
    )
    ccxt_markets: dict[str, str] = Field(
        default_factory=dict,
        description="Symbol partition (QUOTE-BASE) -> ccxt market (BASE/QUOTE), e.g. {'USDT-BTC': 'BTC/USDT'}; "
        "a symbol without an entry is refused",
    )
    ccxt_options: dict[str, Any] = Field(
        default_factory=dict,
        description="ccxt exchange options, e.g. {'fetchMarkets': {'types': ['spot']}} for Binance spot only",
    )
    calendar: str = Field(
        pattern=CALENDAR_PATTERN,
        default="24/7",
        description="Trading calendar of the source's markets: '24/7' (crypto), 'FX' (Sunday 17:00 to Friday "
        "17:00 New York) or an exchange-calendars name such as XNYS (see trading_assets.calendars)",
    )
    symbol_calendars: dict[str, str] = Field(
        default_factory=dict, description="Per-symbol calendar overriding `calendar`, e.g. {'USD-SPY': 'XNYS'}"
    )
    synthetic_seed: int = Field(default=7, description="Seed of the synthetic generator")
    synthetic_edge: Literal["none", "persistent", "one_bar"] = Field(
        default="none",
        description="A planted edge in the synthetic candles (a known truth for the research loop): persistent "
        "(a hidden, slowly changing drift) or one_bar (AR(1) mean reversion of bar returns)",
    )
    synthetic_edge_strength: float = Field(
        default=0.0, ge=0, lt=1, description="Strength of the planted edge: its share of the bar-return sd, or -AR(1)"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Settings of a source that has no fields of its own, by name"
    )
    step_retries: int = Field(
        default=2, ge=0, description="raw_candles re-runs after a transient source error (network, 5xx, malformed)"
    )
    step_retry_seconds: float = Field(default=30.0, ge=0, description="Wait before such a re-run, doubled each time")

    @property
    def upbit_base_url(self) -> str:
        return self.locations.resolved_upbit_base_url()

    @property
    def files_dir(self) -> str:
        return str(self.locations.resolved_files_dir())

    @property
    def ccxt_api_url(self) -> str | None:
        return self.locations.resolved_ccxt_api_url()

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        return known_source(kind)

    def get_source(self) -> CandleSource:
        return build_source(self.kind, self)

    def calendar_for(self, symbol: str) -> TradingCalendar:
        """The trading calendar of ``symbol``: its own entry, else the source's."""
        return get_calendar(self.symbol_calendars.get(symbol, self.calendar))


class CandleStoreResource(GuardedResource):
    """The SQL candle store at ``locations.db_url`` ($TRADING_DB_URL, else SQLite in the data folder)."""

    locations: Locations
    refresh: bool = Field(
        default=False,
        description="Fetch the requested window again from the source, replacing stored candles that changed "
        "(nothing stored is deleted)",
    )
    refetch_bars: int = Field(
        default=3,
        ge=0,
        description="Bars at the end of the collected span fetched again by every incremental collection, so "
        "late or corrected candles replace what was stored (or filled)",
    )

    refetch_breaks: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Breaks inside the window (gaps longer than max_fill_bars) asked for again on each collection, "
        "newest first: a hole kept inside the recorded coverage fills without --refresh",
    )

    def get_store(self) -> CandleStore:
        return CandleStore(self.locations.resolved_db_url())


class MlflowResource(GuardedResource):
    """Where training runs are tracked: one MLflow run per materialized partition."""

    locations: Locations  # the tracking URI: $MLFLOW_TRACKING_URI, else SQLite in the data dir
    experiment: str = Field(default="trading_assets", description="MLflow experiment name")

    def resolved_uri(self) -> str:
        return self.locations.resolved_tracking_uri()

    def run_link(self, experiment_id: str, run_id: str) -> Any:
        """Where to see a run, without the URI's credentials."""
        uri = redact(self.resolved_uri())
        if uri.startswith(("http://", "https://")):
            return MetadataValue.url(f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}")
        return f"run {run_id} in {uri} (browse with: mlflow ui --backend-store-uri <MLFLOW_TRACKING_URI>)"

    def champion_cache(self) -> ChampionCache:
        """The local champion bundles: what scoring reads, with no tracking server."""
        return ChampionCache(self.locations.resolved_champion_cache())

    def registry(self) -> "Registry":
        """Aliases and evidence in the model registry, and the champion cache they fill."""
        from trading_assets.training.registry import Registry

        return Registry(self.resolved_uri(), self.champion_cache())

    @contextmanager
    def open_run(
        self, name: str, tags: dict[str, str], dagster_run_alive: Callable[[str], bool] | None = None
    ) -> Iterator["MlflowTracker"]:
        """A tracked run (ends FINISHED, or FAILED on error); fails before any work if the store is unusable.

        With ``dagster_run_alive``, first ends as FAILED the runs of the same partition and asset that a
        killed Dagster run left RUNNING. An error that quotes the tracking URI's credentials leaves redacted.
        """
        from trading_assets.training.tracking import MlflowTracker, connect, end_stale_runs

        uri = self.resolved_uri()
        with redacted_errors(url_secrets(uri)):
            client, experiment_id = connect(uri, self.experiment)
            if dagster_run_alive is not None:
                end_stale_runs(client, experiment_id, tags, dagster_run_alive)
            with MlflowTracker.run(client, uri, experiment_id, name, tags) as tracker:
                yield tracker


class AlertResource(GuardedResource):
    """How alert delivery behaves; where alerts go is ``locations`` (webhook, log file, outbox, UI links)."""

    locations: Locations
    tick_budget_seconds: float = Field(
        default=20.0, gt=0, le=45, description="Most seconds one sensor tick spends (Dagster abandons a tick at 60)"
    )
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, description="Timeout of one webhook POST")
    backoff_seconds: float = Field(
        default=30.0, ge=0, description="Delay before retrying an undelivered alert, doubled"
    )
    max_backoff_seconds: float = Field(default=900.0, ge=0, description="Longest delay between two attempts")
    expire_after_seconds: float = Field(
        default=86400.0,
        gt=0,
        description="An alert undelivered this long after it was raised is dropped (logged)",
    )
    dead_run_grace_seconds: float = Field(
        default=60.0,
        ge=0,
        description="A STARTED run whose worker process is gone and that logged nothing for this long is marked failed",
    )

    def resolved_webhook(self) -> str | None:
        return self.locations.resolved_webhook()

    def resolved_log_path(self) -> Path:
        return self.locations.resolved_alert_log()

    def outbox(self) -> Outbox:
        return Outbox(self.locations.resolved_alert_outbox())

    def run_url(self, run_id: str) -> str:
        return redact(f"{self.locations.resolved_webui_url().rstrip('/')}/runs/{run_id}")

    def raise_alert(self, alert: CheckAlert | RunFailureAlert | ModelAlert) -> bool:
        """Queue ``alert`` once (by event id) and log it; False when it was queued before."""
        return self.outbox().add(alert, self.resolved_log_path(), self.resolved_webhook() is not None)

    def raise_model_alert(
        self, partition: Partition, version: str, decision: str, reason: str, run_id: str = "cli"
    ) -> bool:
        """A champion decision (``promoted``, ``refused``, ``rolled back``) on ``partition``'s registered model, as
        an alert; ``run_id``: the Dagster run that took it (linked), or who did (``cli``)."""
        from trading_assets.training.tracking import registered_model_name

        url = self.run_url(run_id) if run_id != "cli" else ""
        model = registered_model_name(partition)
        return self.raise_alert(ModelAlert(partition.key, model, version, decision, reason, run_id, url, time.time()))


class ExecutionResource(GuardedResource):
    """The execution model (trading_assets.execution), declared once for the label the features store, the
    models' training, predictions, evaluation, the backtest and the leaderboard."""

    fill: Literal["open", "close"] = Field(
        default=Execution.fill,
        description="Price that fills a decision: the open or the close of the bar delay_bars later",
    )
    delay_bars: int = Field(
        default=Execution.delay_bars,
        ge=1,
        le=1000,
        description="Bars from the decision bar's close to the fill (1: next bar)",
    )
    horizon: int = Field(
        default=Execution.horizon, ge=1, le=10_000, description="Bars a position is held: the label's length"
    )
    side: Literal["long_only", "long_short"] = Field(
        default=Execution.side, description="long_only (spot markets cannot short) or long_short"
    )
    cost_aware: bool = Field(
        default=Execution.cost_aware,
        description="Enter or flip only when the forecast beats the round-trip cost, otherwise hold",
    )
    fee_bp: float | None = Field(
        default=None, ge=0, le=1000, description="Per-side fee in bp; default the market's (KRW 5: Upbit's KRW fee)"
    )
    half_spread_bp: float | None = Field(
        default=None, ge=0, le=1000, description=f"Per-side half-spread in bp; default {Costs.half_spread_bp}"
    )
    slippage_bp: float | None = Field(
        default=None, ge=0, le=1000, description=f"Per-side slippage in bp; default {Costs.slippage_bp}"
    )

    def for_symbol(self, symbol: str) -> Execution:
        """The execution of ``symbol``; unset costs from its market's defaults (execution.MARKET_COSTS)."""
        base = market_costs(symbol)
        costs = Costs(
            fee_bp=base.fee_bp if self.fee_bp is None else self.fee_bp,
            half_spread_bp=base.half_spread_bp if self.half_spread_bp is None else self.half_spread_bp,
            slippage_bp=base.slippage_bp if self.slippage_bp is None else self.slippage_bp,
        )
        return Execution(self.fill, self.delay_bars, self.horizon, self.side, self.cost_aware, costs).validate()


class FeatureConfigResource(GuardedResource):
    """The feature set and its preprocessing, declared once for every step that needs them: ``raw_candles``
    loads the lead-in its clipping needs, ``features`` builds it, the warm-up check recomputes it. A set that
    reads other partitions (coarser timeframes, a reference symbol) reads their stored frames at ``locations``."""

    locations: Locations

    feature_set: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Named feature set of trading_assets.features.FEATURE_SETS; none: the code location's "
        f"(TRADING_FEATURE_SET, default {DEFAULT_FEATURE_SET!r}), or {DEFAULT_FEATURE_SET!r} for a partition it "
        "does not serve (a timeframe without its coarser timeframes, a market without a reference symbol)",
    )
    ffill_limit: int = Field(
        default=FeatureConfig.ffill_limit, ge=0, description="Forward-fill at most this many missing values in a row"
    )
    clip_window: int = Field(
        default=FeatureConfig.clip_window, ge=10, description="Bars per time-aligned block of the median/MAD clipping"
    )
    clip_k: float = Field(default=FeatureConfig.clip_k, gt=0, description="Clip at median +- k x MAD-sigma")
    max_polluted_fraction: float = Field(
        default=FeatureConfig.max_polluted_fraction,
        ge=0,
        le=1,
        description="Most non-numeric cells per column before the step stops",
    )

    def config(self, partition: Partition | None = None) -> FeatureConfig:
        """The feature set and preprocessing for ``partition`` (see :meth:`set_for`)."""
        values = {f: getattr(self, f) for f in FeatureConfig.__dataclass_fields__ if f != "feature_set"}
        return FeatureConfig(**values, feature_set=self.set_for(partition))

    def set_for(self, partition: Partition | None) -> str:
        """The set configured for the run; else the code location's where it serves ``partition`` (or for no
        partition), else the default set. A configured set that does not serve a partition stops its step."""
        from trading_assets.defs.context import serves

        if self.feature_set:
            return self.feature_set
        declared = settings.feature_set()
        return declared if partition is None or serves(declared, partition) else DEFAULT_FEATURE_SET

    def lead_in_bars(self) -> int:
        """Bars of indicators the features need before the span."""
        return lead_in_bars(self.config())

    def context(self, partition: Partition, name: str, indicators: "pd.DataFrame") -> "FeatureContext | None":
        """What the feature set ``name`` reads from other partitions for ``partition``'s ``indicators`` (see
        defs/context), or None."""
        from trading_assets.defs.context import load_context

        return load_context(self.locations, partition, name, indicators, self.ffill_limit)


class IncrementalResource(GuardedResource):
    """How the data assets refresh: by extending their previous output with the bars that changed (the warm-up
    and lead-in those need recomputed with them), or in full. A new code version, ``--refresh`` and ``--force``
    compute in full; so does a window that grows backwards or another recipe (see trading_assets.incremental)."""

    locations: Locations
    enabled: bool = Field(default=True, description="Extend the previous output when it allows; False: compute all")
    verify_every: int = Field(
        default=10,
        ge=1,
        description="Every Nth incremental refresh is also computed in full and compared at the splice point "
        "(the incremental_matches_full checks); 1: every time",
    )
