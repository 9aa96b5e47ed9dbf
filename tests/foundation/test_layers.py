"""The product's packages form layers: each imports only the layers below it, no module imports
itself back through others (deferred imports included: they hide a circle, they do not remove it),
and nothing in the product imports the local environment (localdev: the test doubles and the local
cluster, which the product image does not ship)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Bottom to top; a package may import its own modules and those of lower layers only.
LAYERS: list[set[str]] = [
    {"schemas"},
    {"vault"},
    {"datamover", "kube"},
    {"alicloud"},
    {"activities"},
    {"workflows"},
    {"workers"},
    {"backupctl"},
    {"controller"},  # the Kubernetes-native door, on the CLI's job commands (plugged into backupctl)
]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
PRODUCT = set(RANK)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every absolute import in the file, at any depth (function bodies included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for name in _imports(path):
            target = resolve(name)
            # A module importing its own package's __init__ is not an edge of interest.
            if target and target != module and not module.startswith(target + "."):
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in list(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_packages_import_only_lower_layers() -> None:
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if (src := module.split(".")[0]) != (dst := target.split(".")[0]) and RANK[dst] >= RANK[src]
    )
    assert upward == []


def test_no_import_circles() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    # The checker itself: a circle through three modules, and one through a deferred import.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_product_never_imports_the_local_environment() -> None:
    offenders = sorted(
        f"{module} -> {name}"
        for module, path in _modules().items()
        for name in _imports(path)
        if name.split(".")[0] in ("localdev", "tests")
    )
    assert offenders == []


def test_the_product_image_ships_the_product_only() -> None:
    containerfile = (ROOT / "deploy" / "Containerfile").read_text()
    copied = {line.split()[1] for line in containerfile.splitlines() if line.startswith("COPY ")}
    assert copied >= PRODUCT
    assert not copied & {"localdev", "tests", "bench"}
