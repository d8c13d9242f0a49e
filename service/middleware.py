"""One ASGI layer around every request: request ids, body limits (size and time), metrics, the access log,
and the 500 body for a bug, so that even a failing request is counted, logged and carries its X-Request-ID."""

import asyncio
import contextlib
import json
import logging
import time
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import errors
from service.admission import Admission
from service.problems import Overloaded, Problem, RequestTimeout, TooLarge
from service.services import Services

log = logging.getLogger("cgn.service")

GENERATION_PATHS = (
    "/counterfactual",
    "/samples",
    "/interpolate",
    "/mechanisms/shape",
    "/mechanisms/texture",
    "/mechanisms/background",
)
FORM_TYPES = (b"", b"application/x-www-form-urlencoded")
FORM_PATHS = ("/assets",)  # the only form (multipart) endpoint


class RequestContext:
    def __init__(self, app: ASGIApp, services: Services):
        self.app = app
        self.services = services
        s = services.settings
        self.admission = Admission(s.max_queue_delay_ms / 1000, 2 * s.max_batch_size, s.retry_after_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if scope["method"] in ("POST", "PUT", "PATCH") and scope["path"] not in FORM_PATHS:
            _json_by_default(scope, headers)
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        settings = self.services.settings
        limit, timeout = settings.max_body_bytes, settings.body_timeout_s
        start = time.perf_counter()
        status = {"code": 0}
        generation = scope["path"] in GENERATION_PATHS
        incoming = self.services.runner.incoming() if generation else contextlib.nullcontext(lambda: None)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        declared = headers.get(b"content-length")
        refused = self.admission.try_enter() if generation else None
        admitted = generation and refused is None
        try:
            with incoming as arrived:
                if refused is not None:  # saturated: say so before reading anything, so refusing stays cheap
                    await _refuse(send_with_id, rid, refused, self.admission.inflight)
                elif declared is not None and declared.isdigit() and int(declared) > limit:
                    await self._error(scope, send_with_id, TooLarge(_too_large(limit), "body", limit=limit), status)
                else:
                    received, complete = 0, scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS")
                    if complete:
                        arrived()

                    async def bounded_receive() -> Message:
                        """The body within its size and time limits; the runner hears of a request once it is in."""
                        nonlocal received, complete
                        if complete:
                            return await receive()  # after the body: waiting for a disconnect is no stall
                        try:
                            message = await asyncio.wait_for(receive(), timeout)
                        except TimeoutError:
                            raise errors.BodyStalled(timeout) from None
                        if message["type"] == "http.request":
                            received += len(message.get("body", b""))
                            if received > limit:
                                raise errors.BodyTooLarge(limit)
                            if not message.get("more_body", False):
                                complete = True
                                arrived()
                        return message

                    try:
                        await self.app(scope, bounded_receive, send_with_id)
                    except errors.BodyTooLarge:  # raised outside a route's body parsing
                        await self._error(scope, send_with_id, TooLarge(_too_large(limit), "body", limit=limit), status)
                    except errors.BodyStalled as exc:  # raised outside a route's body parsing
                        await self._error(scope, send_with_id, RequestTimeout(str(exc.detail), "body"), status)
                    except Exception:  # a bug: still a JSON body with the request id, counted and logged
                        log.exception("%s internal error on %s %s", rid, scope["method"], scope["path"])
                        await self._error(scope, send_with_id, errors.internal_error(), status, code=500)
        finally:
            if admitted:  # also when the request is cancelled (the client went away)
                self.admission.leave()
        self._record(scope, rid, status["code"] or 500, time.perf_counter() - start)

    async def _error(self, scope: Scope, send: Send, problem: Problem, status: dict, code: int | None = None) -> None:
        if status["code"]:  # the response has started: nothing more can be said
            return
        response = errors.error_response(Request(scope), problem, status=code)
        await response(scope, _disconnected, send)

    def _record(self, scope: Scope, rid: str, code: int, elapsed: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        m = self.services.metrics
        m.requests.labels(scope["method"], path, str(code)).inc()
        m.latency.labels(path).observe(elapsed)
        # successes and load shedding at DEBUG: under load a line per request costs more CPU than the request
        level = logging.DEBUG if code < 400 or code == 503 else logging.INFO if code < 500 else logging.ERROR
        log.log(level, "%s %s %s %d %.1fms", rid, scope["method"], scope["path"], code, elapsed * 1000)


async def _refuse(send: Send, rid: str, retry_after: int, inside: int) -> None:
    """503 overloaded, written straight to the wire: under overload this is most of what the server does."""
    problem = Overloaded(f"the service is at capacity ({inside} requests inside); retry later", retry_after)
    body = json.dumps(errors.error_body(problem, rid)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after).encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> str:
    return f"body: request body is larger than {limit} bytes"


def _json_by_default(scope: Scope, headers: dict[bytes, bytes]) -> None:
    """Bodies are JSON unless they are multipart uploads: `curl -d '{...}' URL` (form-encoded) just works."""
    ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if ctype in FORM_TYPES:
        rest = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        scope["headers"] = [*rest, (b"content-type", b"application/json")]
        headers[b"content-type"] = b"application/json"


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}
