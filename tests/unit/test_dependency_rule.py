"""The dependency rule of docs/ARCHITECTURE.md, kept by reading every import of the package with `ast`.

Rings, innermost first: the engine protocol, the fan-out, the services, the edges; the engines
implement the protocol from outside it. A module may import its own ring and the rings inside
it, and the shared modules every ring uses; nothing inside the edges imports Starlette or
uvicorn; only the composition root picks an engine. `from server import hub` is an edge to
`server.hub` like `import server.hub` (what the grep recipe this replaces missed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "server"

SHARED = {"server.model", "server.wire", "server.paging", "server.sanitize", "server.markup", "server.parsing",
          "server.closes", "server.redis_url", "server.singleflight"}
RINGS = {  # rank: an import may only go to an equal or lower rank (or to SHARED)
    "server.engine": 0,
    "server.relay": 1, "server.hub": 1,
    "server.feed": 2, "server.newsroom": 2,
}
ENGINES = {"server.engine.memory", "server.engine.redis", "server.engine.redis_cluster", "server.engine.cluster_fanout"}  # and the outbox stores, server.engine.outbox_*
SIDE_CORE = ("server.webhooks",)  # beside the rings: no web framework, nothing from the edges or the root
ROOT_SIDE = ("server.app", "server.services", "server.cli", "server.metrics", "server.drain")
EDGES = ("server.api", "server.streams", "server.pages", "server.protocols")
WEB = ("starlette", "uvicorn")
COMPOSITION_ROOT = "server.app"
# Side modules a ring may use: newsroom scopes idempotency keys by `auth.Principal`.
ALLOWED_SIDE = {("server.newsroom", "server.auth")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module *path* imports, resolved: `from server import hub` names `server.hub`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return found


def is_engine(module: str) -> bool:
    return module in ENGINES or module.startswith("server.engine.outbox_")


def ring(module: str) -> int | None:
    if is_engine(module):
        return None
    if module.startswith("server.engine."):  # the engines' shared helpers sit with the protocol
        return RINGS["server.engine"]
    return RINGS.get(module)


def is_within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every edge against the rule, as 'importer -> imported: why'."""
    found: list[str] = []
    core = set(RINGS) | ENGINES | SHARED | {name for name in graph if is_within(name, ("server.engine", *SIDE_CORE))}
    for importer, imported in sorted(graph.items()):
        for target in sorted(imported):
            why = None
            if importer in core and is_within(target, WEB):
                why = "the core imports a web framework"
            elif is_engine(target) and importer != COMPOSITION_ROOT and not is_engine(importer):
                why = "only the composition root picks an engine"
            elif not target.startswith("server") or target == importer or target == "server":
                continue
            elif importer in SHARED and target not in SHARED:
                why = "a shared module imports a ring"
            elif is_within(importer, SIDE_CORE) and is_within(target, EDGES + ROOT_SIDE):
                why = "the webhooks import an edge or the composition root"
            elif is_engine(importer) and target not in SHARED and not is_engine(target) \
                    and ring(target) != RINGS["server.engine"]:
                why = "an engine imports something other than the protocol and the shared modules"
            elif ring(importer) is not None and target not in SHARED and (importer, target) not in ALLOWED_SIDE:
                target_ring = ring(target)
                if target_ring is None or target_ring > (ring(importer) or 0):
                    why = "an inner ring imports an outer one (or a side module)"
            if why:
                found.append(f"{importer} -> {target}: {why}")
    return found


def graph_of_package() -> dict[str, set[str]]:
    known = modules()
    names = set(known)
    return {name: {target for target in imports(name, path, names)} for name, path in known.items()}


def test_the_package_keeps_the_dependency_rule() -> None:
    """No import in server/ goes against docs/ARCHITECTURE.md's rule."""
    assert violations(graph_of_package()) == []


def test_the_rings_are_real_modules() -> None:
    """The rule names modules that exist (a rename must update the rule, not silence it)."""
    known = set(modules())
    assert set(RINGS) | ENGINES | SHARED <= known
    assert all(any(is_within(name, (edge,)) for name in known) for edge in EDGES)


@pytest.mark.parametrize(("importer", "source", "why"), [
    ("server.hub", "from server import feed", "an inner ring imports an outer one"),
    ("server.hub", "from server.api import routes", "an inner ring imports an outer one"),
    ("server.feed", "import starlette.requests", "the core imports a web framework"),
    ("server.engine.redis", "from server import canary", "an engine imports something other"),
    ("server.engine.memory", "from ..hub import Hub", "an engine imports something other"),
    ("server.streams.sse", "from server.engine.memory import MemoryEngine", "only the composition root"),
    ("server.wire", "from server import hub", "a shared module imports a ring"),
    ("server.webhooks.worker", "from server.api import routes", "the webhooks import an edge"),
    ("server.webhooks.worker", "from server.engine.outbox_redis import RedisOutbox", "only the composition root"),
])
def test_a_wrong_edge_is_caught_however_it_is_written(tmp_path: Path, importer: str, source: str, why: str) -> None:
    """Each spelling of a forbidden import (`from server import x`, relative, dotted) is reported."""
    path = tmp_path / "module.py"
    path.write_text(source + "\n")
    if importer == "server.engine.memory":  # resolve the relative import as if it sat in server/engine/
        package_init = tmp_path / "engine"
        package_init.mkdir()
        path = package_init / "memory.py"
        path.write_text(source + "\n")
    names = set(modules())
    found = imports(importer, path, names)
    assert any(why in line for line in violations({importer: found})), (source, found)
