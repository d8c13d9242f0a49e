"""Reading the deployment files the way Docker does, without a Docker engine.

- compose files: YAML (merge keys included), `${VAR:-default}` interpolation, override merging;
- the Dockerfile: BuildKit's own parser (the `dockerfile` package), stages and what a target inherits;
- .dockerignore: the build context a `docker build .` would send.
"""

import os
import re
import shlex
import socket
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_GPU = ROOT / "docker-compose.gpu.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = Path(__file__).parent / "compose-spec.schema.json"


def free_port() -> int:
    """The same as tests/conftest.py's. Not imported from there: with several conftest.py files and no
    packages, `import conftest` gets whichever conftest pytest loaded last (in a full run, tests/client's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- compose ----------------------------------------------------------------------------------------

_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.S)


class InterpolationError(ValueError):
    pass


def interpolate_str(text: str, env: dict[str, str]) -> str:
    """Compose's rules: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR:+alt}, $$ for $."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        if m.group("bare"):
            return env.get(m.group("bare"), "")
        b = _BRACED.match(m.group("braced"))
        if b is None:
            raise InterpolationError(f"invalid interpolation {m.group(0)!r}")
        name, op, arg = b.group("name"), b.group("op"), b.group("arg") or ""
        value = env.get(name)
        unset_or_empty = not value
        if op is None:
            return value or ""
        if op in (":-", "-"):
            missing = unset_or_empty if op == ":-" else value is None
            return interpolate_str(arg, env) if missing else value
        if op in (":?", "?"):
            missing = unset_or_empty if op == ":?" else value is None
            if missing:
                raise InterpolationError(f"required variable {name} is missing: {arg}")
            return value
        present = (not unset_or_empty) if op == ":+" else value is not None
        return interpolate_str(arg, env) if present else ""

    return _VAR.sub(sub, text)


def interpolate(node: object, env: dict[str, str]) -> object:
    if isinstance(node, str):
        return interpolate_str(node, env)
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    return node


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _merge(base: object, over: object) -> object:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    return over


def _normalise(service: dict) -> dict:
    """environment as a mapping (compose allows a list of KEY=VALUE too), so overrides merge by key."""
    env = service.get("environment")
    if isinstance(env, list):
        service = {**service, "environment": dict(item.split("=", 1) for item in env)}
    return service


def compose_config(*files: Path, env: dict[str, str] | None = None) -> dict:
    """What `docker compose -f a -f b config` resolves to, for the keys this project uses."""
    env = {} if env is None else env
    merged: dict = {}
    for path in files or (COMPOSE,):
        doc = interpolate(load_yaml(path), env)
        doc = {k: v for k, v in doc.items() if not k.startswith("x-")}
        doc["services"] = {n: _normalise(s) for n, s in (doc.get("services") or {}).items()}
        merged = _merge(merged, doc)
    return merged


def as_argv(command: object) -> list[str]:
    """A compose/Dockerfile command in exec form; a string is split like a shell would."""
    if command is None:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    return [str(a) for a in command]


def env_of(service: dict) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in (service.get("environment") or {}).items()}


def named_mounts(service: dict) -> dict[str, str]:
    """container path -> named volume, from the short `name:/path[:mode]` syntax and the long one."""
    out = {}
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            source, target = v.split(":")[:2]
        else:
            source, target = v.get("source"), v["target"]
        out[target] = source
    return out


def healthcheck_argv(service: dict) -> list[str]:
    test = (service.get("healthcheck") or {}).get("test")
    argv = as_argv(test)
    if argv[:1] == ["CMD"]:
        return argv[1:]
    if argv[:1] == ["CMD-SHELL"]:
        return ["/bin/sh", "-c", " ".join(argv[1:])]
    return argv


# ---- Dockerfile -------------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list = field(default_factory=list)
    parent: "Stage | None" = None

    def chain(self) -> list["Stage"]:
        return ([*self.parent.chain()] if self.parent else []) + [self]

    def all(self, cmd: str) -> list:
        """Instructions of this kind in this stage and the stages it is built FROM."""
        return [i for s in self.chain() for i in s.instructions if i.cmd == cmd]

    def last(self, cmd: str):
        found = self.all(cmd)
        return found[-1] if found else None


def parse_dockerfile(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """Stages by name (and by index), parsed with BuildKit's parser; a syntax error raises."""
    import dockerfile

    stages: dict[str, Stage] = {}
    current: Stage | None = None
    index = 0
    for ins in dockerfile.parse_file(str(path)):
        if ins.cmd == "FROM":
            value = list(ins.value)
            base = value[0]
            name = value[2] if len(value) >= 3 and value[1].upper() == "AS" else None
            current = Stage(name, base, parent=stages.get(base))
            stages[str(index)] = current
            index += 1
            if name:
                stages[name] = current
        elif current is not None:
            current.instructions.append(ins)
    return stages


def image_env(stage: Stage) -> dict[str, str]:
    """ENV a container of this target starts with (ARG references are left as written)."""
    env: dict[str, str] = {}
    for ins in stage.all("ENV"):
        values = list(ins.value)
        for key, value in zip(values[::2], values[1::2], strict=True):
            env[key] = value
    return env


def copy_sources(stage: Stage) -> list[tuple[str, str]]:
    """(source in the build context, destination) of every COPY/ADD that reads the context."""
    out = []
    for ins in stage.all("COPY") + stage.all("ADD"):
        if any(f.startswith("--from") for f in ins.flags):
            continue
        *sources, dest = ins.value
        out += [(s, dest) for s in sources]
    return out


def exec_form(ins) -> list[str]:
    if ins is None:
        return []
    values = list(ins.value)
    if ins.cmd == "HEALTHCHECK":
        if values[0].upper() == "NONE":
            return []
        values = values[1:]  # drop CMD
    if ins.json:
        return values
    return ["/bin/sh", "-c", " ".join(values)]


# ---- .dockerignore ----------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern:
    """Go's filepath.Match syntax plus `**` (any number of directories), as Docker reads it."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        c = pattern[i]
        j = pattern.find("]", i + 1) if c == "[" else -1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif j > 0:
            body = pattern[i + 1 : j]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern]]:
    """(exclude?, regex) per line, as Docker cleans them: comments dropped, leading / stripped."""
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((not negate, _pattern_regex(line)))
    return rules


def in_context(relpath: str, rules: list[tuple[bool, re.Pattern]] | None = None) -> bool:
    """Whether `docker build .` sends this file: the last rule matching it or one of its parent dirs wins."""
    rules = dockerignore_rules() if rules is None else rules
    parts = relpath.strip("/").split("/")
    prefixes = ["/".join(parts[: k + 1]) for k in range(len(parts))]
    excluded = False
    for exclude, regex in rules:
        if any(regex.match(p) for p in prefixes):
            excluded = exclude
    return not excluded


def context_files(source: str, rules: list[tuple[bool, re.Pattern]] | None = None) -> list[str]:
    """Files under a COPY source that reach the build context (git-tracked or not, like Docker)."""
    rules = dockerignore_rules() if rules is None else rules
    base = ROOT / source
    if any(ch in source for ch in "*?["):
        found = [p for p in ROOT.glob(source)]
    elif base.is_dir():
        found = [p for p in base.rglob("*") if p.is_file()]
    else:
        found = [base] if base.exists() else []
    rels = [p.relative_to(ROOT).as_posix() for p in found if p.is_file()]
    return [r for r in rels if in_context(r, rules)]


def env_example() -> dict[str, str]:
    """Variables .env.example documents, set (`VAR=x`) or shown commented out (`# VAR=x`)."""
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def compose_variables(*files: Path) -> set[str]:
    """Names the compose files interpolate."""
    names: set[str] = set()
    for path in files or (COMPOSE, COMPOSE_GPU):
        for m in _VAR.finditer(path.read_text()):
            if m.group("bare"):
                names.add(m.group("bare"))
            elif m.group("braced"):
                b = _BRACED.match(m.group("braced"))
                if b:
                    names.add(b.group("name"))
    return names
