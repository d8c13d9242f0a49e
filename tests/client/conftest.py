"""Client SDK fixtures: a real uvicorn server in a thread for the session (tests/service/servers.py)."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "service"))
from servers import ThreadServer, service_settings  # noqa: E402


@pytest.fixture(scope="session")
def api(random_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    tmp = tmp_path_factory.mktemp("client-api")
    srv = ThreadServer(service_settings(random_store, tmp, max_wait_ms=2, api_keys=["sdk-key"])).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def busy_api(random_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    """At most one waiting request, and a first request that waits 300 ms for company: 503s under load."""
    tmp = tmp_path_factory.mktemp("client-busy")
    srv = ThreadServer(service_settings(random_store, tmp, max_queue=1, max_wait_ms=300, retry_after_s=1)).start()
    yield srv
    srv.stop()
