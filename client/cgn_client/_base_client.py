"""The transport: a `Call` (what a request builder produces) is sent by `SyncTransport` or `AsyncTransport`.

Both run the same retry state machine (`Attempts`, over `RetryPolicy`); they differ only in how they send
and sleep. Auth headers, timeouts, retries, outage patience and error mapping live here and nowhere else.
"""

import asyncio
import inspect
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, get_args

import httpx

from cgn_client._errors import APIConnectionError, APITimeoutError, error_from_response
from cgn_client._retry import RetryPolicy

T = TypeVar("T")
P = ParamSpec("P")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP request and how to read its answer: what every request builder returns.

    `idempotent`: may the request be replayed after a failure that leaves unknown whether it ran (a timeout,
    a dropped connection, 502/504)? Default: by method (GET, HEAD, OPTIONS, PUT, DELETE yes; POST no).
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: dict[str, Any] | None = None
    files: Any = None
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool | None = None

    @property
    def is_idempotent(self) -> bool:
        return self.method.upper() in IDEMPOTENT_METHODS if self.idempotent is None else self.idempotent


def json_body(response: httpx.Response) -> Any:
    return response.json()


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class Attempts:
    """The retry state of one `Call`: after each failure, the delay before the next attempt, or the error.

    At most `max_retries` retries. With `outage_timeout`, retryable failures keep being retried (backoff
    capped at the policy's max_backoff) until that many seconds have passed since the first one, even
    beyond `max_retries`: what a wait needs to ride out a restart of the API.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        call: Call,
        base_url: str,
        max_retries: int | None = None,
        outage_timeout: float | None = None,
    ):
        self.policy = policy
        self.call = call
        self.base_url = base_url
        self.max_retries = policy.max_retries if max_retries is None else max_retries
        self.outage_timeout = outage_timeout
        self.retries = 0
        self.first_failure: float | None = None

    def _next_delay(self, retry_after: str | None) -> float | None:
        """The delay before the next retry, or None when retries are used up."""
        now = time.monotonic()
        if self.first_failure is None:
            self.first_failure = now
        if self.retries < self.max_retries:
            delay = self.policy.delay(self.retries, retry_after)
        else:
            if self.outage_timeout is None:
                return None
            left = self.first_failure + self.outage_timeout - now
            if left <= 0:
                return None
            delay = min(self.policy.delay(self.retries, retry_after, outage=True), left)
        self.retries += 1
        return delay

    def after_error(self, exc: httpx.TransportError) -> float:
        """The delay before retrying after a transport error; raises APIConnectionError/APITimeoutError."""
        delay = self._next_delay(None) if self.policy.retries_error(exc, self.call.is_idempotent) else None
        if delay is not None:
            return delay
        where = f"{self.call.method} {self.base_url}{self.call.path}"
        tried = f" after {self.retries + 1} attempts" if self.retries else ""
        if self.outage_timeout is not None and self.first_failure is not None:
            tried += f" over {time.monotonic() - self.first_failure:.1f} s (outage_timeout={self.outage_timeout:g})"
        request = _request_of(exc)
        if isinstance(exc, httpx.TimeoutException):
            raise APITimeoutError(f"{where} timed out{tried}: {exc!r}", request) from exc
        raise APIConnectionError(f"could not reach {where}{tried}: {exc}", request) from exc

    def after_response(self, response: httpx.Response) -> float | None:
        """None when the response is a success; the delay before retrying; or raises the typed APIStatusError."""
        if response.is_success:
            return None
        if self.policy.retries_status(response.status_code, self.call.is_idempotent):
            delay = self._next_delay(response.headers.get("retry-after"))
            if delay is not None:
                return delay
        raise error_from_response(response)


def _request_of(exc: httpx.TransportError) -> httpx.Request | None:
    try:
        return exc.request
    except RuntimeError:  # httpx raises when the error carries no request
        return None


class _Transport:
    """What both transports share: where and how to send (URL, headers, timeout, retry policy), and the HTTP
    client, made here unless the caller brings its own `http_client` (then close() leaves it open)."""

    http_class: type[httpx.Client] | type[httpx.AsyncClient]

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        timeout: float | httpx.Timeout | None,
        policy: RetryPolicy,
        http_client: httpx.Client | httpx.AsyncClient | None = None,
    ):
        self.base_url = base_url
        self.headers = headers
        self.timeout = timeout
        self.policy = policy
        self.owns_http = http_client is None
        self.http: Any = self.http_class() if http_client is None else http_client

    def _request(self, call: Call) -> tuple[str, str, dict[str, Any]]:
        """The arguments of `self.http.request` for a Call: method, URL and keyword arguments."""
        kwargs = {
            "params": call.params,
            "json": call.json,
            "files": call.files,
            "data": call.data,
            "headers": {**self.headers, **call.headers},
        }
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        return call.method, self.base_url + call.path, kwargs

    def _attempts(self, call: Call, max_retries: int | None, outage_timeout: float | None) -> Attempts:
        return Attempts(self.policy, call, self.base_url, max_retries, outage_timeout)


class SyncTransport(_Transport):
    """Sends Calls with an httpx.Client (made here, or the caller's `http_client`), sleeping between tries."""

    http_class = httpx.Client
    http: httpx.Client

    def send(self, call: Call[T], *, max_retries: int | None = None, outage_timeout: float | None = None) -> T:
        attempts = self._attempts(call, max_retries, outage_timeout)
        method, url, kwargs = self._request(call)
        while True:
            try:
                response = self.http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                time.sleep(attempts.after_error(exc))
                continue
            delay = attempts.after_response(response)
            if delay is None:
                return call.parse(response)
            time.sleep(delay)

    def close(self) -> None:
        """Closes the httpx client this transport made (a caller's own `http_client` stays open)."""
        if self.owns_http:
            self.http.close()


class AsyncTransport(_Transport):
    """The asyncio twin of SyncTransport: the same attempts, awaited."""

    http_class = httpx.AsyncClient
    http: httpx.AsyncClient

    async def send(self, call: Call[T], *, max_retries: int | None = None, outage_timeout: float | None = None) -> T:
        attempts = self._attempts(call, max_retries, outage_timeout)
        method, url, kwargs = self._request(call)
        while True:
            try:
                response = await self.http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.after_error(exc))
                continue
            delay = attempts.after_response(response)
            if delay is None:
                return call.parse(response)
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        if self.owns_http:
            await self.http.aclose()


def endpoint(builder: Callable[P, Call[T]]) -> Callable[Concatenate[Any, P], T]:
    """A method that builds a Call with `builder` and sends it through its owner's `_transport` (a
    SyncTransport), e.g. `counterfactual = endpoint(counterfactual_request)` in CGNClient."""

    def method(self: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._transport.send(builder(*args, **kwargs))

    return _shown_as(method, builder)


def async_endpoint(builder: Callable[P, Call[T]]) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """endpoint for the asyncio twins: a coroutine method sending through an AsyncTransport."""

    async def method(self: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._transport.send(builder(*args, **kwargs))

    return _shown_as(method, builder)


def _shown_as(method: Callable, builder: Callable) -> Any:
    """`method` as help() and inspect.signature show it: self and the builder's parameters, the type the
    builder's Call parses to, the builder's name, module and docstring."""
    signature = inspect.signature(builder)
    parsed = get_args(signature.return_annotation)
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *signature.parameters.values()],
        return_annotation=parsed[0] if parsed else inspect.Signature.empty,
    )
    for attribute in ("__name__", "__qualname__", "__module__", "__doc__"):
        setattr(method, attribute, getattr(builder, attribute))
    return method
