"""The package's layering, read from its source: every ``import`` (at module level, inside
functions and under ``TYPE_CHECKING`` alike) is an arrow.

- ``core`` imports nothing of this package above it, and the embedded server (``server``)
  nothing but ``core``;
- no component (state backend, orchestrator, broker, trigger, client data store) imports
  another; they meet only in ``core``;
- the modules on top (``admin``, ``cli``, ``builder``, ``demo``, ``server``) may import
  anything below them;
- there is no cycle between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pynenc_redis_stack

PACKAGE = "pynenc_redis_stack"
ROOT = Path(pynenc_redis_stack.__file__).parent
COMPONENTS = ("state_backend", "orchestrator", "broker", "trigger", "client_data_store")
BASE = ("core", "server")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules ``path`` imports (``from pkg import module`` counts as the module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [name if name in modules else node.module for name in names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in ROOT.rglob("*.py")}
    modules = set(paths)
    return {module: imported_modules(path, modules) - {module} for module, path in paths.items()}


def layer(module: str) -> str:
    """``core``, a component's name, ``server``, or ``top`` (the package itself included)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in (*BASE, *COMPONENTS) else "top"


def test_the_graph_covers_every_layer() -> None:
    layers = {layer(module) for module in import_graph()}
    assert layers == {*BASE, *COMPONENTS, "top"}


def test_core_and_server_import_nothing_above_them() -> None:
    allowed = {"core": {"core"}, "server": {"core", "server"}}
    upward = [
        (module, target)
        for module, targets in import_graph().items()
        for target in targets
        if layer(module) in allowed and layer(target) not in allowed[layer(module)]
    ]
    assert upward == []


def test_no_component_imports_another() -> None:
    across = [
        (module, target)
        for module, targets in import_graph().items()
        for target in targets
        if layer(module) in COMPONENTS and layer(target) not in ("core", layer(module))
    ]
    assert across == []


def test_there_is_no_import_cycle() -> None:
    graph = import_graph()
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
