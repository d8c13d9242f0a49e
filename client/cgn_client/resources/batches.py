"""`client.batches`: training batches streamed from /samples, and the batch-job queue (/batches).

Calling it, `client.batches(256, seed=0)`, iterates consecutive batches of a sample stream with requests
prefetched; its methods are the job API: `.submit(n, ...)` -> BatchJob, `.get(id)`, `.list()`, `.workers()`.

Waits (`job.wait`, `job.iter_shards`, `job.download`, `job.dataset`) ride out an API restart or a Redis
blip: each of their requests retries connection errors, timeouts and 502/503/504 with backoff for up to
`outage_timeout` seconds (the client's, default 300) before it raises APIConnectionError/OverloadedError.
Plain calls (`job.status()`, `.submit`, ...) keep the client's bounded retries.
"""

import asyncio
import concurrent.futures
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from cgn_client._base_client import AsyncTransport, Call, SyncTransport, json_body
from cgn_client._errors import BatchJobError
from cgn_client._shards import Shard, shard_dataset, shard_name
from cgn_client._types import SampleBatch
from cgn_client.resources.generation import samples_request

TERMINAL = ("completed", "failed", "cancelled")
DEFAULT_OUTAGE_TIMEOUT = 300.0


# ---- request builders ---------------------------------------------------------------------------
def submit_request(
    n: int | None = None,
    *,
    model: str | None = None,
    seed: int = 0,
    policy: str = "uniform",
    shape: int | str | None = None,
    texture: int | str | None = None,
    bg: int | str | None = None,
    labels: Sequence[Sequence[int | str]] | None = None,
    cfs_per_shape: int = 1,
    outputs: Sequence[str] = ("composite",),
    shard_size: int | None = None,
    format: str = "npz",
    truncation: float | None = None,
    idempotency_key: str | None = None,
) -> Call[dict[str, Any]]:
    """POST /batches with an Idempotency-Key (a fresh one unless given): replaying it never queues twice."""
    body: dict[str, Any] = {"seed": seed, "policy": policy, "cfs_per_shape": cfs_per_shape}
    body.update(outputs=list(outputs), format=format)
    for key, value in (("n", n), ("model", model), ("shape", shape), ("texture", texture), ("bg", bg)):
        if value is not None:
            body[key] = value
    if labels is not None:
        body["labels"] = [list(row) for row in labels]
    if shard_size is not None:
        body["shard_size"] = shard_size
    if truncation is not None:
        body["truncation"] = truncation
    headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
    return Call("POST", "/batches", json_body, json=body, headers=headers, idempotent=True)


def status_request(job_id: str) -> Call[dict[str, Any]]:
    return Call("GET", f"/batches/{job_id}", json_body)


def cancel_request(job_id: str, purge: bool = False) -> Call[Any]:
    return Call("DELETE", f"/batches/{job_id}", json_body, params={"purge": "true"} if purge else None)


def shard_request(job_id: str, k: int) -> Call[bytes]:
    return Call("GET", f"/batches/{job_id}/shards/{k}", lambda r: r.content)


def labels_request(job_id: str, text: bool = False) -> Call[Any]:
    """GET /batches/{id}/labels.csv: the bytes, or the decoded text."""
    return Call("GET", f"/batches/{job_id}/labels.csv", (lambda r: r.text) if text else (lambda r: r.content))


def list_request(limit: int = 50, offset: int = 0) -> Call[dict[str, Any]]:
    return Call("GET", "/batches", json_body, params={"limit": limit, "offset": offset})


def workers_request() -> Call[dict[str, Any]]:
    return Call("GET", "/batches/workers", json_body)


# ---- helpers shared by the twins (no I/O) -------------------------------------------------------
def _ended(job_id: str, status: dict[str, Any]) -> dict[str, Any]:
    """The status of a completed job; BatchJobError for a failed or cancelled one."""
    if status["state"] != "completed":
        raise BatchJobError(f"batch job {job_id} {status['state']}: {status.get('errors', [])[-3:]}", status)
    return status


def _patience(outage_timeout: float, deadline: float | None) -> float:
    """How long one request of a wait may ride out an outage: outage_timeout, but not past the wait's deadline."""
    return outage_timeout if deadline is None else max(0.0, min(outage_timeout, deadline - time.monotonic()))


def _bar(total: int | None, enabled: bool, job_id: str):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=f"batch {job_id[:8]}", unit="sample")


def _write(directory: Path, name: str, content: bytes) -> Path:
    path = directory / name
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    return path


# ---- sync ---------------------------------------------------------------------------------------
class BatchJob:
    """A submitted job. `.status()` asks the server; the other methods build on it.

    `outage_timeout`: how long the waits (`wait`, `iter_shards`, `download`, `dataset`) keep retrying
    while the API is unreachable or answers 502/503/504, per request, before they raise.
    """

    def __init__(
        self,
        transport: SyncTransport,
        job_id: str,
        info: dict[str, Any] | None = None,
        poll_s: float = 0.5,
        outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT,
    ):
        self._transport = transport
        self.id = job_id
        self.info = info or {}
        self.poll_s = poll_s
        self.outage_timeout = outage_timeout

    def __repr__(self) -> str:
        return f"BatchJob(id={self.id!r}, state={self.info.get('state')!r})"

    def status(self, *, outage_timeout: float | None = None) -> dict[str, Any]:
        """GET /batches/{id}; with outage_timeout, retried through an outage of up to that many seconds."""
        self.info = self._transport.send(status_request(self.id), outage_timeout=outage_timeout)
        return self.info

    def cancel(self) -> dict[str, Any]:
        self.info = self._transport.send(cancel_request(self.id))
        return self.info

    def delete(self) -> None:
        """Cancel and remove the job and its shards now."""
        self._transport.send(cancel_request(self.id, purge=True))

    def wait(
        self, progress: bool = False, timeout: float | None = None, *, outage_timeout: float | None = None
    ) -> dict[str, Any]:
        """Block until the job ends; a tqdm bar of samples done with progress=True (if tqdm is installed).

        Rides out an API restart: polls retry connection errors, timeouts and 502/503/504 with backoff for
        up to `outage_timeout` seconds each (default: the job's, 300 s unless the client says otherwise).
        Raises BatchJobError when the job failed or was cancelled, TimeoutError after `timeout` seconds,
        APIConnectionError when the API stayed unreachable longer than the outage timeout."""
        outage = self.outage_timeout if outage_timeout is None else outage_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = _bar(self.info.get("n"), progress, self.id)
        try:
            while True:
                s = self.status(outage_timeout=_patience(outage, deadline))
                if bar is not None:
                    bar.total = s["n"]
                    bar.update(s["done"] - bar.n)
                if s["state"] in TERMINAL:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    where = f"{s['state']} after {timeout}s ({s['done']}/{s['n']})"
                    raise TimeoutError(f"batch job {self.id} still {where}")
                time.sleep(self.poll_s)
        finally:
            if bar is not None:
                bar.close()
        return _ended(self.id, s)

    def shard(self, k: int, *, outage_timeout: float | None = None) -> Shard:
        content = self._transport.send(shard_request(self.id, k), outage_timeout=outage_timeout)
        fmt = self.info.get("format") or self.status(outage_timeout=outage_timeout)["format"]
        return Shard(k, shard_name(k, fmt), fmt, content)

    def iter_shards(self, timeout: float | None = None, *, outage_timeout: float | None = None) -> Iterator[Shard]:
        """Shards as they are written (in completion order), until the job ends; rides out outages as wait()."""
        outage = self.outage_timeout if outage_timeout is None else outage_timeout
        seen: set[int] = set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            s = self.status(outage_timeout=_patience(outage, deadline))
            fresh = [sh["index"] for sh in s["shards"] if sh["index"] not in seen]
            for k in fresh:
                seen.add(k)
                yield self.shard(k, outage_timeout=outage)
            if s["state"] in TERMINAL and not fresh:
                return
            if not fresh:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"batch job {self.id}: no new shard within {timeout}s")
                time.sleep(self.poll_s)

    def download(self, directory: str | Path, labels: bool = True) -> list[Path]:
        """All shards (waiting for the job) plus labels.csv into `directory`; files already there are kept."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = [_write(directory, sh.name, sh.content) for sh in self.iter_shards()]
        _ended(self.id, self.info)
        if labels:
            content = self._transport.send(labels_request(self.id), outage_timeout=self.outage_timeout)
            (directory / "labels.csv").write_bytes(content)
        return sorted(paths)

    def labels_table(self) -> str:
        return self._transport.send(labels_request(self.id, text=True))

    def dataset(self, directory: str | Path | None = None, output: str = "composite", transform=None):
        """A torch Dataset over the job's shards: item i is (image, shape, texture, background), the image a
        float tensor CHW in [0, 1] (or `transform(uint8 CHW array)`). Downloads to `directory` (or a temp dir)."""
        if directory is None:
            import tempfile

            directory = tempfile.mkdtemp(prefix=f"cgn-batch-{self.id[:8]}-")
        paths = self.download(directory, labels=False)
        return shard_dataset(paths, output=output, transform=transform)


class Batches:
    """`client.batches(batch_size, ...)` iterates prefetched /samples batches; `.submit`, `.get`, `.list` and
    `.workers` are the batch-job queue."""

    def __init__(self, transport: SyncTransport, outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT):
        self._transport = transport
        self.outage_timeout = outage_timeout

    def __call__(
        self,
        batch_size: int,
        *,
        num_batches: int | None = None,
        prefetch: int = 2,
        seed: int = 0,
        start: int = 0,
        **kwargs: Any,
    ) -> Iterator[SampleBatch]:
        """Consecutive batches of the stream `seed`, with `prefetch` requests in flight while you train.
        Batch k holds samples start + k*batch_size...; kwargs are sample_batch's (model, policy, as_torch...)."""
        samples_request(batch_size, seed=seed, start=start, **kwargs)  # a bad argument raises here, not in a thread
        return self._prefetch(batch_size, num_batches, prefetch, seed, start, kwargs)

    def _prefetch(self, batch_size, num_batches, prefetch, seed, start, kwargs) -> Iterator[SampleBatch]:
        pool = concurrent.futures.ThreadPoolExecutor(max(1, prefetch), thread_name_prefix="cgn-prefetch")
        pending: list[concurrent.futures.Future] = []
        k = 0

        def schedule() -> None:
            nonlocal k
            while len(pending) < max(1, prefetch) and (num_batches is None or k < num_batches):
                call = samples_request(batch_size, seed=seed, start=start + k * batch_size, **kwargs)
                pending.append(pool.submit(self._transport.send, call))
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

    def submit(self, n: int | None = None, *, retries: int | None = None, **options: Any) -> BatchJob:
        """POST /batches -> BatchJob. Options: model, seed, policy ("uniform" or "same"), shape, texture, bg
        (fixed labels, ids or names), labels (explicit [shape, texture, bg] rows), cfs_per_shape, outputs,
        shard_size, format ("npz" or "wds"), truncation (ImageNet models). Sample i's labels and seeds come
        from (seed, i) alone. `retries` overrides the client's max_retries; retrying is safe: the request
        carries an Idempotency-Key, so a replayed submit never queues the job twice."""
        info = self._transport.send(submit_request(n, **options), max_retries=retries)
        return BatchJob(self._transport, info["id"], info, outage_timeout=self.outage_timeout)

    def get(self, job_id: str) -> BatchJob:
        """Reattach to a job by id (from another process, or after a restart)."""
        job = BatchJob(self._transport, job_id, outage_timeout=self.outage_timeout)
        job.status()
        return job

    def workers(self) -> dict[str, Any]:
        """Per-worker heartbeat, state and metrics, and the samples still queued."""
        return self._transport.send(workers_request())

    def list(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Jobs, newest first."""
        return self._transport.send(list_request(limit, offset))["jobs"]


# ---- async --------------------------------------------------------------------------------------
class AsyncBatchJob:
    """The asyncio twin of BatchJob (status, cancel, delete, wait, shard, iter_shards, download, labels_table)."""

    def __init__(
        self,
        transport: AsyncTransport,
        job_id: str,
        info: dict[str, Any] | None = None,
        poll_s: float = 0.5,
        outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT,
    ):
        self._transport = transport
        self.id = job_id
        self.info = info or {}
        self.poll_s = poll_s
        self.outage_timeout = outage_timeout

    def __repr__(self) -> str:
        return f"AsyncBatchJob(id={self.id!r}, state={self.info.get('state')!r})"

    async def status(self, *, outage_timeout: float | None = None) -> dict[str, Any]:
        self.info = await self._transport.send(status_request(self.id), outage_timeout=outage_timeout)
        return self.info

    async def cancel(self) -> dict[str, Any]:
        self.info = await self._transport.send(cancel_request(self.id))
        return self.info

    async def delete(self) -> None:
        await self._transport.send(cancel_request(self.id, purge=True))

    async def wait(
        self, timeout: float | None = None, *, progress: bool = False, outage_timeout: float | None = None
    ) -> dict[str, Any]:
        """As BatchJob.wait: rides out an API outage of up to `outage_timeout` seconds per poll."""
        outage = self.outage_timeout if outage_timeout is None else outage_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = _bar(self.info.get("n"), progress, self.id)
        try:
            while True:
                s = await self.status(outage_timeout=_patience(outage, deadline))
                if bar is not None:
                    bar.total = s["n"]
                    bar.update(s["done"] - bar.n)
                if s["state"] in TERMINAL:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"batch job {self.id} still {s['state']} after {timeout}s")
                await asyncio.sleep(self.poll_s)
        finally:
            if bar is not None:
                bar.close()
        return _ended(self.id, s)

    async def shard(self, k: int, *, outage_timeout: float | None = None) -> Shard:
        content = await self._transport.send(shard_request(self.id, k), outage_timeout=outage_timeout)
        fmt = self.info.get("format") or (await self.status(outage_timeout=outage_timeout))["format"]
        return Shard(k, shard_name(k, fmt), fmt, content)

    async def iter_shards(
        self, timeout: float | None = None, *, outage_timeout: float | None = None
    ) -> AsyncIterator[Shard]:
        outage = self.outage_timeout if outage_timeout is None else outage_timeout
        seen: set[int] = set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            s = await self.status(outage_timeout=_patience(outage, deadline))
            fresh = [sh["index"] for sh in s["shards"] if sh["index"] not in seen]
            for k in fresh:
                seen.add(k)
                yield await self.shard(k, outage_timeout=outage)
            if s["state"] in TERMINAL and not fresh:
                return
            if not fresh:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"batch job {self.id}: no new shard within {timeout}s")
                await asyncio.sleep(self.poll_s)

    async def download(self, directory: str | Path, labels: bool = True) -> list[Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = [_write(directory, sh.name, sh.content) async for sh in self.iter_shards()]
        _ended(self.id, self.info)
        if labels:
            content = await self._transport.send(labels_request(self.id), outage_timeout=self.outage_timeout)
            (directory / "labels.csv").write_bytes(content)
        return sorted(paths)

    async def labels_table(self) -> str:
        return await self._transport.send(labels_request(self.id, text=True))


class AsyncBatches:
    """The asyncio twin of Batches: `async for b in client.batches(256)`, `await client.batches.submit(...)`."""

    def __init__(self, transport: AsyncTransport, outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT):
        self._transport = transport
        self.outage_timeout = outage_timeout

    def __call__(
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
        samples_request(batch_size, seed=seed, start=start, **kwargs)  # a bad argument raises here
        return self._prefetch(batch_size, num_batches, prefetch, seed, start, kwargs)

    async def _prefetch(self, batch_size, num_batches, prefetch, seed, start, kwargs) -> AsyncIterator[SampleBatch]:
        pending: list[asyncio.Task] = []
        k = 0

        def schedule() -> None:
            nonlocal k
            while len(pending) < max(1, prefetch) and (num_batches is None or k < num_batches):
                call = samples_request(batch_size, seed=seed, start=start + k * batch_size, **kwargs)
                pending.append(asyncio.ensure_future(self._transport.send(call)))
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

    async def submit(self, n: int | None = None, *, retries: int | None = None, **options: Any) -> AsyncBatchJob:
        info = await self._transport.send(submit_request(n, **options), max_retries=retries)
        return AsyncBatchJob(self._transport, info["id"], info, outage_timeout=self.outage_timeout)

    async def get(self, job_id: str) -> AsyncBatchJob:
        job = AsyncBatchJob(self._transport, job_id, outage_timeout=self.outage_timeout)
        await job.status()
        return job

    async def workers(self) -> dict[str, Any]:
        return await self._transport.send(workers_request())

    async def list(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        return (await self._transport.send(list_request(limit, offset)))["jobs"]
