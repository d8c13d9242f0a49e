"""Service test fixtures: one `cgn serve` process for the session, thread servers for special settings."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from servers import (  # noqa: E402
    ServerProcess,
    ThreadServer,
    random_imagenet_model,
    random_mnist_model,
    server_env,
    service_settings,
)


@pytest.fixture(scope="session")
def server(random_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`cgn serve` on the random-weight mnist-test model; micro-batches wait up to 10 ms for company."""
    tmp = tmp_path_factory.mktemp("service")
    env = server_env(
        random_store,
        tmp,
        max_wait_ms=10,
        max_samples=256,
        max_body_bytes=256 * 1024,
        threads=1,
        max_asset_pixels=1_000_000,
    )
    proc = ServerProcess(env, tmp / "server.log").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def url(server: ServerProcess) -> str:
    return server.url


@pytest.fixture(scope="module")
def thread_server(random_store: Path, tmp_path_factory: pytest.TempPathFactory):
    """Factory: a uvicorn server in a thread with Settings overrides; stopped at module end."""
    started: list[ThreadServer] = []

    def make(**overrides) -> ThreadServer:
        tmp = tmp_path_factory.mktemp("thread-server")
        s = ThreadServer(service_settings(random_store, tmp, **overrides)).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def imagenet_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`cgn serve` with mnist-test (the default) and a random tiny ImageNet CGN installed as imagenet-cgn."""
    root = tmp_path_factory.mktemp("imagenet-store") / "models"
    random_mnist_model(root)
    random_imagenet_model(root)
    tmp = tmp_path_factory.mktemp("imagenet-server")
    proc = ServerProcess(server_env(root, tmp, models="imagenet-cgn", max_wait_ms=1), tmp / "server.log").start()
    yield proc.url
    proc.stop()
