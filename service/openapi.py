"""The OpenAPI document, with the project's one error body on every 4xx/5xx response.

FastAPI documents validation errors as its own `HTTPValidationError`; our handlers answer every error
with `ErrorBody` instead, so the document says so, and client generators see what really comes back.
"""

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from service.schemas import ErrorBody

ERROR_REF = "#/components/schemas/ErrorBody"
DEFAULT_DESCRIPTIONS = {
    "400": "bad request",
    "401": "missing or invalid API key (when keys are configured)",
    "404": "not found",
    "409": "conflict",
    "413": "the body is larger than the limit",
    "422": "bad input; the error names the field and the values it accepts",
    "503": "overloaded or not ready; retry after Retry-After seconds",
}


def _schemas(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema and those it refers to, as components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {model.__name__: schema, **defs}


def _error_schemas() -> dict[str, Any]:
    return _schemas(ErrorBody)


_BODIES: dict[str, type[BaseModel]] = {}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI requestBody of a route that reads its JSON body itself (`openapi_extra`); the model is
    added to the components."""
    _BODIES[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"required": True, "content": {"application/json": {"schema": ref}}}


def document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components.update(_error_schemas())
    for model in _BODIES.values():
        for name, schema in _schemas(model).items():
            components.setdefault(name, schema)
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            if op.get("security"):  # behind require_api_key: a 401 when keys are configured
                op.setdefault("responses", {}).setdefault("401", {"description": DEFAULT_DESCRIPTIONS["401"]})
            for code, response in op.get("responses", {}).items():
                for media, body in response.get("content", {}).items():
                    if not body.get("schema") and media != "application/json":  # images, npy, npz, tar, csv
                        body["schema"] = {"type": "string", "format": "binary"}
                if code[0] in "45":
                    response["content"] = {"application/json": {"schema": {"$ref": ERROR_REF}}}
                    if not response.get("description") or response["description"] == "Validation Error":
                        response["description"] = DEFAULT_DESCRIPTIONS.get(code, "error")
    paths = json.dumps(doc.get("paths", {}))
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's own error shapes, never sent
        if f'"#/components/schemas/{unused}"' not in paths:
            components.pop(unused, None)
    return doc


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
