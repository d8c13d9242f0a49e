"""Real servers for the tests: `cgn serve` in a subprocess, or uvicorn in a thread; stopping subprocesses."""

import functools
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_by_path(name: str, path: Path):
    """Import a module that is not on sys.path (benchmarks/, a conftest: conftest modules are not importable
    by name, and `import conftest` finds whichever folder's came first)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def root_conftest():
    """tests/conftest.py: its model builders and RedisServer."""
    return load_by_path("_cgn_root_conftest", REPO / "tests" / "conftest.py")


def random_mnist_model(root: Path, name: str = "mnist-test", seed: int = 0) -> Path:
    """tests/conftest.py's random-weight MNIST CGN."""
    return root_conftest().random_mnist_model(root, name, seed)


def random_imagenet_model(root: Path, name: str = "imagenet-cgn", seed: int = 0) -> Path:
    """tests/conftest.py's random-weight tiny ImageNet CGN."""
    return root_conftest().random_imagenet_model(root, name, seed)


def _deployment(store_root: Path, tmp: Path) -> dict:
    """What every test deployment has: the store's random mnist-test model as default, its own assets dir."""
    return {"model_store": store_root, "default_model": "mnist-test", "assets_dir": tmp / "assets"}


def server_env(store_root: Path, tmp: Path, **overrides) -> dict[str, str]:
    """The CGN_* environment of a test `cgn serve`: the store's mnist-test model, no API keys.

    Overrides name settings in lower case: `max_wait_ms=1` sets CGN_MAX_WAIT_MS=1."""
    values = _deployment(store_root, tmp) | {"api_keys": ""}
    return {f"CGN_{key.upper()}": str(value) for key, value in (values | overrides).items()}


def stop_processes(*procs: subprocess.Popen | None, grace: float = 10) -> None:
    """SIGTERM to each process still running, then wait up to `grace` s for each; kill what outlives it."""
    running = [p for p in procs if p is not None and p.poll() is None]
    for p in running:
        p.terminate()
    for p in running:
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def service_settings(store_root: Path, tmp: Path, **overrides):
    """The service Settings of a test deployment: the random mnist-test model, no API keys, short waits."""
    from service.settings import Settings

    values = _deployment(store_root, tmp) | {"max_wait_ms": 1, "api_keys": []}
    return Settings(**(values | overrides))


def wait_ready(url: str, timeout: float = 180, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready in {timeout} s")


def cgn_command() -> list[str]:
    """The installed `cgn` console script of this interpreter's environment: what the README runs."""
    script = Path(sys.executable).parent / "cgn"
    assert script.exists(), f"no `cgn` command beside {sys.executable}: bash scripts/install.sh"
    return [str(script)]


class ServerProcess:
    """`cgn serve` with CGN_* settings from `env`: the real entry point, as the README runs it."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "CGN_HOST": "127.0.0.1", "CGN_PORT": str(self.port)}
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ServerProcess":
        out = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([*cgn_command(), "serve"], cwd=REPO, env=self.env, stdout=out, stderr=out)
        wait_ready(self.url, proc=self.proc)
        return self

    def stop(self) -> None:
        stop_processes(self.proc)


class ThreadServer:
    """A real uvicorn server on a free port, in a thread of the test process (cheap to start)."""

    def __init__(self, settings):
        import uvicorn

        from service.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "ThreadServer":
        self.thread.start()
        wait_ready(self.url)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
