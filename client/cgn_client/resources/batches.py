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
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

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


def cancel_request(job_id: str) -> Call[Any]:
    return Call("POST", f"/batches/{job_id}/cancel", json_body, idempotent=True)  # cancelling twice is fine


def delete_request(job_id: str) -> Call[Any]:
    return Call("DELETE", f"/batches/{job_id}", json_body)


def shard_request(job_id: str, k: int) -> Call[bytes]:
    return Call("GET", f"/batches/{job_id}/shards/{k}", lambda r: r.content)


def labels_request(job_id: str, text: bool = False) -> Call[Any]:
    """GET /batches/{id}/labels.csv: the bytes, or the decoded text."""
    return Call("GET", f"/batches/{job_id}/labels.csv", (lambda r: r.text) if text else (lambda r: r.content))


def list_request(limit: int = 50, offset: int = 0) -> Call[dict[str, Any]]:
    return Call("GET", "/batches", json_body, params={"limit": limit, "offset": offset})


def workers_request() -> Call[dict[str, Any]]:
    return Call("GET", "/batches/workers", json_body)


# ---- what the twins share (no I/O) --------------------------------------------------------------
def _ended(job_id: str, status: dict[str, Any]) -> dict[str, Any]:
    """The status of a completed job; BatchJobError for a failed or cancelled one."""
    if status["state"] != "completed":
        raise BatchJobError(f"batch job {job_id} {status['state']}: {status.get('errors', [])[-3:]}", status)
    return status


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


class _Job:
    """What BatchJob and AsyncBatchJob hold: the id, the last status seen, the poll interval and how long a
    wait's requests ride out an outage."""

    def __init__(
        self,
        transport: SyncTransport | AsyncTransport,
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
        return f"{type(self).__name__}(id={self.id!r}, state={self.info.get('state')!r})"


class _Wait:
    """The bookkeeping of one wait (`wait`, `iter_shards`) between its polls: the deadline, each request's
    outage patience, the shards already yielded, the progress bar. A context manager: it closes the bar."""

    def __init__(self, job: _Job, timeout: float | None, outage_timeout: float | None, progress: bool = False):
        self.job_id = job.id
        self.timeout = timeout
        self.outage = job.outage_timeout if outage_timeout is None else outage_timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.seen: set[int] = set()
        self.bar = _bar(job.info.get("n"), progress, job.id)

    def __enter__(self) -> "_Wait":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def patience(self) -> float:
        """How long the next poll may ride out an outage: the outage timeout, but not past the deadline."""
        return self.outage if self.deadline is None else max(0.0, min(self.outage, self.deadline - time.monotonic()))

    def _late(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def ended(self, status: dict[str, Any]) -> bool:
        """After a poll of `wait`: whether the job ended; TimeoutError once the deadline has passed."""
        if self.bar is not None:
            self.bar.total = status["n"]
            self.bar.update(status["done"] - self.bar.n)
        if status["state"] in TERMINAL:
            return True
        if self._late():
            where = f"{status['state']} after {self.timeout}s ({status['done']}/{status['n']})"
            raise TimeoutError(f"batch job {self.job_id} still {where}")
        return False

    def fresh(self, status: dict[str, Any]) -> list[int] | None:
        """After a poll of `iter_shards`: the shards not yet yielded (from now on counted as yielded); None
        when the job ended with none left; TimeoutError when none came by the deadline."""
        fresh = [sh["index"] for sh in status["shards"] if sh["index"] not in self.seen]
        self.seen.update(fresh)
        if not fresh and status["state"] in TERMINAL:
            return None
        if not fresh and self._late():
            raise TimeoutError(f"batch job {self.job_id}: no new shard within {self.timeout}s")
        return fresh


BatchStream = TypeVar("BatchStream", Iterator[SampleBatch], AsyncIterator[SampleBatch])


class _Batches(Generic[BatchStream]):
    """What Batches and AsyncBatches share: the transport, the outage patience of their jobs, and calling."""

    def __init__(self, transport: SyncTransport | AsyncTransport, outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT):
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
    ) -> BatchStream:
        """Consecutive batches of the stream `seed`, with `prefetch` requests in flight while you train.
        Batch k holds samples start + k*batch_size...; kwargs are sample_batch's (model, policy, as_torch...)."""
        samples_request(batch_size, seed=seed, start=start, **kwargs)  # a bad argument raises here, not later
        calls = (
            samples_request(batch_size, seed=seed, start=start + k * batch_size, **kwargs)
            for k in (itertools.count() if num_batches is None else range(num_batches))
        )
        return self._prefetch(calls, max(1, prefetch))

    def _prefetch(self, calls: Iterator[Call[SampleBatch]], depth: int) -> BatchStream:
        raise NotImplementedError


# ---- sync ---------------------------------------------------------------------------------------
class BatchJob(_Job):
    """A submitted job. `.status()` asks the server; the other methods build on it.

    `outage_timeout`: how long the waits (`wait`, `iter_shards`, `download`, `dataset`) keep retrying
    while the API is unreachable or answers 502/503/504, per request, before they raise.
    """

    _transport: SyncTransport

    def status(self, *, outage_timeout: float | None = None) -> dict[str, Any]:
        """GET /batches/{id}; with outage_timeout, retried through an outage of up to that many seconds."""
        self.info = self._transport.send(status_request(self.id), outage_timeout=outage_timeout)
        return self.info

    def cancel(self) -> dict[str, Any]:
        self.info = self._transport.send(cancel_request(self.id))
        return self.info

    def delete(self) -> None:
        """Cancel and remove the job and its shards now."""
        self._transport.send(delete_request(self.id))

    def wait(
        self, progress: bool = False, timeout: float | None = None, *, outage_timeout: float | None = None
    ) -> dict[str, Any]:
        """Block until the job ends; a tqdm bar of samples done with progress=True (if tqdm is installed).

        Rides out an API restart: polls retry connection errors, timeouts and 502/503/504 with backoff for
        up to `outage_timeout` seconds each (default: the job's, 300 s unless the client says otherwise).
        Raises BatchJobError when the job failed or was cancelled, TimeoutError after `timeout` seconds,
        APIConnectionError when the API stayed unreachable longer than the outage timeout."""
        with _Wait(self, timeout, outage_timeout, progress) as w:
            while not w.ended(s := self.status(outage_timeout=w.patience())):
                time.sleep(self.poll_s)
        return _ended(self.id, s)

    def shard(self, k: int, *, outage_timeout: float | None = None) -> Shard:
        content = self._transport.send(shard_request(self.id, k), outage_timeout=outage_timeout)
        fmt = self.info.get("format") or self.status(outage_timeout=outage_timeout)["format"]
        return Shard(k, shard_name(k, fmt), fmt, content)

    def iter_shards(self, timeout: float | None = None, *, outage_timeout: float | None = None) -> Iterator[Shard]:
        """Shards as they are written (in completion order), until the job ends; rides out outages as wait()."""
        w = _Wait(self, timeout, outage_timeout)
        while (fresh := w.fresh(self.status(outage_timeout=w.patience()))) is not None:
            for k in fresh:
                yield self.shard(k, outage_timeout=w.outage)
            if not fresh:
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


class Batches(_Batches[Iterator[SampleBatch]]):
    """`client.batches(batch_size, ...)` iterates prefetched /samples batches; `.submit`, `.get`, `.list` and
    `.workers` are the batch-job queue."""

    _transport: SyncTransport

    def _prefetch(self, calls: Iterator[Call[SampleBatch]], depth: int) -> Iterator[SampleBatch]:
        pool = concurrent.futures.ThreadPoolExecutor(depth, thread_name_prefix="cgn-prefetch")
        pending: list[concurrent.futures.Future] = []
        try:
            pending += [pool.submit(self._transport.send, call) for call in itertools.islice(calls, depth)]
            while pending:
                batch = pending.pop(0).result()
                pending += [pool.submit(self._transport.send, call) for call in itertools.islice(calls, 1)]
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
class AsyncBatchJob(_Job):
    """The asyncio twin of BatchJob (status, cancel, delete, wait, shard, iter_shards, download, labels_table)."""

    _transport: AsyncTransport

    async def status(self, *, outage_timeout: float | None = None) -> dict[str, Any]:
        self.info = await self._transport.send(status_request(self.id), outage_timeout=outage_timeout)
        return self.info

    async def cancel(self) -> dict[str, Any]:
        self.info = await self._transport.send(cancel_request(self.id))
        return self.info

    async def delete(self) -> None:
        await self._transport.send(delete_request(self.id))

    async def wait(
        self, timeout: float | None = None, *, progress: bool = False, outage_timeout: float | None = None
    ) -> dict[str, Any]:
        """As BatchJob.wait: rides out an API outage of up to `outage_timeout` seconds per poll."""
        with _Wait(self, timeout, outage_timeout, progress) as w:
            while not w.ended(s := await self.status(outage_timeout=w.patience())):
                await asyncio.sleep(self.poll_s)
        return _ended(self.id, s)

    async def shard(self, k: int, *, outage_timeout: float | None = None) -> Shard:
        content = await self._transport.send(shard_request(self.id, k), outage_timeout=outage_timeout)
        fmt = self.info.get("format") or (await self.status(outage_timeout=outage_timeout))["format"]
        return Shard(k, shard_name(k, fmt), fmt, content)

    async def iter_shards(
        self, timeout: float | None = None, *, outage_timeout: float | None = None
    ) -> AsyncIterator[Shard]:
        w = _Wait(self, timeout, outage_timeout)
        while (fresh := w.fresh(await self.status(outage_timeout=w.patience()))) is not None:
            for k in fresh:
                yield await self.shard(k, outage_timeout=w.outage)
            if not fresh:
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


class AsyncBatches(_Batches[AsyncIterator[SampleBatch]]):
    """The asyncio twin of Batches: `async for b in client.batches(256)`, `await client.batches.submit(...)`."""

    _transport: AsyncTransport

    async def _prefetch(self, calls: Iterator[Call[SampleBatch]], depth: int) -> AsyncIterator[SampleBatch]:
        pending: list[asyncio.Task] = []
        try:
            pending += [asyncio.ensure_future(self._transport.send(call)) for call in itertools.islice(calls, depth)]
            while pending:
                batch = await pending.pop(0)
                pending += [asyncio.ensure_future(self._transport.send(call)) for call in itertools.islice(calls, 1)]
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
