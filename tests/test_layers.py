"""The package layers hold, and no module imports itself in a circle.

Layers, lowest first: cgn (core ML) -> model_store -> service -> cgn_cli. A package imports only itself and
packages below it. The client SDK (cgn_client) and the classifier job (cgn_classifier) stand apart: they import
none of the server packages, and the job may import the SDK. Every import counts for the layers, however lazy
(inside a function, or `importlib.import_module("pkg.mod")`); for circles, only the imports a module runs while
it is being imported (its body, class bodies, top-level `if`/`try`, not `if TYPE_CHECKING:`).

The modules are read as source (ast), never imported: the test takes well under a second.
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PACKAGES = {  # import name -> directory of the package, relative to the repository root
    "cgn": "cgn",
    "model_store": "model_store",
    "service": "service",
    "cgn_cli": "cgn_cli",
    "cgn_client": "client/cgn_client",
    "cgn_classifier": "jobs/classifier/cgn_classifier",
}
SERVER_LAYERS = ["cgn", "model_store", "service", "cgn_cli"]  # lowest first
ALLOWED = {name: set(SERVER_LAYERS[: i + 1]) for i, name in enumerate(SERVER_LAYERS)} | {
    "cgn_client": {"cgn_client"},
    "cgn_classifier": {"cgn_client", "cgn_classifier"},
}


@dataclass(frozen=True)
class Import:
    target: str  # absolute dotted module name
    line: int
    module_level: bool  # runs while the importing module itself is being imported
    names: tuple[str, ...] | None = None  # `from target import names`: submodules or attributes of target


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: list[Import]


def discover(repo: Path, packages: dict[str, str]) -> dict[str, Module]:
    modules = {}
    for top, directory in packages.items():
        root = repo / directory
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            is_package = parts[-1] == "__init__"
            name = ".".join([top, *(parts[:-1] if is_package else parts)])
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            modules[name] = Module(name, path, is_package, list(imports_of(tree, name, is_package)))
    return modules


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_module_target(node: ast.Call) -> str | None:
    """`importlib.import_module("a.b")` -> "a.b"; with an f-string, its constant head ("a.{x}" -> "a")."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        head = str(arg.values[0].value).rsplit(".", 1)[0]
        return head or None
    return None


def imports_of(tree: ast.Module, module: str, is_package: bool) -> Iterator[Import]:
    def visit(node: ast.AST, module_level: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno, module_level)
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names)
            yield Import(_absolute(node, module, is_package), node.lineno, module_level, names)
        elif isinstance(node, ast.Call) and (target := _import_module_target(node)):
            yield Import(target, node.lineno, False)  # a call: never counted as a module-level edge
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, False)
            for child in node.orelse:
                yield from visit(child, module_level)
            return
        inner = module_level and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            yield from visit(child, inner)

    for statement in tree.body:
        yield from visit(statement, True)


def top(name: str) -> str:
    return name.split(".", 1)[0]


def layer_violations(modules: dict[str, Module], allowed: dict[str, set[str]]) -> list[str]:
    out = []
    for m in modules.values():
        own = top(m.name)
        for imp in m.imports:
            other = top(imp.target)
            if other in allowed and other not in allowed[own]:
                where = f"{m.path.relative_to(REPO) if m.path.is_relative_to(REPO) else m.path}:{imp.line}"
                lazy = "" if imp.module_level else " (lazy)"
                out.append(f"{where}: {m.name} imports {imp.target}{lazy}; {own} may import only {_list(allowed[own])}")
    return sorted(set(out))


def _list(names: set[str]) -> str:
    return ", ".join(sorted(names))


def depends_on(module: str, imp: Import, modules: dict[str, Module]) -> list[str]:
    """The project modules whose bodies an import needs: the modules it names (`from pkg import sub` names the
    submodule pkg.sub; `from pkg import attr` names pkg) and the packages on the way down to them. The
    importing module's own packages on the way down are not counted: they are already importing when its body
    runs, and only reading a name from one (`from own_package import attr`) depends on its body."""
    if imp.names is None:
        named = [imp.target]
    else:
        named = [f"{imp.target}.{n}" if f"{imp.target}.{n}" in modules else imp.target for n in imp.names]
    out = []
    for final in dict.fromkeys(named):
        parts = final.split(".")
        for i in range(1, len(parts)):
            package = ".".join(parts[:i])
            if package in modules and not f"{module}.".startswith(f"{package}."):
                out.append(package)
        if final in modules and final != module:
            out.append(final)
    return list(dict.fromkeys(out))


def import_graph(modules: dict[str, Module]) -> dict[str, dict[str, int]]:
    """module -> {module it needs while being imported: line of the import}."""
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for m in modules.values():
        for imp in m.imports:
            if imp.module_level:
                for target in depends_on(m.name, imp, modules):
                    graph[m.name].setdefault(target, imp.line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle per strongly connected component with more than one module (Tarjan), shortest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:  # recursive: the graph has a few hundred modules at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
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
            if len(component) > 1 or v in graph[v]:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted((_circle(graph, c) for c in components), key=lambda c: (len(c), c))


def _circle(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """The shortest path from the component's first module back to itself (breadth first), closed."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if w not in previous:
                    previous[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no circle through {start} in {component}")


def describe(circle: list[str], graph: dict[str, dict[str, int]], modules: dict[str, Module]) -> str:
    steps = [circle[0]]
    for a, b in zip(circle, circle[1:], strict=False):
        path = modules[a].path
        where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        steps.append(f"-> {b}  ({where}:{graph[a][b]})")
    return "\n    ".join(steps)


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return discover(REPO, PACKAGES)


def test_every_package_is_read(modules):
    for name in PACKAGES:
        assert name in modules, f"{name}: no {PACKAGES[name]}/__init__.py; has the package moved?"
    assert len(modules) > 40


def test_each_package_imports_only_itself_and_the_layers_below(modules):
    found = layer_violations(modules, ALLOWED)
    rules = "\n".join(f"  {name}: {_list(allowed)}" for name, allowed in ALLOWED.items())
    assert not found, f"imports across the layers ({len(found)}):\n  " + "\n  ".join(found) + f"\nallowed:\n{rules}"


def test_no_module_imports_itself_in_a_circle(modules):
    graph = import_graph(modules)
    found = cycles(graph)
    text = "\n  ".join(describe(c, graph, modules) for c in found)
    assert not found, f"import circles at module level ({len(found)}):\n  {text}"


# The checker itself, on a made-up tree: it must see lazy imports, relative imports and submodules.


def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Module]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return discover(tmp_path, {"low": "low", "high": "high"})


def test_the_checker_finds_lazy_upward_imports_and_circles(tmp_path):
    modules = _tree(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/a.py": "from . import b\n",  # a -> b -> c -> a
            "low/b.py": "import low.c as c\n",
            "low/c.py": "from low.a import thing\n",
            "low/d.py": "def f():\n    from high import x\n    import low.a\n",  # lazy: a layer break, no edge
            "low/e.py": "import importlib\nimportlib.import_module(f'high.{1}')\n",
            "low/f.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import low.g\n",
            "low/g.py": "import low.f\n",
            "high/__init__.py": "from low import a\n",
        },
    )
    found = layer_violations(modules, {"low": {"low"}, "high": {"low", "high"}})
    assert [f.split(": ", 1)[1].split(";")[0] for f in found] == [
        "low.d imports high (lazy)",
        "low.e imports high (lazy)",
    ]
    graph = import_graph(modules)
    assert "low.g" not in graph["low.f"] and "low" not in graph["low.a"]
    assert cycles(graph) == [["low.a", "low.b", "low.c", "low.a"]]
    assert "low/b.py:1" in describe(cycles(graph)[0], graph, modules)
