"""``trading-assets``: the project's command line (materialize partitions, manage symbols).

The Dagster instance is the one ``$DAGSTER_HOME`` points at; without it, a local SQLite instance
in ``<data dir>/dagster_home`` (the embedded default for demos).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from trading_assets import settings
from trading_assets.app import live
from trading_assets.app.options import split_csv
from trading_assets.defs.instance import first_use_lock, get_instance, instance_home
from trading_assets.defs.partitions import (
    DEFAULT_SYMBOLS,
    SYMBOL_PARTITIONS_NAME,
    add_symbols,
    partition_key,
)
from trading_assets.processes import exclusive
from trading_assets.redaction import install_log_redaction, redact, register_secrets, url_secrets
from trading_assets.settings import data_dir, default_tracking_uri
from trading_assets.sources import SOURCES
from trading_assets.timeframes import DEFAULT_SPAN_DAYS, TIMEFRAMES, span_error, to_utc, validate_symbol

if TYPE_CHECKING:
    from dagster import DagsterInstance


def _symbols(value: str) -> list[str]:
    try:
        return [validate_symbol(s) for s in split_csv(value)]
    except ValueError as exc:
        fail_usage(str(exc))


def _timeframes(value: str) -> list[str]:
    tfs = split_csv(value)
    bad = [t for t in tfs if t not in TIMEFRAMES]
    if bad:
        fail_usage(f"unknown timeframe(s) {bad}; expected some of {', '.join(TIMEFRAMES)}")
    return tfs


def selection_string(selection: str) -> str:
    """``+features,raw_candles`` -> Dagster's ``+key:features or key:raw_candles``; full syntax passes through."""
    if ":" in selection or " " in selection.strip():
        return selection
    parts = []
    for item in split_csv(selection):
        name = item.strip("+")
        parts.append(item[: len(item) - len(item.lstrip("+"))] + f"key:{name}" + item[len(item.rstrip("+")) :])
    return " or ".join(parts)


def window_error(days: float | None, end: str | None, bars: int | None = None) -> str | None:
    """Why ``--days`` / ``--bars`` / ``--end`` cannot make a candle window, or None."""
    if days is not None and bars is not None:
        return "give the span with --days or --bars, not both"
    if days is not None and not (days > 0 and math.isfinite(days)):
        return f"--days must be a positive number of days, got {days}"
    if bars is not None and bars < 1:
        return f"--bars must be a positive number of bars, got {bars}"
    if end is not None:
        try:
            to_utc(end)
        except (ValueError, TypeError) as exc:
            return f"--end {end!r} is not an ISO 8601 time (e.g. 2026-10-01 or 2026-10-01T12:00:00Z): {exc}"
    return None


def source_error(source: str | None, upbit_url: str | None, requests_per_second: float | None) -> str | None:
    """Why the source options name no registered source or contradict each other, or None."""
    if source is not None and source not in SOURCES:
        return f"--source {source!r} is not a registered source; expected one of {', '.join(SOURCES)}"
    if (upbit_url or requests_per_second is not None) and source not in (None, "upbit"):
        return f"--upbit-url and --requests-per-second need --source upbit, not --source {source}"
    if upbit_url and not upbit_url.startswith(("http://", "https://")):
        return f"--upbit-url must be an http(s) URL, got {upbit_url!r}"
    if requests_per_second is not None and not requests_per_second > 0:
        return f"--requests-per-second must be positive, got {requests_per_second}"
    return None


def research_error(models: list[str] | None, feature_set: str | None) -> str | None:
    """Why ``--models`` or ``--feature-set`` name nothing registered (the choices are read now), or None."""
    from trading_assets.features import FEATURE_SETS
    from trading_assets.training.config import MODELS

    unknown = [m for m in models or () if m not in MODELS]
    if unknown or models == []:
        return f"--models {','.join(unknown) or '(none)'}: unknown; expected some of {', '.join(MODELS)}"
    if feature_set is not None and feature_set not in FEATURE_SETS:
        return f"--feature-set {feature_set!r} is not a feature set; expected one of {', '.join(FEATURE_SETS)}"
    return None


def lent_partitions(feature_set: str | None, symbols: list[str], timeframes: list[str]) -> dict[tuple[str, str], str]:
    """The other partitions the feature set reads for ``symbols`` x ``timeframes`` (see FeatureSet), each with the
    last data asset it needs: its coarser timeframes' ``indicators``, its reference symbol's ``raw_candles``. The
    set given (``--feature-set``) must serve every partition: ValueError names a timeframe it does not serve or a
    market without a reference symbol. None: the code location's set, where it serves (the default set elsewhere)."""
    from trading_assets import settings
    from trading_assets.defs.context import serves
    from trading_assets.features import feature_set as named_set
    from trading_assets.partition import Partition

    strict, name = feature_set is not None, feature_set or settings.feature_set()
    features, lent = named_set(name), {}
    for symbol in symbols:
        for timeframe in timeframes:
            partition = Partition(symbol, timeframe)
            if not strict and not serves(name, partition):
                continue
            for asset, other in features.reads(partition, settings.reference_symbols()):
                if lent.get((other.symbol, other.timeframe)) != "indicators":  # indicators include the candles
                    lent[(other.symbol, other.timeframe)] = asset
    return lent


def research_run_config(models: list[str] | None, feature_set: str | None, tuned: bool = False) -> dict[str, Any]:
    """Run config for the research loop's models, the feature set and whether trained_model and predictions apply
    the tuned settings (what is not given keeps its default)."""
    run_config: dict[str, Any] = {}
    if models:
        run_config["ops"] = {"predictions": {"config": {"models": models}}}
    if tuned:
        ops = run_config.setdefault("ops", {})
        ops.setdefault("predictions", {"config": {}})["config"]["tuned"] = True
        ops["trained_model"] = {"config": {"tuned": True}}
    if feature_set:
        run_config["resources"] = {"feature_config": {"config": {"feature_set": feature_set}}}
    return run_config


def merge_run_config(*configs: dict[str, Any]) -> dict[str, Any]:
    """``configs`` merged section by section (``ops``, ``resources``: one entry per op or resource)."""
    merged: dict[str, Any] = {}
    for config in configs:
        for section, entries in config.items():
            merged.setdefault(section, {}).update(entries)
    return merged


def fail_usage(message: str) -> NoReturn:
    """Exit 2 with one line on stderr (before anything is launched)."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _instance(symbols: list[str] | None = None) -> DagsterInstance:
    """:func:`get_instance`, after checking the code-location settings its modules read (exit 2 on a bad one)."""
    usage_error(settings.location_settings_error())
    return get_instance(symbols)


def usage_error(message: str | None) -> None:
    """:func:`fail_usage` when ``message`` is set."""
    if message:
        fail_usage(message)


def market_run_config(
    days: float | None = None,
    end: str | None = None,
    source: str | None = None,
    bars: int | None = None,
    refresh: bool = False,
    requests_per_second: float | None = None,
) -> dict[str, Any]:
    """Run config for the candle window, source and refresh; what is not given keeps its default.

    ``requests_per_second`` implies ``source="upbit"``. Locations (``--files-dir``, ``--upbit-url``) are not
    run config (the run's config is stored and shown): they reach the in-process runs through
    :func:`trading_assets.settings.given`.
    """
    usage_error(window_error(days, end, bars))
    window = {k: v for k, v in {"days": days, "bars": bars, "end": end}.items() if v is not None}
    run_config: dict[str, Any] = {"ops": {"raw_candles": {"config": window}}} if window else {}
    if requests_per_second is not None:
        source = source or "upbit"
    if source:
        resource: dict[str, Any] = {"kind": source}
        if requests_per_second is not None:
            resource["upbit_requests_per_second"] = requests_per_second
        run_config.setdefault("resources", {})["candle_source"] = {"config": resource}
    if refresh:  # fetched again, so computed again in full
        run_config.setdefault("resources", {})["candle_store"] = {"config": {"refresh": True}}
        run_config["resources"]["incremental"] = {"config": {"enabled": False}}
    return run_config


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Show Dagster's event log and debug output on the terminal")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """trading_assets: candles -> indicators -> features -> models, on Dagster.

    Start with `trading-assets materialize`, then `trading-assets ui` to browse the result (the web UI on
    the embedded instance; `dagster dev` needs DAGSTER_HOME set, see README).
    """
    ctx.obj = {"verbose": verbose}
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.captureWarnings(not verbose)  # library warnings go to the log file, not the terminal
    install_log_redaction()  # every handler hides credentials, whoever logs them


def _log_path(command: str) -> Path:
    from trading_assets.app.progress import new_log_path

    return new_log_path(data_dir() / "logs", command)


SPAN_HELP = (
    "Requested span in days (default per timeframe: "
    + ", ".join(f"{days:g} for {tf}" for tf, days in DEFAULT_SPAN_DAYS.items())
    + ")",
    "Requested span in bars of each timeframe, instead of --days",
)


@main.command()
@click.option("--symbols", default=",".join(DEFAULT_SYMBOLS), show_default=True, help="Comma-separated markets")
@click.option("--timeframes", default="1m", show_default=True, help="Comma-separated timeframes")
@click.option("--days", default=None, type=float, help=SPAN_HELP[0])
@click.option("--bars", default=None, type=int, help=SPAN_HELP[1])
@click.option("--end", default=None, help="Exclusive end of the span (ISO 8601, UTC); default now")
@click.option(
    "--source",
    default=None,
    help="Candle source: synthetic, upbit, ccxt, files or one an extension registers (trading_assets.sources."
    "SOURCES, read when the command runs); default: the resource's configuration, synthetic",
)
@click.option("--files-dir", default=None, help="Directory of candle files for --source files")
@click.option("--upbit-url", default=None, help="Upbit REST API base URL (implies --source upbit)")
@click.option(
    "--requests-per-second", type=float, default=None, help="Upbit client request rate (implies --source upbit)"
)
@click.option(
    "--refresh",
    is_flag=True,
    help="Fetch the whole window again from the source: corrected or late candles replace stored ones "
    "(nothing stored is deleted, also when the fetch fails)",
)
@click.option(
    "--force",
    is_flag=True,
    help="Recompute every asset; by default a partition whose candles did not change since its assets were "
    "computed (by this code version) only collects and checks the candles",
)
@click.option(
    "--models",
    default=None,
    help="Comma-separated models the research loop evaluates on equal terms (trading_assets.training.config.MODELS; "
    "default: the predictions config's, bilstm,linear); given, the partitions are computed again (as --force)",
)
@click.option(
    "--feature-set",
    default=None,
    help="Feature set of every step (trading_assets.features.FEATURE_SETS; default 'default'); given, the "
    "partitions are computed again (as --force)",
)
@click.option(
    "--tuned",
    is_flag=True,
    help="trained_model and predictions apply the best settings `trading-assets tune` found for each model; the "
    "partitions are computed again (as --force)",
)
@click.option(
    "--assets",
    "which",
    type=click.Choice(["all", "data"]),
    default="all",
    show_default=True,
    help="all: candles to trained model, walk-forward evaluation and leaderboard; data: candles to features",
)
@click.pass_context
def materialize(
    ctx: click.Context,
    symbols: str,
    timeframes: str,
    days: float | None,
    bars: int | None,
    end: str | None,
    source: str | None,
    files_dir: str | None,
    upbit_url: str | None,
    requests_per_second: float | None,
    refresh: bool,
    force: bool,
    models: str | None,
    feature_set: str | None,
    tuned: bool,
    which: str,
) -> None:
    """Materialize the assets (and their checks) in-process for symbols x timeframes, with live progress.

    What is up to date is not recomputed (see ``materialize_partition``; ``--force`` recomputes it).
    """
    usage_error(settings.location_settings_error())  # the definitions read them
    model_list = None if models is None else split_csv(models)
    usage_error(
        window_error(days, end, bars)
        or source_error(source, upbit_url, requests_per_second)
        or research_error(model_list, feature_set)
    )
    symbol_list, tf_list = _symbols(symbols), _timeframes(timeframes)
    try:
        lent = lent_partitions(feature_set, symbol_list, tf_list)
    except ValueError as error:  # a timeframe the set does not serve, a market without a reference symbol
        usage_error(f"--feature-set {feature_set}: {error}")
    usage_error(next(filter(None, (span_error(tf, days, bars) for tf in {*tf_list, *(t for _, t in lent)})), None))
    if upbit_url:
        register_secrets(url_secrets(upbit_url))  # never shown, also in errors
    source = source or ("upbit" if upbit_url else None)
    if lent and end is None:  # one end for what a set reads and what reads it: their last bars meet
        end = datetime.now(timezone.utc).replace(second=0, microsecond=0).isoformat()
    run_config = merge_run_config(
        market_run_config(days, end, source, bars, refresh, requests_per_second),
        research_run_config(model_list if which == "all" else None, feature_set, tuned and which == "all"),
    )
    force = force or model_list is not None or feature_set is not None or tuned  # what depends on them: again
    if force:  # in full, not extending the previous outputs
        run_config = merge_run_config(run_config, {"resources": {"incremental": {"config": {"enabled": False}}}})
    with settings.given(files_dir=files_dir and str(Path(files_dir).resolve()), upbit_base_url=upbit_url):
        _materialize(ctx.obj["verbose"], symbol_list, tf_list, run_config, force, which, lent)


def _materialize(
    verbose: bool,
    symbol_list: list[str],
    tf_list: list[str],
    run_config: dict[str, Any],
    force: bool,
    which: str,
    lent: dict[tuple[str, str], str],
) -> None:
    """Run ``which`` assets of every partition, then (all) the leaderboard; print where things are. The partitions
    the feature set reads (``lent``) first get their data assets up to the one it reads."""
    from dagster import AssetKey

    from trading_assets.app.progress import progress
    from trading_assets.defs import defs
    from trading_assets.defs.runs import execute, materialize_partition

    instance = _instance([*symbol_list, *(s for s, _ in lent if s not in symbol_list)])
    job = defs.resolve_job_def("full_pipeline_job" if which == "all" else "market_data_job")
    keys = [str(partition_key(symbol, timeframe)) for symbol in symbol_list for timeframe in tf_list]
    lent_keys = {str(partition_key(*p)): asset for p, asset in lent.items()}
    log_path = _log_path("materialize")
    click.echo(f"Dagster event log: {log_path}")
    labels = [*lent_keys, *(k for k in keys if k not in lent_keys), *(["leaderboard"] if which == "all" else [])]
    with progress(labels, log_path, verbose) as reporter:
        for key, last in lent_keys.items():  # what the feature set reads: collected before the partitions reading it
            selection = [AssetKey("raw_candles"), *([AssetKey("indicators")] if last == "indicators" else [])]
            execute(job, instance, reporter, key, run_config, partition_key=key, asset_selection=selection)
        for key in keys:
            materialize_partition(job, instance, reporter, key, run_config, force)
        board = None
        if which == "all":
            leaderboard_job = defs.resolve_job_def("leaderboard_job")
            board = execute(leaderboard_job, instance, reporter, "leaderboard", {})
    failed = reporter.failed
    base = data_dir() / "assets"
    click.echo(f"Parquet outputs: {base}/<asset>/<symbol>/<timeframe>.parquet")
    click.echo(f"Dagster instance: {instance.root_directory}")
    if which == "all":
        click.echo(f"MLflow store: {redact(default_tracking_uri())} (models trading_assets-<symbol>-<timeframe>)")
    if board is not None and board.success:
        meta = board.asset_materializations_for_node("leaderboard")[0].metadata
        click.echo(f"\nLeaderboard: {meta['verdict'].value}\n{meta['top'].value}")
    if failed:
        click.echo(f"failed partitions: {', '.join(failed)}", err=True)
        sys.exit(1)


@main.command()
@click.option("--symbols", default=",".join(DEFAULT_SYMBOLS), show_default=True, help="Comma-separated markets")
@click.option("--timeframes", default="1m", show_default=True, help="Comma-separated timeframes")
@click.option(
    "--models", default="bilstm", show_default=True, help="Comma-separated models to tune (each with a search space)"
)
@click.option("--trials", default=20, show_default=True, type=click.IntRange(1, 10_000), help="Trials per model in all")
@click.option("--inner-folds", default=3, show_default=True, type=click.IntRange(1, 20), help="Folds per trial")
@click.pass_context
def tune(ctx: click.Context, symbols: str, timeframes: str, models: str, trials: int, inner_folds: int) -> None:
    """Tune models per partition on its stored features: an optuna study each (resumed when stored), scored by
    walk-forward validation before the research loop's first test fold. Then `materialize --tuned` uses them."""
    usage_error(settings.location_settings_error())  # the definitions read them
    from trading_assets.app.progress import progress
    from trading_assets.defs import defs
    from trading_assets.defs.runs import execute
    from trading_assets.training.config import MODELS

    model_list = split_csv(models)
    usage_error(research_error(model_list, None))
    flat = [m for m in model_list if not MODELS[m].search_space]
    usage_error(f"--models {','.join(flat)}: nothing to tune (no search space)" if flat else None)
    symbol_list, tf_list = _symbols(symbols), _timeframes(timeframes)
    instance = _instance(symbol_list)
    config = {"models": model_list, "trials": trials, "inner_folds": inner_folds}
    keys = [str(partition_key(symbol, timeframe)) for symbol in symbol_list for timeframe in tf_list]
    log_path = _log_path("tune")
    click.echo(f"Dagster event log: {log_path}")
    with progress(keys, log_path, ctx.obj["verbose"]) as reporter:
        job, run_config = defs.resolve_job_def("tuning_job"), {"ops": {"tuning": {"config": config}}}
        results = {key: execute(job, instance, reporter, key, run_config, key) for key in keys}
    for key, result in results.items():
        if result.success:
            meta = result.asset_materializations_for_node("tuning")[0].metadata
            click.echo(f"{key}: {meta['best'].value}; trials {meta['trials'].value}")
            for problem in meta["problems"].value:
                click.echo(f"{key}: {problem}")
    if reporter.failed:
        click.echo(f"failed partitions: {', '.join(reporter.failed)}", err=True)
        sys.exit(1)


@main.command()
@click.option("--symbols", default=",".join(DEFAULT_SYMBOLS), show_default=True, help="Comma-separated markets")
@click.option("--timeframes", default="1m", show_default=True, help="Comma-separated timeframes")
@click.option(
    "--select",
    "selection",
    default="raw_candles,indicators,features",
    show_default=True,
    help="Dagster asset selection, e.g. 'features', '+features' (with upstream), 'raw_candles,indicators'",
)
@click.option("--days", default=None, type=float, help=SPAN_HELP[0])
@click.option("--bars", default=None, type=int, help=SPAN_HELP[1])
@click.option("--end", default=None, help="Exclusive end of the span (ISO 8601, UTC); default now")
@click.option("--url", default=None, help="Dagster webserver URL to send the backfill to (default: in-process)")
@click.option("--workspace", default="workspace.yaml", show_default=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--wait/--no-wait", default=False, help="Wait until the daemon has run every partition")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait with --wait")
@click.pass_context
def backfill(
    ctx: click.Context,
    symbols: str,
    timeframes: str,
    selection: str,
    days: float | None,
    bars: int | None,
    end: str | None,
    url: str | None,
    workspace: str,
    wait: bool,
    timeout: float,
) -> None:
    """Launch a real asset backfill (run by the daemon) over symbols x timeframes."""
    usage_error(settings.location_settings_error())  # the definitions read them
    usage_error(window_error(days, end, bars))
    symbol_list, tf_list = _symbols(symbols), _timeframes(timeframes)
    usage_error(next(filter(None, (span_error(tf, days, bars) for tf in tf_list)), None))
    if url:
        register_secrets(url_secrets(url))  # a proxy's password in --url never shows, also in errors
    from dagster import AssetSelection

    from trading_assets.defs import defs
    from trading_assets.defs.backfill import backfill_params, launch_backfill, wait_for_backfill

    instance = _instance(symbol_list)
    try:
        keys = AssetSelection.from_string(selection_string(selection)).resolve(defs.resolve_asset_graph())
    except Exception as exc:  # noqa: BLE001 - show the selection error as a usage error
        raise click.BadParameter(f"{selection!r}: {exc}") from exc
    asset_names = sorted(k.to_user_string() for k in keys)
    partitions = [str(partition_key(s, t)) for s in symbol_list for t in tf_list]
    run_config = market_run_config(days, end, bars=bars) if "raw_candles" in asset_names else None
    backfill_id = launch_backfill(instance, backfill_params(partitions, asset_names, run_config), Path(workspace), url)
    click.echo(f"backfill {backfill_id}: {len(partitions)} partitions x {', '.join(asset_names)}")
    click.echo(f"watch it in the UI: /runs/b/{backfill_id} (needs dagster-daemon running on this instance)")
    if wait:
        from trading_assets.app.progress import progress
        from trading_assets.defs.runs import follow_runs

        log_path = _log_path("backfill")
        click.echo(f"Dagster event log: {log_path}")
        cursors: dict[str, str] = {}
        with progress(partitions, log_path, ctx.obj["verbose"]) as reporter:
            statuses = wait_for_backfill(
                instance, backfill_id, timeout, on_poll=lambda runs: follow_runs(instance, runs, reporter, cursors)
            )
        if any(s != "SUCCESS" for s in statuses.values()) or not statuses:
            sys.exit(1)


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Loopback address to bind; anything else is refused: the UI has no authentication, put the proxy "
    "(deploy/proxy/nginx.conf) in front to reach it from elsewhere",
)
@click.option("--port", default=3000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workspace", default="workspace.yaml", show_default=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--daemon/--no-daemon",
    default=None,
    help="Run the daemon too (`dagster dev`: schedules, sensors, backfills). "
    "Default: on for the embedded instance, off when DAGSTER_HOME is set (production runs its own daemon)",
)
def ui(host: str, port: int, workspace: str, daemon: bool | None) -> None:
    """Start Dagster's web UI on the project's instance and workspace; Ctrl+C (or SIGTERM) stops it.

    It binds to loopback only: the UI has no authentication, so other machines reach it through the
    authenticating proxy (deploy/proxy/nginx.conf), which also refuses cross-site requests.

    The instance is $DAGSTER_HOME's (production: the directory of ./dagster.yaml), else the embedded
    SQLite one in <data dir>/dagster_home. This is the way in: a bare `dagster dev` in the repository root
    would read the production ./dagster.yaml and ask for the DAGSTER_PG_* variables.
    """
    usage_error(settings.location_settings_error())  # the definitions read them
    from trading_assets.app.webui import serve

    if not is_loopback(host):
        fail_usage(
            f"--host {host!r} is not a loopback address: the UI has no authentication; bind it to 127.0.0.1 and "
            "reach it from elsewhere through the authenticating proxy (deploy/proxy/nginx.conf)"
        )
    embedded = settings.dagster_home() is None
    instance = _instance()
    with_daemon = embedded if daemon is None else daemon
    command = ["dagster", "dev"] if with_daemon else ["dagster-webserver"]
    click.echo(
        f"Dagster UI: http://{host}:{port} (instance {instance.root_directory}"
        f"{', with the daemon' if with_daemon else ''}); Ctrl+C stops it"
    )
    env = settings.child_environment(**{settings.DAGSTER_HOME_VAR: str(instance_home())})  # the child's, not ours
    sys.exit(serve([*command, "-w", workspace, "-h", host, "-p", str(port)], env=env))


@main.group()
def symbols() -> None:
    """Manage the dynamic symbol partitions."""


@symbols.command("list")
def symbols_list() -> None:
    """List registered symbols."""
    for symbol in _instance().get_dynamic_partitions(SYMBOL_PARTITIONS_NAME):
        click.echo(symbol)


@symbols.command("add")
@click.argument("names", nargs=-1, required=True)
def symbols_add(names: tuple[str, ...]) -> None:
    """Register symbols (e.g. KRW-SOL)."""
    try:
        instance = _instance()
        with exclusive(first_use_lock()):
            new = add_symbols(instance, names)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(f"added: {', '.join(new) or 'none (all registered already)'}")


@symbols.command("remove")
@click.argument("names", nargs=-1, required=True)
def symbols_remove(names: tuple[str, ...]) -> None:
    """Unregister symbols (their stored files and history stay)."""
    instance = _instance()
    existing = set(instance.get_dynamic_partitions(SYMBOL_PARTITIONS_NAME))
    unknown = [n for n in names if n not in existing]
    if unknown:
        raise click.BadParameter(f"not registered: {', '.join(unknown)}")
    for name in names:
        instance.delete_dynamic_partition(SYMBOL_PARTITIONS_NAME, name)
    click.echo(f"removed: {', '.join(names)}")


main.add_command(live.models)
main.add_command(live.signals)

if __name__ == "__main__":
    main()
