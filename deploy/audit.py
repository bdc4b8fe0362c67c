"""Vulnerability audit of the image's lock (deploy/k8s/constraints.txt) with pip-audit, where its advisory
source answers; CI runs it. Exit 1 on a known vulnerability; where no package could be looked up (a
network that reaches only a package mirror), say so and exit 0: an audit that did not happen is not a pass.

    python deploy/audit.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LOCK = Path(__file__).resolve().parent / "k8s" / "constraints.txt"


def main() -> int:
    command = [sys.executable, "-m", "pip_audit", "--requirement", str(LOCK), "--no-deps", "--disable-pip"]
    done = subprocess.run([*command, "--format", "json", "--progress-spinner", "off"], capture_output=True, text=True)
    try:
        dependencies = json.loads(done.stdout)["dependencies"]
    except (json.JSONDecodeError, KeyError):
        print(f"vulnerability audit: pip-audit failed ({done.stderr.strip()[-300:]}); not audited")
        return 0
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if "skip_reason" in d]
    for dependency in vulnerable:
        ids = ", ".join(v["id"] for v in dependency["vulns"])
        print(f"vulnerable: {dependency['name']}=={dependency['version']}: {ids}")
    if vulnerable:
        return 1
    if len(skipped) == len(dependencies):
        print(
            f"vulnerability audit: the advisory source did not answer for any of {len(dependencies)} pins; NOT audited"
        )
    else:
        print(f"vulnerability audit: {len(dependencies) - len(skipped)} pins audited, no known vulnerability"
              + (f" ({len(skipped)} could not be looked up)" if skipped else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
