"""Imports point down (DESIGN.md's layers), adapters use only the public API, no cycles.

An AST scan of every module under ``src/``, counting every import — at module level or inside
a function, except under ``if TYPE_CHECKING:`` — so a lazy import cannot hide a dependency.

Layers, from the bottom: the core (``seqengine`` and its private modules, ``seqengine.ai``'s
protocol and offline writer) ← ``seqengine.storage`` ← ``seqengine.runtime`` ←
``seqengine.sim`` ← ``seqengine.console``; the CLI entry (``seqengine._cli``) and
``seqengine.testing`` sit on top. The adapters (``seqengine_x``, ``seqengine_linkedin``,
``seqengine_email``) import only public ``seqengine`` names, exactly as a third-party adapter
would, and the runtime imports no adapter by name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Layer of each package prefix (longest prefix wins); a module may import its own layer and
#: the layers below it.
LAYERS: dict[str, int] = {
    "seqengine": 0,
    "seqengine.ai": 0,
    "seqengine.storage": 1,
    "seqengine.runtime": 2,
    "seqengine.sim": 3,
    "seqengine.console": 4,
    "seqengine._cli": 5,
    "seqengine.cli": 5,
    "seqengine.testing": 5,
    "seqengine.__main__": 5,
}
ADAPTERS = ("seqengine_x", "seqengine_linkedin", "seqengine_email")
#: The one upward edge allowed, and why: the package namespace offers ``seqengine.simulate``
#: (README, notebooks) through a lazy module ``__getattr__``; no core module uses it, and
#: ``import seqengine`` does not import the simulation.
ALLOWED_UPWARD = {("seqengine", "seqengine.sim")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``module`` imports (absolute names), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from (x for n in child.orelse for x in visit_one(n))
                continue
            yield from visit_one(child)

    def visit_one(node: ast.AST) -> Iterator[tuple[str, int]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            for alias in node.names:  # ``from pkg import submodule``
                yield f"{base}.{alias.name}", node.lineno
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield str(node.args[0].value), node.lineno
        yield from visit(node)

    yield from visit(tree)


def _graph() -> dict[str, dict[str, int]]:
    modules = _modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for target, line in _imports(name, path):
            if target in modules and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def _layer(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for prefix, layer in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > best[0]
        ):
            best = (len(prefix), layer)
    return None if best is None else best[1]


def _where(module: str, line: int) -> str:
    return f"{_modules()[module].relative_to(SRC.parent)}:{line}"


def test_layers_import_only_downwards() -> None:
    upward = []
    for module, edges in _graph().items():
        mine = _layer(module)
        if mine is None:
            continue
        for target, line in edges.items():
            theirs = _layer(target)
            if target.startswith(ADAPTERS):
                upward.append(f"{_where(module, line)}: {module} imports adapter {target}")
            elif theirs is not None and theirs > mine and (module, target) not in ALLOWED_UPWARD:
                upward.append(f"{_where(module, line)}: {module} imports {target} (a layer up)")
    assert upward == [], "\n".join(upward)


def test_adapters_import_only_public_seqengine_names() -> None:
    private = []
    for module, edges in _graph().items():
        if not module.startswith(ADAPTERS):
            continue
        for target, line in edges.items():
            public_api = target == "seqengine" or target.startswith("seqengine.")
            if public_api and any(part.startswith("_") for part in target.split(".")):
                private.append(f"{_where(module, line)}: {module} imports {target}")
    assert private == [], "\n".join(private)


def test_no_import_cycles() -> None:
    graph = _graph()

    # Package __init__ files re-export their submodules: an edge into a package's own
    # submodule from its __init__ is how packages work, not a cycle between concerns.
    def edges(module: str) -> list[str]:
        return [t for t in graph[module] if not t.startswith(module + ".")]

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges(v):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    assert cycles == [], "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("module", "layer"),
    [("seqengine._plan", 0), ("seqengine.storage.sqlite", 1), ("seqengine.runtime._worker", 2)],
)
def test_the_scan_sees_the_layers(module: str, layer: int) -> None:
    """The scan itself: modules are found and placed (a scan that found nothing would pass)."""
    assert module in _modules()
    assert _layer(module) == layer
    assert _graph()[module], f"{module} imports nothing the scan could see"
