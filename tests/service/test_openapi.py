"""/openapi.json is a valid OpenAPI document whose every $ref resolves, and it says what clients really get."""

import json

import httpx
import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def doc(url) -> dict:
    r = httpx.get(f"{url}/openapi.json", timeout=30)
    assert r.status_code == 200
    return r.json()


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_the_document_validates_and_every_ref_resolves(doc):
    validate(doc)
    refs = _refs(doc)
    assert refs, "a document without a $ref would make this test vacuous"
    for ref in sorted(set(refs)):
        assert ref.startswith("#/"), ref
        node = doc
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, f"dangling $ref {ref}"
            node = node[part]


def test_every_json_response_has_a_schema_and_errors_use_the_one_error_body(doc):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], f"{method} {path} documents no response"
            for code, response in op["responses"].items():
                for media, body in response.get("content", {}).items():
                    schema = body.get("schema")
                    assert schema, f"{method.upper()} {path} {code} {media}: no schema"
                    if media == "application/json":
                        typed = "$ref" in schema or "anyOf" in schema or schema.get("properties")
                        assert typed, f"{method.upper()} {path} {code}: an untyped JSON body {schema}"
                if code[0] in "45":
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorBody"
                    }, f"{method.upper()} {path} {code}"
    assert "HTTPValidationError" not in json.dumps(doc), "FastAPI's own 422 body is never sent"


def test_real_responses_conform_to_the_document(url, doc, conforms):
    def call(method: str, template: str, path: str | None = None, **kw) -> httpx.Response:
        r = httpx.request(method, f"{url}{path or template}", timeout=60, **kw)
        conforms(doc, template, method, r)
        return r

    call("GET", "/healthz")
    assert call("GET", "/models").json()["models"]
    call("GET", "/models/{name}", "/models/mnist-test")
    call("GET", "/models/{name}", "/models/imagenet-cgn")  # not installed: says how to install it
    call("GET", "/models/{name}/classes", "/models/mnist-test/classes?q=seven")
    call("GET", "/models/{name}/classes", "/models/mnist-test/classes")
    call("GET", "/assets")
    cf = call("POST", "/counterfactual", json={"shape": 3, "outputs": ["composite", "mask"]},
              headers={"Accept": "application/json"})  # fmt: skip
    assert set(cf.json()["outputs"]) == {"composite", "mask"}
    assert call("POST", "/counterfactual", json={"shape": 11}).status_code == 422
    assert call("POST", "/counterfactual", content=b"{not json").status_code == 422
    assert call("GET", "/models/{name}", "/models/nope").status_code == 404
    assert call("POST", "/mechanisms/{mechanism}", "/mechanisms/shape", json={"label": "nope"}).status_code == 422


def test_the_api_names_the_outputs_the_core_makes():
    from typing import get_args

    from cgn.mechanisms import OUTPUTS
    from service.schemas import Output

    assert get_args(Output) == OUTPUTS
