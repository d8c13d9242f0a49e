"""Problems as HTTP: a status code per kind and one body for every 4xx/5xx,
{"error": {"type", "message", "field", "allowed", ...}}."""

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.problems import (
    Conflict,
    InvalidInput,
    NotFound,
    NotReady,
    Overloaded,
    Problem,
    RequestTimeout,
    TooLarge,
    Unauthorized,
)

STATUS: dict[type[Problem], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    RequestTimeout: 408,
    Unauthorized: 401,
    Overloaded: 503,
    NotReady: 503,
    Problem: 400,
}


def status_of(problem: Problem) -> int:
    return next(STATUS[cls] for cls in type(problem).__mro__ if cls in STATUS)


def headers_of(problem: Problem) -> dict[str, str]:
    if isinstance(problem, Overloaded):
        return {"Retry-After": str(problem.retry_after)}
    if isinstance(problem, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    return {}


class BodyTooLarge(StarletteHTTPException):
    """Raised while reading a body past the limit; an HTTPException so FastAPI's body parsing lets it through."""

    def __init__(self, limit: int):
        super().__init__(413, f"body: request body is larger than {limit} bytes")
        self.limit = limit


class BodyStalled(StarletteHTTPException):
    """Raised while waiting for body bytes past the body timeout (an HTTPException, like BodyTooLarge)."""

    def __init__(self, timeout: float):
        super().__init__(408, f"body: no body bytes for {timeout:g} s; send the whole body")


def error_body(problem: Problem, request_id: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"type": problem.kind, "message": problem.message}
    if problem.field is not None:
        err["field"] = problem.field
    err.update({k: v for k, v in problem.extra.items() if v is not None})
    if request_id:
        err["request_id"] = request_id
    return {"error": err}


def error_response(request: Request, problem: Problem, status: int | None = None) -> JSONResponse:
    body = error_body(problem, getattr(request.state, "request_id", None))
    return JSONResponse(body, status_code=status or status_of(problem), headers=headers_of(problem))


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
        err = MalformedJSON(f"body: malformed JSON: {first.get('ctx', {}).get('error', first['msg'])}", "body")
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


class MalformedJSON(InvalidInput, kind="malformed_json"):
    """A body that is not JSON where JSON was sent."""


class MalformedBody(InvalidInput, kind="malformed_body"):
    """A body that cannot even be read as its content type says (not UTF-8, a broken multipart form)."""


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at `path`: the Allow header of a 405 names them all."""
    methods: set[str] = set()
    for route in app.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


class MethodNotAllowed(Problem, kind="method_not_allowed"):
    """A path served, but not with this method; the 405's Allow header names those it is."""


class InternalError(Problem, kind="internal"):
    """A bug: the one body of every 500."""


def internal_error() -> InternalError:
    return InternalError("internal error; this is a bug, please report it with the request_id")


HTTP_KINDS = {401: Unauthorized, 404: NotFound, 405: MethodNotAllowed, 408: RequestTimeout, 413: TooLarge}


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, BodyTooLarge):
            return error_response(request, TooLarge(str(exc.detail), "body", limit=exc.limit))
        if isinstance(exc, BodyStalled):
            return error_response(request, RequestTimeout(str(exc.detail), "body"))
        if exc.status_code == 400:  # FastAPI could not read the body at all
            return error_response(request, MalformedBody(f"body: {exc.detail}", "body"))
        problem = HTTP_KINDS.get(exc.status_code, Problem)(str(exc.detail))
        response = error_response(request, problem, status=exc.status_code)
        response.headers.update(dict(exc.headers or {}))
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
        return response

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        """The 500's body; Starlette raises the exception on, and the request layer logs and counts it."""
        return error_response(request, internal_error(), status=500)
