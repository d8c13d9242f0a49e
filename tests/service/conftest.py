"""Service test fixtures: one `cgn serve` process for the session, thread servers for special settings."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from servers import ServerProcess, ThreadServer, random_mnist_model  # noqa: E402


@pytest.fixture(scope="session")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("service-store") / "models"
    random_mnist_model(root)
    return root


@pytest.fixture(scope="session")
def server(store_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`cgn serve` on the random-weight mnist-test model; micro-batches wait up to 10 ms for company."""
    tmp = tmp_path_factory.mktemp("service")
    env = {
        "CGN_MODEL_STORE": str(store_root),
        "CGN_DEFAULT_MODEL": "mnist-test",
        "CGN_ASSETS_DIR": str(tmp / "assets"),
        "CGN_MAX_WAIT_MS": "10",
        "CGN_MAX_SAMPLES": "256",
        "CGN_MAX_BODY_BYTES": str(256 * 1024),
        "CGN_THREADS": "1",
        "CGN_MAX_ASSET_PIXELS": "1000000",
        "CGN_API_KEYS": "",
    }
    proc = ServerProcess(env, tmp / "server.log").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def url(server: ServerProcess) -> str:
    return server.url


def settings_for(store_root: Path, tmp: Path, **overrides):
    from service.settings import Settings

    values = {
        "model_store": store_root,
        "default_model": "mnist-test",
        "assets_dir": tmp / "assets",
        "max_wait_ms": 1,
        "api_keys": [],
    }
    return Settings(**(values | overrides))


@pytest.fixture(scope="module")
def thread_server(store_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """Factory: a uvicorn server in a thread with Settings overrides; stopped at module end."""
    started: list[ThreadServer] = []

    def make(**overrides) -> ThreadServer:
        tmp = tmp_path_factory.mktemp("thread-server")
        s = ThreadServer(settings_for(store_root, tmp, **overrides)).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
