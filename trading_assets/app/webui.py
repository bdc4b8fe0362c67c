"""Runs Dagster's web UI (``dagster dev`` or ``dagster-webserver``) as a child and stops it cleanly.

The child gets its own process group, so one Ctrl+C reaches it once (forwarded by us) and nothing it
started outlives it: SIGINT or SIGTERM to us becomes SIGINT to the child (Dagster's graceful shutdown);
after ``grace_seconds`` the whole group is killed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _executable(name: str) -> str:
    """The console script ``name`` beside this interpreter (the same environment), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def serve(command: list[str], grace_seconds: float = 30.0, env: dict[str, str] | None = None) -> int:
    """Run ``command`` (its first item a console script, ``env`` its environment) until it exits or we are
    told to stop; its exit code."""
    child = subprocess.Popen([_executable(command[0]), *command[1:]], start_new_session=True, env=env)
    deadline: float | None = None  # set when told to stop

    def stop(signum: int, _frame: object) -> None:
        nonlocal deadline
        if deadline is None:
            deadline = time.monotonic() + grace_seconds
            log.info("stopping the UI (signal %s)", signum)
            child.send_signal(signal.SIGINT)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while (code := child.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                log.warning("the UI did not stop within %.0fs; killing it", grace_seconds)
                os.killpg(child.pid, signal.SIGKILL)
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:  # whatever the child started and left behind
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return 0 if deadline is not None and code in (0, -signal.SIGINT, 130) else code
