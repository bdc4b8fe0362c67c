"""Every private Dagster name the project uses resolves (an upgrade that moves one fails here, naming it),
and no module outside trading_assets/defs/dagster_private.py imports ``dagster._`` itself."""

import re
from pathlib import Path

import pytest

from trading_assets.defs import dagster_private

PACKAGE = Path(dagster_private.__file__).parents[1]


@pytest.mark.parametrize("name", sorted(dagster_private.PRIVATE))
def test_private_name_resolves(name):
    assert getattr(dagster_private, name) is not None, f"{name} moved out of {dagster_private.PRIVATE[name]}"


def test_no_other_module_imports_private_dagster():
    pattern = re.compile(r"^\s*(from|import)\s+dagster\._", re.M)
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "dagster_private.py" and pattern.search(path.read_text())
    ]
    assert offenders == []
