"""The import direction of the house (DESIGN §2): every import in ``src/spendgate`` points
down the layer order below, or stays within its own package.

Read from the AST of every module: top-level and function-level imports, ``import x`` and
``from x import y`` (``y`` counts as the module ``x.y`` when it is one), relative imports
resolved, and imports under ``if TYPE_CHECKING`` too (a type is a dependency). It fails,
naming the file, the line and both layers, on

* an import from a lower layer into a higher one;
* an import between the peers (gateway, admin, jobs, sdk, ui: ``server`` mounts them side by side);
* an import cycle between packages: the top-level ones (``spendgate.admin`` ↔
  ``spendgate.gateway``) and, inside each package, its direct sub-packages and modules
  (``core.pricing`` ↔ ``core.usage``, ``admin.users`` ↔ ``admin.teams``);
* a package or module that is not in the order (a new one is placed here deliberately).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "spendgate"

LAYERS: list[tuple[str, ...]] = [
    # Lowest first. ``errors`` imports nothing of spendgate, so the pure core may raise its
    # errors: it is the one name below ``core``, and ``core`` imports nothing else.
    ("errors",),
    ("core",),
    ("catalogue",),
    ("costs",),
    ("config",),
    ("stores",),
    ("alerts",),  # alerts decided once and delivered from an outbox (issue #15): below every detector
    ("providers",),
    ("enforcement",),
    ("ledger",),
    ("entities",),
    ("metrics",),  # Prometheus counters and budget gauges (issue #15): beside the ledger, below the gateway
    ("telemetry",),  # OpenTelemetry export of spend events (issue #15): composed by the server
    ("batches",),  # managed files and batches, their checks and pricing (issue #12)
    ("http",),
    ("gateway", "admin", "jobs", "sdk", "ui"),  # peers: never import each other; ui: the dashboard
    ("server",),  # the composition root
    ("cli",),
    ("", "openai", "anthropic"),  # the package facade (lazy re-exports, SDK settings); ready SDK clients
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


class Import(NamedTuple):
    source: str  # dotted module doing the import
    target: str  # dotted spendgate module imported
    path: Path
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = SRC.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _resolve(source: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute name of a (possibly relative) ``from`` import's module."""
    if not level:
        return module or ""
    package = source.split(".") if is_package else source.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _imports() -> Iterator[Import]:
    for path in sorted((SRC / ROOT).rglob("*.py")):
        source = _module_name(path)
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                module = _resolve(source, is_package, node.level, node.module)
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.append(sub if alias.name != "*" and _is_module(sub) else module)
            for target in targets:
                if target == ROOT or target.startswith(ROOT + "."):
                    yield Import(source, target, path, node.lineno)


def _layer(dotted: str) -> str:
    """``spendgate.core.money`` → ``core``; the facade ``spendgate`` → ``""``."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def _node(dotted: str, depth: int) -> str:
    return ".".join(dotted.split(".")[: depth + 1])


def _where(imp: Import) -> str:
    return f"{imp.path.relative_to(SRC.parent)}:{imp.line}"


def _cycles(imports: list[Import], depth: int) -> list[str]:
    """Import cycles between the nodes ``depth`` levels below ``spendgate`` (1: its top-level
    packages; 2: the direct children of each package), each with one import per edge."""
    edges: dict[str, dict[str, Import]] = defaultdict(dict)
    for imp in imports:
        a, b = _node(imp.source, depth), _node(imp.target, depth)
        if a == b or a.count(".") < depth or b.count(".") < depth:
            continue
        if depth > 1 and _node(a, depth - 1) != _node(b, depth - 1):
            continue  # between two packages: the level above sees it
        edges[a].setdefault(b, imp)
    found: list[str] = []
    for component in _strongly_connected(edges):
        members = sorted(component)
        where = [
            f"{a} → {b} ({_where(edges[a][b])})" for a in members for b in sorted(edges[a]) if b in component
        ]
        found.append(f"import cycle between {', '.join(members)}: " + "; ".join(where))
    return found


def _strongly_connected(edges: dict[str, dict[str, Import]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative; components of one node are left out (no self-loops)."""
    nodes = sorted({*edges, *(b for out in edges.values() for b in out)})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(component)
    return out


def test_every_package_is_placed_in_the_order() -> None:
    names = {_layer(_module_name(p)) for p in (SRC / ROOT).rglob("*.py")}
    unplaced = sorted(names - RANK.keys())
    assert not unplaced, f"not in the layer order of tests/test_layers.py: {unplaced}"


def test_imports_point_down_the_layers() -> None:
    wrong: list[str] = []
    for imp in _imports():
        have, want = _layer(imp.source), _layer(imp.target)
        if have == want or have not in RANK or want not in RANK:
            continue  # within one package; an unplaced one fails the test above
        if RANK[want] > RANK[have]:
            wrong.append(f"{_where(imp)}: {have} imports {imp.target} of the higher layer {want}")
        elif RANK[want] == RANK[have]:
            wrong.append(f"{_where(imp)}: {have} imports {imp.target} of its peer {want}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(dict.fromkeys(wrong))


def test_core_imports_nothing_above_it() -> None:
    wrong = [
        f"{_where(imp)}: {imp.source} imports {imp.target}"
        for imp in _imports()
        if _layer(imp.source) == "core" and _layer(imp.target) not in ("core", "errors")
    ]
    assert not wrong, "the core is pure: it imports only itself and spendgate.errors:\n" + "\n".join(wrong)


def test_no_import_cycles_between_packages() -> None:
    imports = list(_imports())
    cycles = _cycles(imports, 1) + _cycles(imports, 2)
    assert not cycles, "\n".join(cycles)


def test_the_checks_see_what_they_should() -> None:
    """The parser itself: relative, function-level and ``from package import module``
    imports are all found."""
    found = {(i.source, i.target) for i in _imports()}
    assert ("spendgate.core.money", "spendgate.errors") in found
    assert _resolve("spendgate.core.usage.model", False, 2, "money") == "spendgate.core.money"
    assert _resolve("spendgate.core", True, 1, "money") == "spendgate.core.money"
    assert _resolve("spendgate.core.usage", True, 2, None) == "spendgate.core"
    edges = [
        Import("spendgate.a.x", "spendgate.b.y", SRC, 1),
        Import("spendgate.b.z", "spendgate.a", SRC, 2),
        Import("spendgate.a.x", "spendgate.a.w", SRC, 3),
        Import("spendgate.a.w", "spendgate.a.x.q", SRC, 4),
    ]
    level1, level2 = _cycles(edges, 1), _cycles(edges, 2)
    assert len(level1) == 1 and "spendgate.a, spendgate.b" in level1[0]
    assert len(level2) == 1 and "spendgate.a.w, spendgate.a.x" in level2[0]
