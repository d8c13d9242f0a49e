"""Client SDK fixtures: a real uvicorn server in a thread for the session (tests/service/servers.py)."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "service"))
from servers import ThreadServer, random_mnist_model  # noqa: E402


def _settings(root: Path, tmp: Path, **overrides):
    from service.settings import Settings

    values = {"model_store": root, "default_model": "mnist-test", "assets_dir": tmp / "assets", "max_wait_ms": 2}
    return Settings(**(values | overrides))


@pytest.fixture(scope="session")
def client_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client-store") / "models"
    random_mnist_model(root)
    return root


@pytest.fixture(scope="session")
def api(client_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    srv = ThreadServer(_settings(client_store, tmp_path_factory.mktemp("client-api"), api_keys=["sdk-key"])).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def busy_api(client_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    """At most one waiting request, and a first request that waits 300 ms for company: 503s under load."""
    tmp = tmp_path_factory.mktemp("client-busy")
    srv = ThreadServer(_settings(client_store, tmp, max_queue=1, max_wait_ms=300, retry_after_s=1)).start()
    yield srv
    srv.stop()
