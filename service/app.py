"""The FastAPI application: `create_app(settings)` wires settings, the model runner and one router per resource.

Run it with `cgn serve`, or `uvicorn --factory service.app:create_app`.
"""

import contextlib
import importlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import errors, openapi
from service.assets import AssetStore
from service.deps import Services
from service.metrics import Metrics
from service.runner import Runner, model_store
from service.settings import Settings

log = logging.getLogger("cgn.service")

ROUTERS = ["health", "models", "counterfactual", "mechanisms", "samples", "assets"]
OPTIONAL_ROUTERS = ["batches"]  # service/routes/batches.py, the batch queue, when present

DESCRIPTION = """Counterfactual images from Counterfactual Generative Networks (Sauer & Geiger, ICLR 2021).

Each image is composed from three independent mechanisms, each with its own class label: **shape**
(a mask), **texture** (the foreground) and **background**. Name the class you want for each, or give
an image asset instead (an intervention). Errors are JSON: `{"error": {"type", "message", "field", ...}}`.
"""


def _preload(app: FastAPI, services: Services) -> None:
    """Load the configured models in the background; /readyz turns ready when the default one is in."""
    state = app.state
    for name in services.settings.preload():
        try:
            services.runner.load(name)
        except Exception as exc:  # noqa: BLE001 - reported by /readyz, the service keeps serving
            log.error("could not load model %s: %s", name, exc)
            state.load_errors[name] = str(exc)
    for name in services.assets.names():  # render built-in assets now, not in the first request using them
        services.assets.get(name)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    services: Services = app.state.services
    services.runner.start()
    threading.Thread(target=_preload, args=(app, services), name="cgn-preload", daemon=True).start()
    startup = getattr(app.state, "extra_startup", [])
    for hook in startup:
        await hook(app)
    try:
        yield
    finally:
        for hook in getattr(app.state, "extra_shutdown", []):
            await hook(app)
        services.runner.stop()


class RequestContext:
    """Request ids (X-Request-ID, echoed or made), body-size limit, metrics and access log in one ASGI layer."""

    def __init__(self, app: ASGIApp, services: Services):
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if scope["method"] in ("POST", "PUT", "PATCH") and scope["path"] not in FORM_PATHS:
            _json_by_default(scope, headers)
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        limit = self.services.settings.max_body_bytes
        start = time.perf_counter()
        status = {"code": 500}
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send, rid, limit, status)
        else:
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise errors.BodyTooLarge(limit)
                return message

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1"))]
                await send(message)

            announce = self.services.runner.announce if scope["path"] in GENERATION_PATHS else contextlib.nullcontext
            try:
                with announce():
                    await self.app(scope, limited_receive, send_with_id)
            except errors.BodyTooLarge:  # raised outside a route's body parsing
                if status["code"] == 500:
                    await self._too_large(scope, send, rid, limit, status)
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        elapsed = time.perf_counter() - start
        m = self.services.metrics
        m.requests.labels(scope["method"], path, str(status["code"])).inc()
        m.latency.labels(path).observe(elapsed)
        code = status["code"]  # successes at DEBUG: a log line per request costs more CPU than parsing it
        level = logging.DEBUG if code < 400 else logging.INFO if code < 500 else logging.ERROR
        log.log(level, "%s %s %s %d %.1fms", rid, scope["method"], scope["path"], code, elapsed * 1000)

    async def _too_large(self, scope: Scope, send: Send, rid: str, limit: int, status: dict) -> None:
        from starlette.requests import Request

        err = errors.PayloadTooLarge(f"body: request body is larger than {limit} bytes", "body", limit=limit)
        request = Request(scope)
        response = errors.error_response(request, err)
        response.headers["x-request-id"] = rid
        status["code"] = err.status
        await response(scope, _noop_receive, send)


GENERATION_PATHS = ("/counterfactual", "/samples", "/mechanisms/shape", "/mechanisms/texture", "/mechanisms/background")
FORM_TYPES = (b"", b"application/x-www-form-urlencoded")
FORM_PATHS = ("/assets",)  # the only form (multipart) endpoint


def _json_by_default(scope: Scope, headers: dict[bytes, bytes]) -> None:
    """Bodies are JSON unless they are multipart uploads: `curl -d '{...}' URL` (form-encoded) just works."""
    ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if ctype in FORM_TYPES:
        rest = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        scope["headers"] = [*rest, (b"content-type", b"application/json")]
        headers[b"content-type"] = b"application/json"


async def _noop_receive() -> Message:
    return {"type": "http.disconnect"}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    services = Services(
        settings=settings,
        store=model_store(settings),
        runner=Runner(settings, on_batch=metrics.on_batch),
        assets=AssetStore(settings.assets_dir),
        metrics=metrics,
    )
    app = FastAPI(title="cgn-service", version="0.1.0", description=DESCRIPTION, lifespan=_lifespan)
    app.state.services = services
    app.state.load_errors = {}
    app.state.extra_startup = []  # async hooks(app), e.g. the batch queue's Redis connection
    app.state.extra_shutdown = []
    errors.install(app)
    openapi.install(app)
    for name in ROUTERS:
        app.include_router(importlib.import_module(f"service.routes.{name}").router)
    for name in OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(f"service.routes.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"service.routes.{name}":
                raise
            continue
        app.include_router(module.router)
    app.add_middleware(RequestContext, services=services)
    return app
