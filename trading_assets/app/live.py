"""``trading-assets models`` (champion and challenger aliases) and ``trading-assets signals`` (the latest signals)."""

from __future__ import annotations

import sys

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from trading_assets.app.options import split_csv
from trading_assets.partition import Partition
from trading_assets.timeframes import validate_symbol, validate_timeframe


def _partition(symbol: str, timeframe: str) -> Partition:
    try:
        return Partition(symbol, timeframe)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _registry():
    from trading_assets.defs.resources import Locations, MlflowResource

    return MlflowResource(locations=Locations()).registry()


def _alert(partition: Partition, version: str, decision: str, reason: str) -> None:
    """The decision as an alert, like the champion asset's (outbox, alert log, webhook)."""
    from trading_assets.defs.resources import AlertResource, Locations

    AlertResource(locations=Locations()).raise_model_alert(partition, version, decision, reason)


def _validated(value: str | None, check) -> list[str] | None:
    """The items of a comma-separated option, each passed through ``check`` (None when not given)."""
    if not value:
        return None
    try:
        return [check(v) for v in split_csv(value)]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.group()
def models() -> None:
    """The partitions' registered models: which version is champion (trades) and which challenger."""


@models.command("list")
@click.option("--symbols", default=None, help="Comma-separated markets (default: every partition)")
@click.option("--timeframes", default=None, help="Comma-separated timeframes (default: all)")
def models_list(symbols: str | None, timeframes: str | None) -> None:
    """Every version: its aliases, model kind and the recorded decision."""
    wanted_symbols, wanted_tfs = _validated(symbols, validate_symbol), _validated(timeframes, validate_timeframe)
    rows = [
        r
        for r in _registry().versions()
        if (not wanted_symbols or any(r.name.startswith(f"trading_assets-{s}-") for s in wanted_symbols))
        and (not wanted_tfs or r.name.rsplit("-", 1)[-1] in wanted_tfs)
    ]
    table = Table(title="registered models")
    for column in ("model", "version", "aliases", "kind", "created", "decision"):
        table.add_column(column)
    for r in rows:
        created = pd.Timestamp(r.created, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")
        table.add_row(r.name, r.version, ", ".join(r.aliases), r.kind, created, r.decision)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@models.command("promote")
@click.option("--symbol", required=True)
@click.option("--timeframe", required=True)
@click.option("--version", required=True, type=click.IntRange(min=1))
def models_promote(symbol: str, timeframe: str, version: int) -> None:
    """Make VERSION the partition's champion by hand (recorded on the version and alerted)."""
    partition, registry = _partition(symbol, timeframe), _registry()
    previous = registry.alias(partition, "champion")
    try:
        registry.promote(partition, str(version))
    except Exception as exc:  # noqa: BLE001 - an unknown version or a tampered bundle: say which
        raise click.ClickException(f"{partition}: cannot promote version {version}: {exc}") from exc
    reason = f"promoted by hand (previous champion: {previous or 'none'})"
    registry.record(partition, str(version), None, f"promoted: {reason}")
    _alert(partition, str(version), "promoted", reason)
    click.echo(f"{partition}: champion is version {version} (was {previous or 'none'})")


@models.command("rollback")
@click.option("--symbol", required=True)
@click.option("--timeframe", required=True)
def models_rollback(symbol: str, timeframe: str) -> None:
    """Move the partition's champion back to the previous champion."""
    partition = _partition(symbol, timeframe)
    try:
        current, previous = _registry().rollback(partition)
    except Exception as exc:  # noqa: BLE001 - no history, an unknown model, a tampered bundle: say which
        raise click.ClickException(f"{partition}: cannot roll back: {exc}") from exc
    _alert(partition, current, "rolled back", f"champion moved back from version {current} to {previous}")
    click.echo(f"{partition}: champion is version {previous} again (was {current})")


@click.command("signals")
@click.option("--symbols", default=None, help="Comma-separated markets (default: every partition with signals)")
@click.option("--timeframes", default=None, help="Comma-separated timeframes (default: all)")
def signals(symbols: str | None, timeframes: str | None) -> None:
    """The latest signal of each partition: time, forecast, position, model version, age."""
    from trading_assets.defs.resources import Locations
    from trading_assets.signals import SignalLog, age_in_bars
    from trading_assets.store import CandleStore

    wanted_symbols, wanted_tfs = _validated(symbols, validate_symbol), _validated(timeframes, validate_timeframe)
    now = pd.Timestamp.now(tz="UTC")
    table = Table(title="latest signals")
    for column in ("partition", "bar", "forecast", "position", "model version", "age (bars)", "generated"):
        table.add_column(column, justify="right" if column in ("forecast", "position", "age (bars)") else "left")
    with CandleStore(Locations().resolved_db_url()) as store:
        log = SignalLog(store)
        for partition in log.partitions():
            if (wanted_symbols and partition.symbol not in wanted_symbols) or (
                wanted_tfs and partition.timeframe not in wanted_tfs
            ):
                continue
            last = log.history(partition, limit=1).iloc[-1]
            table.add_row(
                partition.key,
                last.name.isoformat(),
                f"{last['forecast']:.6g}",
                f"{last['position']:g}",
                f"{last['model_name']} v{last['model_version']}",
                f"{age_in_bars(last.name, partition.timeframe, now):.0f}",
                last["generated_at"].isoformat(timespec="seconds"),
            )
    Console(width=None if sys.stdout.isatty() else 160).print(table)
