"""Fixtures of the classifier-job tests: tiny real splits, and a real uvicorn server on a free port."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "service"))
sys.path.insert(0, str(ROOT / "scripts"))
from servers import ThreadServer, service_settings  # noqa: E402


@pytest.fixture(scope="session")
def real_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Colored MNIST: the first 300 training and 200 test images, written by the exporter script."""
    from export_mnist_variant import export

    return export("colored", tmp_path_factory.mktemp("real") / "colored.npz", 300, 200, None)


@pytest.fixture(scope="session")
def api(random_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    """The service (random-weight mnist-test) under uvicorn on a free port."""
    server = ThreadServer(service_settings(random_store, tmp_path_factory.mktemp("jobs-api"))).start()
    yield server
    server.stop()
