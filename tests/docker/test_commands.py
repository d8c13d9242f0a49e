"""What the containers run resolves to what the package installs: the `cgn` console script and its
subcommands, the health-check tool, and health-check URLs the app really serves."""

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from dockerspec import COMPOSE, COMPOSE_GPU, ROOT, as_argv, compose_config, env_of, free_port, healthcheck_argv

HEALTHCHECK_TOOL = ROOT / "docker" / "healthcheck.py"
DOCS = [ROOT / "docs" / "deploy.md", ROOT / "README.md", COMPOSE, COMPOSE_GPU]


def _cgn_services() -> list[str]:
    return [n for n, s in compose_config()["services"].items() if "build" in s]


def _parse(argv: list[str]):
    """The `cgn` parser's reading of argv; skips (naming the module) a subcommand not written yet."""
    from cgn_cli.main import SUBCOMMANDS, build_parser

    assert argv[0] == "cgn", argv
    sub = argv[1]
    assert sub in SUBCOMMANDS, f"`cgn {sub}` is no subcommand of cgn ({', '.join(SUBCOMMANDS)})"
    if importlib.util.find_spec(f"cgn_cli.{sub}") is None:
        pytest.skip(f"cgn_cli/{sub}.py (the `cgn {sub}` subcommand) is not in the tree yet")
    args = build_parser().parse_args(argv[1:])
    assert args.func.__module__ == f"cgn_cli.{sub}"
    return args


def test_cgn_is_the_console_script_the_package_installs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["cgn"] == "cgn_cli.main:main"
    (ep,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "cgn"]
    from cgn_cli.main import main

    assert ep.load() is main
    script = Path(sysconfig.get_path("scripts")) / "cgn"  # where pip put this interpreter's console scripts
    exe = str(script) if script.is_file() else shutil.which("cgn")
    assert exe, "the cgn console script is not installed: bash scripts/install.sh"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "serve" in out.stdout, out.stderr


@pytest.mark.parametrize("service", ["api", "worker"])
def test_service_commands_resolve_to_cgn_subcommands(service):
    svc = compose_config()["services"][service]
    assert "entrypoint" not in svc  # the image sets none either: the command is what runs (under init)
    argv = as_argv(svc["command"])
    args = _parse(argv)
    assert args.command == {"api": "serve", "worker": "worker"}[service]


def test_every_service_with_an_image_of_ours_is_checked():
    assert sorted(_cgn_services()) == ["api", "worker"]


def _documented_cgn_commands() -> list[tuple[str, list[str]]]:
    """`docker compose run|exec ... SERVICE cgn ...` lines in the deploy docs, README and compose comments."""
    found = []
    pattern = re.compile(
        r"docker compose (?:[^`\n|]*?[ \t])?(?:run|exec)[ \t]+(?:--?\S+[ \t]+)*(\w+)[ \t]+(cgn(?:[ \t]+[\w.:/=-]+)+)"
    )
    for path in DOCS:
        if not path.exists():
            continue
        for m in pattern.finditer(path.read_text()):
            found.append((f"{path.name}: {m.group(0).strip()}", m.group(1), m.group(2).split()))
    return found


def test_docs_name_the_model_pull_command():
    commands = [" ".join(argv) for _, _, argv in _documented_cgn_commands()]
    assert any(c.startswith("cgn models pull imagenet") for c in commands), commands


@pytest.mark.parametrize(
    "where,service,argv", _documented_cgn_commands(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_documented_operations_parse(where, service, argv):
    """`docker compose run --rm api cgn models pull imagenet` and friends name a real service and subcommand."""
    assert service in compose_config()["services"], where
    _parse(argv)


def _route_paths(tmp_path: Path) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation of `create_app()`, from its OpenAPI document."""
    from service.app import create_app
    from service.settings import Settings

    settings = Settings(_env_file=None, model_store=tmp_path / "models", assets_dir=tmp_path / "assets")
    paths = create_app(settings).openapi()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def test_api_health_check_url_is_a_route_of_the_app(tmp_path):
    api = compose_config()["services"]["api"]
    argv = healthcheck_argv(api)
    assert argv[0] == "cgn-healthcheck"
    url = urlsplit(argv[1])
    assert url.hostname == "127.0.0.1"
    assert str(url.port) == env_of(api)["CGN_PORT"]  # the port the API listens on inside the container
    assert ("GET", url.path) in _route_paths(tmp_path)
    assert url.path == "/readyz"


def test_worker_health_check_url_is_its_metrics_port():
    worker = compose_config()["services"]["worker"]
    argv = as_argv(worker["command"])
    args = _parse(argv)
    url = urlsplit(healthcheck_argv(worker)[1])
    assert url.port == args.metrics_port and url.path == "/metrics"


class _Handler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 - the stdlib's name
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status,code", [(200, 0), (503, 1), (404, 1)])
def test_health_check_tool_exit_code_follows_the_http_status(status, code):
    handler = type("H", (_Handler,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/readyz"
        result = subprocess.run([sys.executable, str(HEALTHCHECK_TOOL), url], capture_output=True, timeout=30)
        assert result.returncode == code, result.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_health_check_tool_fails_when_nothing_listens():
    url = f"http://127.0.0.1:{free_port()}/readyz"
    result = subprocess.run([sys.executable, str(HEALTHCHECK_TOOL), url, "2"], capture_output=True, timeout=30)
    assert result.returncode == 1 and b"unhealthy" in result.stderr
