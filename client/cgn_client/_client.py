"""CGNClient and AsyncCGNClient: twins over one set of request builders (`_calls`).

Each public method builds a `Call` (method, path, body, parser) and hands it to `_send`, which owns
auth, timeouts, bounded retries with backoff (honouring Retry-After on 429/503) and error mapping.
Extensions (cgn_client.batch, the batch queue SDK) build their own `Call`s and use `_send` too.
"""

import asyncio
import concurrent.futures
import email.utils
import io
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from PIL import Image

from cgn_client._errors import APIConnectionError, APITimeoutError, error_from_response
from cgn_client._payload import MEDIA_TYPE, decode_samples
from cgn_client._types import Counterfactual, SampleBatch

T = TypeVar("T")
RETRY_STATUS = (429, 502, 503, 504)
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
MAX_RETRY_DELAY = 30.0


@dataclass
class Call(Generic[T]):
    """One HTTP request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: dict[str, Any] | None = None
    files: Any = None
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _json(r: httpx.Response) -> Any:
    return r.json()


def _image(r: httpx.Response) -> Image.Image:
    img = Image.open(io.BytesIO(r.content))
    img.load()
    return img


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class _Calls:
    """Request builders shared by the twins."""

    @staticmethod
    def counterfactual(shape, texture, bg, seed, seeds, outputs, model, truncation, fmt) -> Call[Counterfactual]:
        body = _clean(
            {
                "model": model,
                "shape": shape,
                "texture": texture,
                "bg": bg,
                "seed": seed,
                "seeds": seeds,
                "truncation": truncation,
                "outputs": list(outputs),
                "format": fmt,
            }
        )
        return Call(
            "POST",
            "/counterfactual",
            lambda r: Counterfactual.from_json(r.json()),
            json=body,
            headers={"Accept": "application/json"},
        )

    @staticmethod
    def mechanism(mechanism, label, seed, model, truncation) -> Call[Image.Image]:
        body = _clean({"model": model, "label": label, "seed": seed, "truncation": truncation, "format": "png"})
        return Call("POST", f"/mechanisms/{mechanism}", _image, json=body)

    @staticmethod
    def samples(n, seed, start, shape, texture, bg, policy, cfs_per_shape, model, outputs, truncation, as_torch):
        body = _clean(
            {
                "model": model,
                "n": n,
                "seed": seed,
                "start": start,
                "shape": shape,
                "texture": texture,
                "bg": bg,
                "policy": policy,
                "cfs_per_shape": cfs_per_shape,
                "outputs": list(outputs),
                "truncation": truncation,
            }
        )

        def parse(r: httpx.Response) -> SampleBatch:
            arrays, meta = decode_samples(r.content)
            return SampleBatch.from_arrays(arrays, meta, as_torch)

        return Call("POST", "/samples", parse, json=body, headers={"Accept": MEDIA_TYPE})

    @staticmethod
    def upload_asset(name: str, image: "str | os.PathLike | bytes | Image.Image", description: str) -> Call[dict]:
        if isinstance(image, Image.Image):
            buf = io.BytesIO()
            image.save(buf, "PNG")
            data = buf.getvalue()
        elif isinstance(image, bytes | bytearray):
            data = bytes(image)
        else:
            data = Path(image).read_bytes()
        files = {"file": (f"{name}.img", data, "application/octet-stream")}
        return Call("POST", "/assets", _json, files=files, data={"name": name, "description": description})


class _Base:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 2,
        backoff: float = 0.5,
        headers: dict[str, str] | None = None,
    ):
        self.base_url = (base_url or os.environ.get("CGN_URL") or "http://127.0.0.1:8000").rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("CGN_API_KEY")
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._headers = {"User-Agent": "cgn-client/0.1", **(headers or {})}
        if self.api_key:
            self._headers["Authorization"] = f"Bearer {self.api_key}"

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Retry-After when the server gives one, else exponential backoff with jitter."""
        if response is not None:
            after = _retry_after(response.headers.get("retry-after"))
            if after is not None:
                return min(after, MAX_RETRY_DELAY)
        return min(self.backoff * 2**attempt, MAX_RETRY_DELAY) * (0.75 + 0.5 * random.random())

    def _request_kwargs(self, call: Call) -> dict[str, Any]:
        return {
            "params": call.params,
            "json": call.json,
            "files": call.files,
            "data": call.data,
            "headers": call.headers,
        }


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class CGNClient(_Base):
    """Synchronous client. `CGNClient(url, api_key=None, timeout=60, max_retries=2)`; close() or use `with`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, **kwargs: Any):
        super().__init__(base_url, api_key, **kwargs)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=self.timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "CGNClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, **self._request_kwargs(call))
            except httpx.TimeoutException as exc:
                if attempt >= self.max_retries:
                    raise APITimeoutError(f"request to {call.path} timed out: {exc}", exc.request) from exc
                time.sleep(self._delay(attempt, None))
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise APIConnectionError(f"could not reach {self.base_url}: {exc}") from exc
                time.sleep(self._delay(attempt, None))
            else:
                if response.is_success:
                    return call.parse(response)
                if response.status_code not in RETRY_STATUS or attempt >= self.max_retries:
                    raise error_from_response(response)
                time.sleep(self._delay(attempt, response))
            attempt += 1

    # --- generation -----------------------------------------------------------------------------
    def counterfactual(
        self,
        shape: int | str | dict | None = None,
        texture: int | str | dict | None = None,
        bg: int | str | dict | None = None,
        *,
        seed: int = 0,
        seeds: dict[str, int] | None = None,
        outputs: Sequence[str] = ("composite",),
        model: str | None = None,
        truncation: float | None = None,
        format: str = "png",
    ) -> Counterfactual:
        """Each of shape/texture/bg: a class id, a class name, an asset name, or asset("NAME")."""
        return self._send(_Calls.counterfactual(shape, texture, bg, seed, seeds, outputs, model, truncation, format))

    def mechanism(
        self,
        mechanism: str,
        label: int | str,
        *,
        seed: int = 0,
        model: str | None = None,
        truncation: float | None = None,
    ) -> Image.Image:
        """One mechanism's output: "shape" (the mask), "texture" (foreground) or "background"."""
        return self._send(_Calls.mechanism(mechanism, label, seed, model, truncation))

    def sample_batch(
        self,
        n: int,
        *,
        seed: int = 0,
        start: int = 0,
        shape: int | str | None = None,
        texture: int | str | None = None,
        bg: int | str | None = None,
        policy: str = "uniform",
        cfs_per_shape: int = 1,
        model: str | None = None,
        outputs: Sequence[str] = ("composite",),
        truncation: float | None = None,
        as_torch: bool = False,
    ) -> SampleBatch:
        """Samples start..start+n-1 of the stream `seed` (the same samples a batch job with that seed holds)."""
        call = _Calls.samples(
            n, seed, start, shape, texture, bg, policy, cfs_per_shape, model, outputs, truncation, as_torch
        )
        return self._send(call)

    def batches(
        self,
        batch_size: int,
        *,
        num_batches: int | None = None,
        prefetch: int = 2,
        seed: int = 0,
        start: int = 0,
        **kwargs: Any,
    ) -> Iterator[SampleBatch]:
        """Consecutive batches of the stream `seed`, with `prefetch` requests in flight while you train."""
        pool = concurrent.futures.ThreadPoolExecutor(max(1, prefetch), thread_name_prefix="cgn-prefetch")
        pending: list[concurrent.futures.Future] = []
        k = 0

        def schedule() -> None:
            nonlocal k
            while len(pending) < max(1, prefetch) and (num_batches is None or k < num_batches):
                at = start + k * batch_size
                pending.append(pool.submit(self.sample_batch, batch_size, seed=seed, start=at, **kwargs))
                k += 1

        try:
            schedule()
            while pending:
                batch = pending.pop(0).result()
                schedule()
                yield batch
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    # --- models, names, assets -------------------------------------------------------------------
    def models(self) -> list[dict]:
        return self._send(Call("GET", "/models", _json))["models"]

    def model(self, name: str) -> dict:
        return self._send(Call("GET", f"/models/{name}", _json))

    def classes(self, q: str | None = None, *, model: str | None = None, mechanism: str | None = None) -> dict:
        """Class names per mechanism; with q, the matches and how q resolves."""
        name = model or self._send(Call("GET", "/models", _json))["default"]
        call = Call("GET", f"/models/{name}/classes", _json, params=_clean({"q": q, "mechanism": mechanism}))
        return self._send(call)

    def upload_asset(self, name: str, image: "str | os.PathLike | bytes | Image.Image", description: str = "") -> dict:
        return self._send(_Calls.upload_asset(name, image, description))

    def health(self) -> dict:
        return self._send(Call("GET", "/healthz", _json))

    def ready(self) -> dict:
        return self._send(Call("GET", "/readyz", _json))

    # --- batch jobs (cgn_client.batch, the batch queue's SDK) -------------------------------------
    def submit_batch(self, *args: Any, **kwargs: Any) -> Any:
        """Queue a large generation job; see cgn_client.batch."""
        from cgn_client import batch

        return batch.submit_batch(self, *args, **kwargs)


class AsyncCGNClient(_Base):
    """The asyncio twin of CGNClient: same methods, awaited."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, **kwargs: Any):
        super().__init__(base_url, api_key, **kwargs)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=self.timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncCGNClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, **self._request_kwargs(call))
            except httpx.TimeoutException as exc:
                if attempt >= self.max_retries:
                    raise APITimeoutError(f"request to {call.path} timed out: {exc}", exc.request) from exc
                await asyncio.sleep(self._delay(attempt, None))
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise APIConnectionError(f"could not reach {self.base_url}: {exc}") from exc
                await asyncio.sleep(self._delay(attempt, None))
            else:
                if response.is_success:
                    return call.parse(response)
                if response.status_code not in RETRY_STATUS or attempt >= self.max_retries:
                    raise error_from_response(response)
                await asyncio.sleep(self._delay(attempt, response))
            attempt += 1

    async def counterfactual(
        self,
        shape: int | str | dict | None = None,
        texture: int | str | dict | None = None,
        bg: int | str | dict | None = None,
        *,
        seed: int = 0,
        seeds: dict[str, int] | None = None,
        outputs: Sequence[str] = ("composite",),
        model: str | None = None,
        truncation: float | None = None,
        format: str = "png",
    ) -> Counterfactual:
        call = _Calls.counterfactual(shape, texture, bg, seed, seeds, outputs, model, truncation, format)
        return await self._send(call)

    async def mechanism(
        self,
        mechanism: str,
        label: int | str,
        *,
        seed: int = 0,
        model: str | None = None,
        truncation: float | None = None,
    ) -> Image.Image:
        return await self._send(_Calls.mechanism(mechanism, label, seed, model, truncation))

    async def sample_batch(
        self,
        n: int,
        *,
        seed: int = 0,
        start: int = 0,
        shape: int | str | None = None,
        texture: int | str | None = None,
        bg: int | str | None = None,
        policy: str = "uniform",
        cfs_per_shape: int = 1,
        model: str | None = None,
        outputs: Sequence[str] = ("composite",),
        truncation: float | None = None,
        as_torch: bool = False,
    ) -> SampleBatch:
        call = _Calls.samples(
            n, seed, start, shape, texture, bg, policy, cfs_per_shape, model, outputs, truncation, as_torch
        )
        return await self._send(call)

    async def batches(
        self,
        batch_size: int,
        *,
        num_batches: int | None = None,
        prefetch: int = 2,
        seed: int = 0,
        start: int = 0,
        **kwargs: Any,
    ) -> AsyncIterator[SampleBatch]:
        """Consecutive batches of the stream `seed`, `prefetch` requests in flight."""
        pending: list[asyncio.Task] = []
        k = 0

        def schedule() -> None:
            nonlocal k
            while len(pending) < max(1, prefetch) and (num_batches is None or k < num_batches):
                at = start + k * batch_size
                pending.append(asyncio.ensure_future(self.sample_batch(batch_size, seed=seed, start=at, **kwargs)))
                k += 1

        try:
            schedule()
            while pending:
                batch = await pending.pop(0)
                schedule()
                yield batch
        finally:
            for t in pending:
                t.cancel()

    async def models(self) -> list[dict]:
        return (await self._send(Call("GET", "/models", _json)))["models"]

    async def model(self, name: str) -> dict:
        return await self._send(Call("GET", f"/models/{name}", _json))

    async def classes(self, q: str | None = None, *, model: str | None = None, mechanism: str | None = None) -> dict:
        name = model or (await self._send(Call("GET", "/models", _json)))["default"]
        call = Call("GET", f"/models/{name}/classes", _json, params=_clean({"q": q, "mechanism": mechanism}))
        return await self._send(call)

    async def upload_asset(
        self, name: str, image: "str | os.PathLike | bytes | Image.Image", description: str = ""
    ) -> dict:
        return await self._send(_Calls.upload_asset(name, image, description))

    async def health(self) -> dict:
        return await self._send(Call("GET", "/healthz", _json))

    async def ready(self) -> dict:
        return await self._send(Call("GET", "/readyz", _json))

    async def submit_batch(self, *args: Any, **kwargs: Any) -> Any:
        """Queue a large generation job; see cgn_client.batch."""
        from cgn_client import batch

        return await batch.asubmit_batch(self, *args, **kwargs)
