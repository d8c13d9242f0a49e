"""Service test fixtures: one `cgn serve` process for the session, thread servers for special settings."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from servers import ServerProcess, ThreadServer, random_mnist_model, service_settings  # noqa: E402


@pytest.fixture(scope="session")
def server(random_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`cgn serve` on the random-weight mnist-test model; micro-batches wait up to 10 ms for company."""
    tmp = tmp_path_factory.mktemp("service")
    env = {
        "CGN_MODEL_STORE": str(random_store),
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
    from cgn.imagenet import model as imagenet
    from model_store import save_model
    from model_store.official import imagenet_manifest

    root = tmp_path_factory.mktemp("imagenet-store") / "models"
    random_mnist_model(root)
    model = imagenet.ImagenetCGN(imagenet.ImagenetCGNConfig.tiny()).init_random_(0).eval()
    manifest = imagenet_manifest("imagenet-cgn", model.config.to_dict(), {}, "random tiny ImageNet CGN, for tests")
    save_model(root, manifest, model.state_dict())
    tmp = tmp_path_factory.mktemp("imagenet-server")
    env = {
        "CGN_MODEL_STORE": str(root),
        "CGN_DEFAULT_MODEL": "mnist-test",
        "CGN_MODELS": "imagenet-cgn",
        "CGN_ASSETS_DIR": str(tmp / "assets"),
        "CGN_MAX_WAIT_MS": "1",
        "CGN_API_KEYS": "",
    }
    proc = ServerProcess(env, tmp / "server.log").start()
    yield proc.url
    proc.stop()
