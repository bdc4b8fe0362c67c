"""``trading-assets``: the project's command line (materialize partitions, manage symbols).

The Dagster instance is the one ``$DAGSTER_HOME`` points at; without it, a local SQLite instance
in ``<data dir>/dagster_home`` (the embedded default for demos).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
from dagster import DagsterInstance

from trading_assets.defs.partitions import (
    DEFAULT_SYMBOLS,
    SYMBOL_PARTITIONS_NAME,
    add_symbols,
    partition_key,
)
from trading_assets.settings import data_dir
from trading_assets.timeframes import TIMEFRAMES, validate_symbol

log = logging.getLogger("trading_assets.cli")


def get_instance() -> DagsterInstance:
    """The instance of ``$DAGSTER_HOME``, or the local embedded one (created on first use)."""
    if not os.environ.get("DAGSTER_HOME"):
        home = data_dir() / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").touch()
        os.environ["DAGSTER_HOME"] = str(home)
    return DagsterInstance.get()


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _symbols(value: str) -> list[str]:
    try:
        return [validate_symbol(s) for s in _csv(value)]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _timeframes(value: str) -> list[str]:
    tfs = _csv(value)
    bad = [t for t in tfs if t not in TIMEFRAMES]
    if bad:
        raise click.BadParameter(f"unknown timeframe(s) {bad}; expected some of {', '.join(TIMEFRAMES)}")
    return tfs


def market_run_config(days: float, end: str | None, source: str | None, files_dir: str | None) -> dict[str, Any]:
    run_config: dict[str, Any] = {"ops": {"raw_candles": {"config": {"days": days, "end": end}}}}
    if source:
        resource = {"kind": source, **({"files_dir": files_dir} if files_dir else {})}
        run_config["resources"] = {"candle_source": {"config": resource}}
    return run_config


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug output")
def main(verbose: bool) -> None:
    """trading_assets: candles -> indicators -> features -> models, on Dagster."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--symbols", default=",".join(DEFAULT_SYMBOLS), show_default=True, help="Comma-separated markets")
@click.option("--timeframes", default="1m", show_default=True, help="Comma-separated timeframes")
@click.option("--days", default=7.0, show_default=True, help="Requested span in days")
@click.option("--end", default=None, help="Exclusive end of the span (ISO 8601, UTC); default now")
@click.option("--source", type=click.Choice(["synthetic", "upbit", "files"]), default=None,
              help="Candle source (default: the resource's configuration, synthetic)")
@click.option("--files-dir", default=None, help="Directory of candle files for --source files")
@click.option("--assets", "which", type=click.Choice(["all", "data"]), default="all", show_default=True,
              help="all: candles to trained model; data: raw_candles, indicators, features")
def materialize(symbols: str, timeframes: str, days: float, end: str | None, source: str | None,
                files_dir: str | None, which: str) -> None:
    """Materialize the assets (and their checks) in-process for symbols x timeframes."""
    from trading_assets.defs import defs
    from trading_assets.training.tracking import default_tracking_uri

    instance = get_instance()
    symbol_list, tf_list = _symbols(symbols), _timeframes(timeframes)
    add_symbols(instance, symbol_list)
    job = defs.resolve_job_def("full_pipeline_job" if which == "all" else "market_data_job")
    run_config = market_run_config(days, end, source, files_dir)
    failed = []
    for symbol in symbol_list:
        for timeframe in tf_list:
            key = partition_key(symbol, timeframe)
            result = job.execute_in_process(partition_key=key, instance=instance, run_config=run_config,
                                            raise_on_error=False)
            status = "ok" if result.success else "FAILED"
            click.echo(f"{key}: {status} (run {result.run_id})")
            if not result.success:
                failed.append(str(key))
    base = data_dir() / "assets"
    click.echo(f"Parquet outputs: {base}/<asset>/<symbol>/<timeframe>.parquet")
    click.echo(f"Dagster instance: {instance.root_directory}")
    if which == "all":
        click.echo(f"MLflow store: {default_tracking_uri()} (models trading_assets-<symbol>-<timeframe>)")
    if failed:
        click.echo(f"failed partitions: {', '.join(failed)}", err=True)
        sys.exit(1)


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
        new = add_symbols(get_instance(), names)
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
