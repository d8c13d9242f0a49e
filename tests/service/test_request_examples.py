"""Every example the OpenAPI document gives for a request body is accepted by a real deployment.

The deployment is the default one (`mnist-wildlife`, the built-in model) with Redis for the batch queue and
an ImageNet CGN (random tiny weights) installed, as the examples assume (the cow example names ImageNet
classes; on an MNIST-only deployment it is a documented 422: docs/service.md).
"""

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from servers import ServerProcess, random_imagenet_model, server_env  # noqa: E402

pytestmark = pytest.mark.slow


def _examples(doc: dict, schema: dict) -> list:
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return [*schema.get("examples", []), *([schema["example"]] if "example" in schema else [])]


def _concrete(doc_path: str, op: dict) -> str:
    """A path with each path parameter set to the first value its schema allows."""
    for param in op.get("parameters", []):
        if param["in"] == "path":
            schema = param["schema"]
            value = schema.get("enum", [None])[0] if "enum" in schema else schema.get("examples", [None])[0]
            assert value is not None, f"{doc_path}: no value for path parameter {param['name']}"
            doc_path = doc_path.replace("{" + param["name"] + "}", str(value))
    return doc_path


def test_every_documented_request_example_is_accepted(redis_server, tmp_path):
    root = tmp_path / "models"
    random_imagenet_model(root)
    env = server_env(
        root,
        tmp_path,
        default_model="mnist-wildlife",
        models="",
        redis_url=redis_server.url,
        results_dir=tmp_path / "results",
        threads=1,
    )
    server = ServerProcess(env, tmp_path / "server.log").start()
    try:
        doc = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
        tried = []
        for doc_path, ops in doc["paths"].items():
            for method, op in ops.items():
                content = op.get("requestBody", {}).get("content", {}).get("application/json")
                if content is None:
                    continue
                examples = _examples(doc, content["schema"])
                examples += [e["value"] for e in content.get("examples", {}).values()]
                examples += [content["example"]] if "example" in content else []
                assert examples, f"{method.upper()} {doc_path} documents no request example"
                url = server.url + _concrete(doc_path, op)
                for example in examples:
                    r = httpx.request(method, url, json=example, headers={"Accept": "application/json"}, timeout=120)
                    assert 200 <= r.status_code < 300, f"{method.upper()} {doc_path} {example}: {r.text}"
                    tried.append((doc_path, example))
        paths = {p for p, _ in tried}
        assert {"/counterfactual", "/samples", "/interpolate", "/batches"} <= paths, paths
        assert any(p.startswith("/mechanisms/") for p in paths), paths
    finally:
        server.stop()
