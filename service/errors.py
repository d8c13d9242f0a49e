"""One error format for every 4xx/5xx: {"error": {"type", "message", "field", "allowed", ...}}."""

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("cgn.service")


class APIError(Exception):
    """Raise from any handler (or the batch routes) to answer with the project's error body."""

    status = 400
    type = "bad_request"

    def __init__(self, message: str, field: str | None = None, *, status: int | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra
        if status is not None:
            self.status = status
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.field is not None:
            err["field"] = self.field
        err.update({k: v for k, v in self.extra.items() if v is not None})
        return {"error": err}


class InvalidInput(APIError):
    status = 422
    type = "invalid_input"


class UnknownNameError(InvalidInput):
    type = "unknown_name"


class NotFound(APIError):
    status = 404
    type = "not_found"


class ModelNotInstalled(APIError):
    status = 404
    type = "model_not_installed"


class Unauthorized(APIError):
    status = 401
    type = "unauthorized"

    def __init__(self, message: str = "missing or invalid API key: send 'Authorization: Bearer <key>'"):
        super().__init__(message)
        self.headers = {"WWW-Authenticate": "Bearer"}


class PayloadTooLarge(APIError):
    status = 413
    type = "payload_too_large"


class Overloaded(APIError):
    status = 503
    type = "overloaded"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, retry_after=retry_after)
        self.headers = {"Retry-After": str(retry_after)}


class NotReady(APIError):
    status = 503
    type = "not_ready"


class BodyTooLarge(StarletteHTTPException):
    """Raised while reading a body past the limit; an HTTPException so FastAPI's body parsing lets it through."""

    def __init__(self, limit: int):
        super().__init__(413, f"body: request body is larger than {limit} bytes")
        self.limit = limit


def error_response(request: Request, err: APIError) -> JSONResponse:
    body = err.body()
    rid = getattr(request.state, "request_id", None)
    if rid:
        body["error"]["request_id"] = rid
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def _field(loc: tuple | list) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


UNION_TAGS = {"int", "str", "constrained-str", "constrained-int", "AssetRef", "float", "constrained-float", "bool"}
TAG_WORDS = {"int": "a class id (integer)", "constrained-int": "an integer", "str": "a name",
             "constrained-str": "a name (1-200 characters)", "AssetRef": '{"asset": NAME}', "float": "a number",
             "constrained-float": "a number", "bool": "a boolean"}  # fmt: skip


def _collapse_unions(errors: list[dict]) -> list[dict]:
    """pydantic reports one error per union member; say once what the field accepts."""
    out: list[dict] = []
    for e in errors:
        loc = tuple(e.get("loc", ()))
        at = next((i for i, part in enumerate(loc) if i > 0 and part in UNION_TAGS), None)
        if at is not None:
            base = loc[:at]
            prev = out[-1] if out and tuple(out[-1]["loc"]) == base and "_union" in out[-1] else None
            if prev is None:
                prev = {"loc": base, "type": "union", "_union": [], "ctx": {}}
                out.append(prev)
            prev["_union"].append(loc[at])
            continue
        out.append(e)
    for e in out:
        if "_union" in e:
            words = [TAG_WORDS.get(t, t) for t in e.pop("_union")]
            e["msg"] = "expected " + " or ".join(dict.fromkeys(words))
            e["ctx"] = {"expected": " | ".join(dict.fromkeys(words))}
    return out


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    raw = list(exc.errors())
    errors = _collapse_unions(raw)
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": "invalid"}
    if first.get("type") == "json_invalid":
        err = InvalidInput(f"body: malformed JSON: {first.get('ctx', {}).get('error', first['msg'])}", "body")
        err.type = "malformed_json"
        return error_response(request, err)
    details = [{"field": _field(e["loc"]), "message": e["msg"]} for e in raw]
    field = _field(first["loc"])
    allowed = None
    ctx = first.get("ctx") or {}
    if "expected" in ctx:
        allowed = str(ctx["expected"])
    msg = f"{field}: {first['msg']}"
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return error_response(request, InvalidInput(msg, field, allowed=allowed, details=_jsonable(details)))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, BodyTooLarge):
            return error_response(request, PayloadTooLarge(str(exc.detail), "body", limit=exc.limit))
        kinds = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "payload_too_large"}
        err = APIError(str(exc.detail), status=exc.status_code)
        err.type = kinds.get(exc.status_code, "http_error")
        err.headers = dict(exc.headers or {})
        return error_response(request, err)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        err = APIError(f"internal error ({type(exc).__name__}); this is a bug, please report it", status=500)
        err.type = "internal"
        return error_response(request, err)
