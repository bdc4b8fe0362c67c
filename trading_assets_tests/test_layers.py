"""The package's three layers, read from the source: ``app/`` over ``defs/`` over the domain.

Nothing outside ``defs/`` and ``app/`` imports Dagster; the domain imports neither layer above it and
``defs/`` never imports ``app/``; ``settings`` is the one module that reads the environment.
"""

import ast
from pathlib import Path

import trading_assets

PACKAGE = Path(trading_assets.__file__).parent


def _modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(PACKAGE.parent).with_suffix("")).replace("/", "."): ast.parse(path.read_text())
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _imports(tree: ast.Module) -> set[str]:
    """Every module named by an import anywhere in ``tree`` (imports inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _layer(module: str) -> int:
    if module.startswith("trading_assets.app"):
        return 2
    return 1 if module.startswith("trading_assets.defs") else 0


def _is_dagster(name: str) -> bool:
    return name.split(".")[0] == "dagster" or name.split(".")[0].startswith("dagster_")


def test_the_walk_sees_the_package():
    modules = _modules()
    assert {"trading_assets.app.cli", "trading_assets.defs.runs", "trading_assets.features"} <= set(modules)
    assert any(_is_dagster(name) for name in _imports(modules["trading_assets.defs.runs"]))


def test_only_defs_and_app_import_dagster():
    offenders = {
        module: sorted(name for name in _imports(tree) if _is_dagster(name))
        for module, tree in _modules().items()
        if _layer(module) == 0
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def test_no_layer_imports_one_above_it():
    offenders = [
        f"{module} imports {name}"
        for module, tree in _modules().items()
        for name in _imports(tree)
        if name.startswith("trading_assets.") and _layer(name) > _layer(module)
    ]
    assert offenders == []


def test_only_settings_reads_the_environment():
    readers = []
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            reads = (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb")) or (
                isinstance(node, ast.ImportFrom)
                and node.module == "os"
                and {"environ", "getenv"} & {alias.name for alias in node.names}
            )
            if reads and module != "trading_assets.settings":
                readers.append(f"{module}:{node.lineno}")
    assert readers == []


# Dagster decorators whose function is an asset, a check, a sensor or a schedule body.
_BODY_DECORATORS = {
    "asset",
    "multi_asset",
    "asset_check",
    "partition_check",
    "sensor",
    "schedule",
    "run_failure_sensor",
}
MAX_BODY_LINES = 40


def _decorated_bodies():
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            names = {ast.unparse(d).split("(")[0].split(".")[-1] for d in node.decorator_list}
            if names & _BODY_DECORATORS:  # from the def line to the end: signature and docstring count too
                yield f"{module}.{node.name}", node.end_lineno - node.lineno + 1


def test_asset_and_check_bodies_are_thin():
    """Every asset, check, sensor and schedule body maps Dagster in and out of domain calls in <= 40 lines."""
    bodies = dict(_decorated_bodies())
    assert {"trading_assets.defs.assets.raw_candles", "trading_assets.defs.training.trained_model"} <= set(bodies)
    assert {name: n for name, n in bodies.items() if n > MAX_BODY_LINES} == {}
