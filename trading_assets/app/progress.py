"""What ``trading-assets materialize`` / ``backfill`` show: live progress per partition (rich), one summary
table at the end, and Dagster's event log in a file (on the terminal too with ``-v``).

:class:`RunProgress` is the event sink of ``trading_assets.defs.runs``: it consumes Dagster's event log
entries, whether they come from an in-process run or from runs the daemon executes, so both commands show
the same.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from dagster import AssetCheckSeverity, AssetKey, EventLogEntry
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from trading_assets.defs.runs import parse_collect_progress, root_error
from trading_assets.redaction import install_log_redaction, redact

# Assets whose row count is not the partition's "rows" (the features' count stays shown).
_NOT_PARTITION_ROWS = {AssetKey("predictions"), AssetKey("evaluation")}


def first_line(text: str | None, default: str = "no error message") -> str:
    """The first non-blank line of ``text`` (redacted), or ``default``."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return redact(lines[0]) if lines else default


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


@dataclass
class PartitionProgress:
    """The state of one partition's run, as its events tell it."""

    partition: str
    status: str = "queued"
    step: str = ""
    rows: int | None = None
    checks: Counter = field(default_factory=Counter)
    started: float | None = None
    finished: float | None = None
    mlflow_run: str = ""
    error: str = ""
    requests: tuple[int, int] | None = None
    requests_started: float | None = None
    up_to_date: tuple[str, ...] = ()  # assets not run again: nothing they are computed from changed
    blocking_failure: str = ""  # the explanation of the last failed ERROR check, for the failure line

    def count_check(self, passed: bool, severity: AssetCheckSeverity) -> None:
        self.checks["passed" if passed else "warned" if severity == AssetCheckSeverity.WARN else "failed"] += 1

    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.monotonic()) - self.started

    def eta(self) -> float | None:
        """Seconds left of the exchange collection, from the pace of the requests so far."""
        if not self.requests or not self.requests[0] or self.requests_started is None:
            return None
        done, expected = self.requests
        return (time.monotonic() - self.requests_started) / done * max(expected - done, 0)

    def activity(self) -> str:
        if self.status != "running":
            return ""
        if self.requests and self.step.startswith("raw_candles") and self.requests[0] < self.requests[1]:
            eta = self.eta()
            return f"{self.step}: {self.requests[0]}/{self.requests[1]} requests" + (
                f", ETA {_duration(eta)}" if eta is not None else ""
            )
        return self.step


class RunProgress:
    """Progress of a set of partitions: the :class:`~trading_assets.defs.runs.RunEventSink` of the commands."""

    def __init__(self, partitions: Iterable[str], log_file: IO[str], console: Console, verbose: bool = False):
        self.partitions = {p: PartitionProgress(p) for p in partitions}
        self.log_file = log_file
        self.console = console
        self.verbose = verbose

    def handle(self, partition: str, entry: EventLogEntry) -> None:
        """Record one event of ``partition``'s run and write it to the log."""
        state = self.partitions.setdefault(partition, PartitionProgress(partition))
        event = entry.dagster_event
        kind = event.event_type.name if event else "LOG"
        line = (
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(entry.timestamp))} {logging.getLevelName(entry.level)}"
            f" {partition} {entry.step_key or '-'} {kind} {entry.user_message or (event.message if event else '')}"
        )
        line = redact(line)  # Dagster's messages quote errors, configs and URLs
        try:
            self.log_file.write(line + "\n")
            self.log_file.flush()
        except OSError as exc:  # the disk filled up mid-run: warn once, go on without the file
            self.console.print(
                f"warning: cannot write the event log any more ({exc.strerror or exc}); going on without it",
                style="yellow",
                highlight=False,
            )
            self.log_file = open(os.devnull, "w", encoding="utf-8")
        if self.verbose:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if kind == "RUN_START":  # a partition may take two runs (see materialize_partition)
            state.status, state.started = "running", state.started or time.monotonic()
        elif kind == "STEP_START":
            state.step = entry.step_key or ""
        elif kind == "ASSET_MATERIALIZATION":
            metadata = event.step_materialization_data.materialization.metadata
            if "dagster/row_count" in metadata and (state.rows is None or event.asset_key not in _NOT_PARTITION_ROWS):
                state.rows = int(metadata["dagster/row_count"].value)
            if "mlflow_run_id" in metadata:
                state.mlflow_run = str(metadata["mlflow_run_id"].value)
        elif kind == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            state.count_check(check.passed, check.severity)
            if not check.passed and check.severity == AssetCheckSeverity.ERROR:
                reason = first_line(check.description, "no explanation")
                state.blocking_failure = f"{check.asset_key.to_user_string()} check {check.check_name} failed: {reason}"
        elif kind == "STEP_FAILURE" and not state.error:
            error = event.step_failure_data.error
            text = first_line(root_error(error) if error else None)
            if "DagsterAssetCheckFailedError" in text and state.blocking_failure:
                text = state.blocking_failure  # the check's own explanation, not Dagster's wrapper
            state.error = f"{entry.step_key}: {text}"
        elif kind in ("RUN_SUCCESS", "RUN_FAILURE", "RUN_CANCELED"):
            if kind == "RUN_FAILURE" and not state.error:  # failed outside any step (e.g. a dead worker)
                state.error = f"run: {first_line(entry.user_message or (event.message if event else None))}"
            state.status = {"RUN_SUCCESS": "success", "RUN_FAILURE": "failed", "RUN_CANCELED": "canceled"}[kind]
            state.finished = time.monotonic()
            if state.started is None:
                state.started = state.finished
            if not self.console.is_terminal:  # no live display: one line per finished partition
                self.console.print(f"{partition}: {state.status} in {_duration(state.elapsed())}", highlight=False)
        elif kind == "LOG" and entry.user_message and (requests := parse_collect_progress(entry.user_message)):
            if state.requests_started is None:
                state.requests_started = time.monotonic()
            state.requests = requests

    def live_table(self) -> Table:
        """The partitions now: status, step (or exchange requests with an ETA), rows, elapsed."""
        table = Table(box=None, pad_edge=False)
        for column in ("partition", "status", "step", "rows", "elapsed"):
            table.add_column(column)
        for p in self.partitions.values():
            table.add_row(
                p.partition, p.status, p.activity(), "" if p.rows is None else f"{p.rows:,}", _duration(p.elapsed())
            )
        return table

    def summary(self) -> Group:
        """One table over the partitions; under it, per failed partition, ``<partition> failed at <step>:
        <first line of the error>`` (the one place that names them)."""
        return Group(self.summary_table(), *self.error_lines())

    def summary_table(self) -> Table:
        table = Table(title="trading-assets")
        for column in ("partition", "status", "rows", "checks pass/warn/fail", "duration", "MLflow run"):
            table.add_column(column, justify="right" if column in ("rows", "duration") else "left")
        for p in self.partitions.values():
            style = {"success": "green", "failed": "red"}.get(p.status, "yellow")
            status = f"{p.status}, {len(p.up_to_date)} up to date" if p.up_to_date else p.status
            table.add_row(
                p.partition,
                Text(status, style=style),
                "" if p.rows is None else f"{p.rows:,}",
                f"{p.checks['passed']}/{p.checks['warned']}/{p.checks['failed']}",
                _duration(p.elapsed()),
                p.mlflow_run,
            )
        return table

    def error_lines(self) -> list[Text]:
        return [Text(f"{p.partition} failed at {p.error}", style="red") for p in self.partitions.values() if p.error]

    def print_summary(self) -> None:
        """The summary table, then each error line whole (never wrapped: one line per failed partition)."""
        self.console.print(self.summary_table())
        for line in self.error_lines():
            self.console.print(line, soft_wrap=True)

    def up_to_date(
        self,
        partition: str,
        keys: Iterable[AssetKey],
        runs: Iterable[str],
        checks: Iterable[tuple[bool, AssetCheckSeverity]],
    ) -> None:
        """Record the assets of ``partition`` not run again (fresh), with the check results of the ``runs``
        that computed them: the summary counts them, so it shows every check's current result."""
        state = self.partitions.setdefault(partition, PartitionProgress(partition))
        state.up_to_date = tuple(key.to_user_string() for key in keys)
        for passed, severity in checks:
            state.count_check(passed, severity)
        line = (
            f"{partition}: up to date, not run again: {', '.join(state.up_to_date)} "
            f"(computed by run {', '.join(sorted(runs))} from the same candles and code version)"
        )
        line = redact(line)  # Dagster's messages quote errors, configs and URLs
        self.log_file.write(line + "\n")
        if self.verbose or not self.console.is_terminal:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    @property
    def failed(self) -> list[str]:
        return [p.partition for p in self.partitions.values() if p.status != "success"]


def new_log_path(directory: Path, command: str) -> Path:
    """``<directory>/<command>-<local time>.log`` (the directory is created when it can be)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # progress() says once that the log cannot be written and goes on without it
    return directory / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}.log"


def _open_log(log_path: Path, console: Console) -> IO[str]:
    """The event log file, or (it cannot be written: a full disk, no permission) a sink, with one warning."""
    try:
        return open(log_path, "a", encoding="utf-8")
    except OSError as exc:
        console.print(
            f"warning: cannot write the event log {log_path} ({exc.strerror or exc}); going on without it "
            "(-v shows the events on the terminal)",
            style="yellow",
            highlight=False,
        )
        return open(os.devnull, "w", encoding="utf-8")


@contextmanager
def progress(
    partitions: Iterable[str], log_path: Path, verbose: bool = False, console: Console | None = None
) -> Iterator[RunProgress]:
    """A :class:`RunProgress` writing to ``log_path``, live on a terminal, summarised when the block ends.

    Python logging goes to the same file while the block runs; without ``verbose`` so does whatever
    libraries print (MLflow's messages and progress bars).
    """
    console = console or Console(file=sys.stdout, width=None if sys.stdout.isatty() else 120)
    with ExitStack() as stack:
        log_file = stack.enter_context(_open_log(log_path, console))
        handler = logging.FileHandler(log_file.name, encoding="utf-8", delay=True)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        stack.callback(handler.close)
        root = logging.getLogger()
        root.addHandler(handler)
        install_log_redaction(handler)
        stack.callback(root.removeHandler, handler)
        reporter = RunProgress(partitions, log_file, console, verbose)
        stack.callback(reporter.print_summary)
        if not verbose:
            mlflow_logger = logging.getLogger("mlflow")  # has its own terminal handler
            stack.callback(mlflow_logger.setLevel, mlflow_logger.level)
            mlflow_logger.setLevel(logging.WARNING)
            stack.enter_context(redirect_stdout(log_file))
            stack.enter_context(redirect_stderr(log_file))
            if console.is_terminal:
                stack.enter_context(
                    Live(
                        get_renderable=reporter.live_table,
                        console=console,
                        transient=True,
                        refresh_per_second=4,
                        redirect_stdout=False,
                        redirect_stderr=False,
                    )
                )
        yield reporter
