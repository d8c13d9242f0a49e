"""The SDK package's own import graph: no import circle, no private name imported across modules."""

import ast
from pathlib import Path

PACKAGE = "cgn_client"
ROOT = Path(__file__).resolve().parents[2] / "client" / PACKAGE


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(module imported, name imported from it or None) for every import in the file, those inside functions
    included (a lazy import closes a circle as surely as a top-level one). Only this package's modules."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub, None) if sub in modules else (base, alias.name))
    return [(m, n) for m, n in out if m in modules]


def _graph(root: Path = ROOT) -> tuple[dict[str, set[str]], list[str]]:
    """Edges module -> modules of the package it imports, and the private names imported across modules."""
    modules = _modules(root)
    edges, private = {}, []
    for name, path in modules.items():
        edges[name] = set()
        for target, imported in _imports(name, path, modules):
            if target != name:
                edges[name].add(target)
            if imported and imported.startswith("_") and target != name:
                private.append(f"{name} imports {target}.{imported}")
    return edges, private


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_package_has_no_import_circle():
    edges, _ = _graph()
    assert {"cgn_client._client", "cgn_client._base_client", "cgn_client.resources.batches"} <= set(edges)
    cycle = _cycle(edges)
    assert cycle is None, "import circle: " + " -> ".join(cycle)
    # the package root re-exports; a module importing from it would close a circle through it
    assert not [m for m, targets in edges.items() if PACKAGE in targets], "a module imports from the package root"


def test_no_private_name_is_imported_across_modules():
    _, private = _graph()
    assert private == []


def test_the_checker_finds_a_lazy_circle_over_a_private_name(tmp_path):
    """The shape this package once had: the client imported the batch module inside a method, and the batch
    module imported the client's private Retry-After parser."""
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from cgn_client._client import Client\n")
    (pkg / "_client.py").write_text(
        "def _retry_after(v):\n    return v\n\n\nclass Client:\n"
        "    def submit(self):\n        from cgn_client import batch\n\n        return batch.submit(self)\n"
    )
    (pkg / "batch.py").write_text("from ._client import _retry_after\n\n\ndef submit(c):\n    return c\n")
    edges, private = _graph(pkg)
    assert _cycle(edges) == ["cgn_client._client", "cgn_client.batch", "cgn_client._client"]
    assert private == ["cgn_client.batch imports cgn_client._client._retry_after"]
