"""``trading-assets``: the project's command line (materialize partitions, manage symbols).

The Dagster instance is the one ``$DAGSTER_HOME`` points at; without it, a local SQLite instance
in ``<data dir>/dagster_home`` (the embedded default for demos).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from dagster import DagsterInstance

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
from trading_assets.timeframes import TIMEFRAMES, span_error, to_utc, validate_symbol

log = logging.getLogger("trading_assets.cli")


# The embedded instance: SQLite storage (Dagster's default), run monitoring and retries as in
# ./dagster.yaml, no telemetry, no pop-ups. Log messages below INFO (the IO managers' "Loading
# partition ..." lines) are not stored: each stored event costs a SQLite commit (~6 ms here).
_GUARDED_COORDINATOR = """\
run_coordinator:
  module: trading_assets.defs.run_guard
  class: GuardedRunCoordinator
"""
EMBEDDED_INSTANCE_YAML = (
    _GUARDED_COORDINATOR
    + """\
python_logs:
  python_log_level: INFO
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_runtime_seconds: 86400
  max_resume_run_attempts: 0
  poll_interval_seconds: 30
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
telemetry:
  enabled: false
nux:
  enabled: false
"""
)


# What earlier versions wrote (replaced on first use): telemetry and nux only; then all but the run coordinator.
_EARLIER_EMBEDDED_YAML = (
    "telemetry:\n  enabled: false\nnux:\n  enabled: false\n",
    EMBEDDED_INSTANCE_YAML.replace(_GUARDED_COORDINATOR, ""),
)


def get_instance(symbols: list[str] | None = None) -> DagsterInstance:
    """The instance of ``$DAGSTER_HOME``, or the local embedded one (created on first use), with ``symbols``
    registered as partitions.

    Creating the embedded instance's databases and registering symbols happen under one lock in the data
    folder: commands started together on a fresh folder create them once, one after the other. The
    embedded config of older versions (no run monitoring, no guarded run coordinator) is replaced.
    """
    with exclusive(data_dir() / ".first_use.lock"):
        if not os.environ.get("DAGSTER_HOME"):
            home = data_dir() / "dagster_home"
            home.mkdir(parents=True, exist_ok=True)
            config = home / "dagster.yaml"
            if not config.exists() or config.read_text() in _EARLIER_EMBEDDED_YAML:
                config.write_text(EMBEDDED_INSTANCE_YAML)
            os.environ["DAGSTER_HOME"] = str(home)
            sqlite_normal_sync(home)
        embedded = os.environ["DAGSTER_HOME"] == str(data_dir() / "dagster_home")
        instance = DagsterInstance.get()  # the SQLite storages create their tables here
        if embedded:  # no daemon may be watching: end what killed commands left running
            fail_dead_runs_and_their_tracking(instance)
        if symbols:
            add_symbols(instance, symbols)
    return instance


def fail_dead_runs_and_their_tracking(instance: DagsterInstance) -> list[str]:
    """Mark failed the embedded instance's runs whose worker process (a command on this host) is gone, and
    end their MLflow runs left RUNNING as FAILED; returns the Dagster run ids."""
    from trading_assets.defs.sensors import fail_dead_runs

    dead = fail_dead_runs(instance, grace_seconds=0.0)
    if dead:
        from trading_assets.training.tracking import connect, end_stale_runs

        try:
            client, experiment_id = connect(default_tracking_uri(), "trading_assets")
            end_stale_runs(client, experiment_id, {}, lambda run_id: run_id not in dead)
        except Exception as exc:  # noqa: BLE001 - the next training of the partition ends them too
            log.warning("could not end the MLflow runs of dead runs %s: %s", dead, redact(str(exc)))
        log.warning("marked failed %d run(s) whose process was gone: %s", len(dead), ", ".join(dead))
    return dead


_NORMAL_SYNC_DIRECTORIES: set[str] = set()


def sqlite_normal_sync(directory: Path) -> None:
    """Open Dagster's SQLite databases under ``directory`` with ``synchronous=NORMAL``.

    Dagster runs them in WAL mode but leaves ``synchronous=FULL``, so each event it stores (a run
    stores ~175, each in its own commit) syncs the disk. In WAL mode NORMAL syncs only at checkpoints:
    a power cut may lose the last events, never corrupts a database. Dagster has no setting for it,
    so a SQLAlchemy ``connect`` listener sets it on the connections to those files.
    """
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not _NORMAL_SYNC_DIRECTORIES:

        @event.listens_for(Engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            if not isinstance(dbapi_connection, sqlite3.Connection):
                return
            path = next((row[2] for row in dbapi_connection.execute("PRAGMA database_list") if row[1] == "main"), "")
            if path and any(path.startswith(d) for d in _NORMAL_SYNC_DIRECTORIES):
                dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    _NORMAL_SYNC_DIRECTORIES.add(str(directory.resolve()) + os.sep)


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _symbols(value: str) -> list[str]:
    try:
        return [validate_symbol(s) for s in _csv(value)]
    except ValueError as exc:
        fail_usage(str(exc))


def _timeframes(value: str) -> list[str]:
    tfs = _csv(value)
    bad = [t for t in tfs if t not in TIMEFRAMES]
    if bad:
        fail_usage(f"unknown timeframe(s) {bad}; expected some of {', '.join(TIMEFRAMES)}")
    return tfs


def selection_string(selection: str) -> str:
    """``+features,raw_candles`` -> Dagster's ``+key:features or key:raw_candles``; full syntax passes through."""
    if ":" in selection or " " in selection.strip():
        return selection
    parts = []
    for item in _csv(selection):
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
    """Why the source options contradict each other, or None."""
    if (upbit_url or requests_per_second is not None) and source not in (None, "upbit"):
        return f"--upbit-url and --requests-per-second need --source upbit, not --source {source}"
    if upbit_url and not upbit_url.startswith(("http://", "https://")):
        return f"--upbit-url must be an http(s) URL, got {upbit_url!r}"
    if requests_per_second is not None and not requests_per_second > 0:
        return f"--requests-per-second must be positive, got {requests_per_second}"
    return None


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
    run config: they reach the in-process runs as environment variables.
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
    if refresh:
        run_config.setdefault("resources", {})["candle_store"] = {"config": {"refresh": True}}
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
    from trading_assets.progress import new_log_path

    return new_log_path(data_dir() / "logs", command)


SPAN_HELP = (
    "Requested span in days (default per timeframe: 7 up to 30m, 21 for 60m, 90 for 240m, 400 for 1d)",
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
    type=click.Choice(list(SOURCES)),
    default=None,
    help="Candle source (default: the resource's configuration, synthetic)",
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
    which: str,
) -> None:
    """Materialize the assets (and their checks) in-process for symbols x timeframes, with live progress.

    What is up to date is not recomputed (see ``materialize_partition``; ``--force`` recomputes it).
    """
    usage_error(window_error(days, end, bars) or source_error(source, upbit_url, requests_per_second))
    symbol_list, tf_list = _symbols(symbols), _timeframes(timeframes)
    usage_error(next(filter(None, (span_error(tf, days, bars) for tf in tf_list)), None))
    if files_dir:
        os.environ["TRADING_FILES_DIR"] = str(Path(files_dir).resolve())
    if upbit_url:
        os.environ["TRADING_UPBIT_BASE_URL"] = upbit_url
    from trading_assets.defs import defs
    from trading_assets.progress import execute_with_progress, materialize_partition, progress

    source = source or ("upbit" if upbit_url else None)
    run_config = market_run_config(days, end, source, bars, refresh, requests_per_second)
    instance = get_instance(symbol_list)
    job = defs.resolve_job_def("full_pipeline_job" if which == "all" else "market_data_job")
    keys = [str(partition_key(symbol, timeframe)) for symbol in symbol_list for timeframe in tf_list]
    log_path = _log_path("materialize")
    click.echo(f"Dagster event log: {log_path}")
    with progress([*keys, *(["leaderboard"] if which == "all" else [])], log_path, ctx.obj["verbose"]) as reporter:
        for key in keys:
            materialize_partition(job, instance, reporter, key, run_config, force)
        board = None
        if which == "all":
            leaderboard_job = defs.resolve_job_def("leaderboard_job")
            board = execute_with_progress(leaderboard_job, instance, reporter, "leaderboard", {})
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
    usage_error(window_error(days, end, bars))
    symbol_list, tf_list = _symbols(symbols), _timeframes(timeframes)
    usage_error(next(filter(None, (span_error(tf, days, bars) for tf in tf_list)), None))
    if url:
        register_secrets(url_secrets(url))  # a proxy's password in --url never shows, also in errors
    from dagster import AssetSelection

    from trading_assets.defs import defs
    from trading_assets.defs.backfill import backfill_params, launch_backfill, wait_for_backfill

    instance = get_instance(symbol_list)
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
        from trading_assets.progress import follow_runs, progress

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
    from trading_assets.webui import serve

    if not is_loopback(host):
        fail_usage(
            f"--host {host!r} is not a loopback address: the UI has no authentication; bind it to 127.0.0.1 and "
            "reach it from elsewhere through the authenticating proxy (deploy/proxy/nginx.conf)"
        )
    embedded = not os.environ.get("DAGSTER_HOME")
    instance = get_instance()
    with_daemon = embedded if daemon is None else daemon
    command = ["dagster", "dev"] if with_daemon else ["dagster-webserver"]
    click.echo(
        f"Dagster UI: http://{host}:{port} (instance {instance.root_directory}"
        f"{', with the daemon' if with_daemon else ''}); Ctrl+C stops it"
    )
    sys.exit(serve([*command, "-w", workspace, "-h", host, "-p", str(port)]))


@main.group()
def symbols() -> None:
    """Manage the dynamic symbol partitions."""


@symbols.command("list")
def symbols_list() -> None:
    """List registered symbols."""
    for symbol in get_instance().get_dynamic_partitions(SYMBOL_PARTITIONS_NAME):
        click.echo(symbol)


@symbols.command("add")
@click.argument("names", nargs=-1, required=True)
def symbols_add(names: tuple[str, ...]) -> None:
    """Register symbols (e.g. KRW-SOL)."""
    try:
        instance = get_instance()
        with exclusive(data_dir() / ".first_use.lock"):
            new = add_symbols(instance, names)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(f"added: {', '.join(new) or 'none (all registered already)'}")


@symbols.command("remove")
@click.argument("names", nargs=-1, required=True)
def symbols_remove(names: tuple[str, ...]) -> None:
    """Unregister symbols (their stored files and history stay)."""
    instance = get_instance()
    existing = set(instance.get_dynamic_partitions(SYMBOL_PARTITIONS_NAME))
    unknown = [n for n in names if n not in existing]
    if unknown:
        raise click.BadParameter(f"not registered: {', '.join(unknown)}")
    for name in names:
        instance.delete_dynamic_partition(SYMBOL_PARTITIONS_NAME, name)
    click.echo(f"removed: {', '.join(names)}")


if __name__ == "__main__":
    main()
