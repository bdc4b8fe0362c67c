"""No run may read the run worker's environment through its config.

Dagster lets every string, integer and boolean field of a run's config take ``{env: NAME}`` and
resolves it in the run worker: a UI user (read-only viewers can read the result) could launch a run
with ``calendar: {env: AWS_SECRET_ACCESS_KEY}`` and read the secret back from the error it causes.
Locations and secrets come from the deployment's environment through the ``Locations`` resource,
never from a run, so a run config that names the environment anywhere is refused, twice:

* at launch, by :class:`GuardedRunCoordinator` (both instances' ``run_coordinator``): the run is marked
  failed before any worker starts, so nothing is resolved;
* at execution, by :func:`refuse_environment_in_run_config`, which every resource and the IO manager call
  when a step initialises them (a run executed in process, which skips the coordinator).

The refusal names the config paths and never a value.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import DagsterRun, QueuedRunCoordinator, SubmitRunContext


class RunConfigReadsEnvironmentError(ValueError):
    """A run config with ``{env: NAME}`` somewhere."""


def environment_paths(config: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Dotted paths of every ``{env: NAME}`` value in ``config``."""
    if isinstance(config, Mapping):
        if "env" in config and len(config) == 1:
            return [".".join(path) or "<root>"]
        return [p for key, value in config.items() for p in environment_paths(value, (*path, str(key)))]
    if isinstance(config, Sequence) and not isinstance(config, str):
        return [p for i, value in enumerate(config) for p in environment_paths(value, (*path, str(i)))]
    return []


def refusal(run_config: Mapping[str, Any]) -> str | None:
    """Why a run config is refused, or None."""
    paths = environment_paths(run_config)
    if not paths:
        return None
    return (
        f"run config may not read environment variables ({{env: ...}} at {', '.join(paths)}): locations and "
        "secrets come from the deployment's environment (the Locations resource), never from a run"
    )


def refuse_environment_in_run_config(run: DagsterRun | None) -> None:
    """Raise when ``run``'s stored config reads the environment (called as resources are set up)."""
    message = refusal(run.run_config) if run is not None else None
    if message:
        raise RunConfigReadsEnvironmentError(message)


class GuardedRunCoordinator(QueuedRunCoordinator):
    """The queued run coordinator, refusing a run whose config reads the environment before it is queued."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        message = refusal(run.run_config)
        if message is None:
            return super().submit_run(context)
        self._instance.report_run_failed(run, message)
        refused = self._instance.get_run_by_id(run.run_id)
        return refused if refused is not None else run
