"""Client SDK fixtures: a real uvicorn server in a thread for the session (tests/service/servers.py)."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "service"))
from servers import ThreadServer, free_port, service_settings  # noqa: E402


@pytest.fixture(scope="session")
def api(random_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    """No Redis behind it (a port nothing listens on): batch routes answer 503, and no job lands anywhere."""
    tmp = tmp_path_factory.mktemp("client-api")
    no_redis = {"redis_url": f"redis://127.0.0.1:{free_port()}/0", "results_dir": str(tmp / "results")}
    srv = ThreadServer(service_settings(random_store, tmp, max_wait_ms=2, api_keys=["sdk-key"], **no_redis)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def busy_api(random_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    """At most one waiting request, and a first request that waits 300 ms for company: 503s under load."""
    tmp = tmp_path_factory.mktemp("client-busy")
    srv = ThreadServer(service_settings(random_store, tmp, max_queue=1, max_wait_ms=300, retry_after_s=1)).start()
    yield srv
    srv.stop()
