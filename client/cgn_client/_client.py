"""CGNClient and AsyncCGNClient: twins over one transport and one set of request builders.

Each method builds a `Call` with a builder of cgn_client.resources and hands it to the client's transport
(`SyncTransport` or `AsyncTransport`, cgn_client._base_client), which owns auth, timeouts, the retry policy
(cgn_client._retry) and error mapping: the generation methods are `endpoint(builder)` (or `async_endpoint`),
so the twins differ only in how they send. `client.models`, `client.assets` and `client.batches` are namespaces.
"""

import os
from typing import Any, TypeVar

import httpx

from cgn_client._base_client import AsyncTransport, Call, SyncTransport, async_endpoint, endpoint, json_body
from cgn_client._retry import RetryPolicy
from cgn_client.resources.assets import Assets, AsyncAssets, ImageInput
from cgn_client.resources.batches import DEFAULT_OUTAGE_TIMEOUT, AsyncBatches, AsyncBatchJob, Batches, BatchJob
from cgn_client.resources.generation import counterfactual_request, mechanism_request, samples_request
from cgn_client.resources.models import AsyncModels, Models

T = TypeVar("T")
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
DEFAULT_URL = "http://127.0.0.1:8000"


def health_request() -> Call[dict]:
    """GET /healthz: the API process is alive."""
    return Call("GET", "/healthz", json_body)


def ready_request() -> Call[dict]:
    """GET /readyz: 200 once the default model is loaded (else a 503 saying why)."""
    return Call("GET", "/readyz", json_body)


class _Options:
    """What both twins are configured with: URL, key, headers, timeout, the retry policy, outage patience."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
        outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT,
        headers: dict[str, str] | None = None,
        http_client: httpx.Client | httpx.AsyncClient | None = None,
    ):
        self.base_url = (base_url or os.environ.get("CGN_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("CGN_API_KEY")
        # a caller's http_client keeps its own timeout unless one is given here
        self.timeout = DEFAULT_TIMEOUT if timeout is None and http_client is None else timeout
        self.retry_policy = RetryPolicy(max_retries, backoff, max_backoff, max_retry_after)
        self.outage_timeout = outage_timeout
        self.headers = {"User-Agent": "cgn-client/0.1", **(headers or {})}
        if self.api_key:
            self.headers["Authorization"] = f"Bearer {self.api_key}"
        self._connect(http_client)

    def _connect(self, http_client: Any) -> None:
        """The twin's transport (with the caller's `http_client`, if any) and its namespaces."""
        raise NotImplementedError

    @property
    def max_retries(self) -> int:
        return self.retry_policy.max_retries

    @property
    def backoff(self) -> float:
        return self.retry_policy.backoff


class CGNClient(_Options):
    """Synchronous client; close() it or use `with`.

    `CGNClient(url, api_key=None, timeout=60, max_retries=2)` (url and key default to $CGN_URL, $CGN_API_KEY).
    Retries (cgn_client.RetryPolicy): 429 and 503 always, 502/504, timeouts and connection errors for
    idempotent requests (all of this SDK's), at most `max_retries` times, waiting the server's Retry-After
    (capped at `max_retry_after` s) or `backoff * 2**k` s (capped at `max_backoff`) with jitter.
    Batch-job waits keep retrying an unreachable API for `outage_timeout` s (default 300).
    `http_client`: your own httpx.Client (proxies, transports); it is not closed by close().
    """

    def _connect(self, http_client: httpx.Client | None) -> None:
        self._transport = SyncTransport(self.base_url, self.headers, self.timeout, self.retry_policy, http_client)
        self.models = Models(self._transport)
        self.assets = Assets(self._transport)
        self.batches = Batches(self._transport, self.outage_timeout)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> "CGNClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, call: Call[T], *, max_retries: int | None = None, outage_timeout: float | None = None) -> T:
        """Send any Call through this client's transport: auth, retries and typed errors included."""
        return self._transport.send(call, max_retries=max_retries, outage_timeout=outage_timeout)

    # --- generation: each builds its Call (cgn_client.resources.generation) and sends it ----------------
    counterfactual = endpoint(counterfactual_request)
    mechanism = endpoint(mechanism_request)
    sample_batch = endpoint(samples_request)

    # --- models, assets, health ------------------------------------------------------------------
    def model(self, name: str) -> dict:
        """Same as client.models.retrieve(name)."""
        return self.models.retrieve(name)

    def classes(self, q: str | None = None, *, model: str | None = None, mechanism: str | None = None) -> dict:
        """Class names per mechanism; with q, the matches and how q resolves (client.models.classes)."""
        return self.models.classes(q, model=model, mechanism=mechanism)

    def upload_asset(self, name: str, image: ImageInput, description: str = "") -> dict:
        """Same as client.assets.upload(name, image, description)."""
        return self.assets.upload(name, image, description)

    health = endpoint(health_request)
    ready = endpoint(ready_request)

    # --- batch jobs ------------------------------------------------------------------------------
    def submit_batch(self, n: int | None = None, *, retries: int | None = None, **options: Any) -> BatchJob:
        """Queue a large generation job (client.batches.submit; options in its docstring and docs/batch.md)."""
        return self.batches.submit(n, retries=retries, **options)


class AsyncCGNClient(_Options):
    """The asyncio twin of CGNClient: same constructor and methods, awaited; `async with` or aclose()."""

    def _connect(self, http_client: httpx.AsyncClient | None) -> None:
        self._transport = AsyncTransport(self.base_url, self.headers, self.timeout, self.retry_policy, http_client)
        self.models = AsyncModels(self._transport)
        self.assets = AsyncAssets(self._transport)
        self.batches = AsyncBatches(self._transport, self.outage_timeout)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> "AsyncCGNClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(self, call: Call[T], *, max_retries: int | None = None, outage_timeout: float | None = None) -> T:
        return await self._transport.send(call, max_retries=max_retries, outage_timeout=outage_timeout)

    counterfactual = async_endpoint(counterfactual_request)
    mechanism = async_endpoint(mechanism_request)
    sample_batch = async_endpoint(samples_request)

    async def model(self, name: str) -> dict:
        return await self.models.retrieve(name)

    async def classes(self, q: str | None = None, *, model: str | None = None, mechanism: str | None = None) -> dict:
        return await self.models.classes(q, model=model, mechanism=mechanism)

    async def upload_asset(self, name: str, image: ImageInput, description: str = "") -> dict:
        return await self.assets.upload(name, image, description)

    health = async_endpoint(health_request)
    ready = async_endpoint(ready_request)

    async def submit_batch(self, n: int | None = None, *, retries: int | None = None, **options: Any) -> AsyncBatchJob:
        return await self.batches.submit(n, retries=retries, **options)
