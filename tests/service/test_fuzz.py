"""Schemathesis fuzzes every operation of the OpenAPI schema: no input may give a 5xx."""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

pytestmark = pytest.mark.slow

schema = schemathesis.pytest.from_fixture("openapi")


@pytest.fixture(scope="module")
def openapi(url):
    raw = httpx.get(f"{url}/openapi.json").json()
    # the batch queue's routes need Redis; tests/batch fuzzes those
    raw["paths"] = {p: v for p, v in raw["paths"].items() if not p.startswith("/batches")}
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.config.update(base_url=url)
    return loaded


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    response = case.call(timeout=30)
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        body = response.json()
        assert body["error"]["message"], body
