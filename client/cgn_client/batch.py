"""Batch jobs from the SDK: submit, follow, download shards, and read them as a torch Dataset.

`CGNClient.submit_batch(...)` and `AsyncCGNClient.submit_batch(...)` land here; any httpx client whose
base_url points at the service also works. Shard readers here are independent of server code.
"""

import io
import json
import os
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from cgn_client._client import MAX_RETRY_DELAY, _retry_after
from cgn_client._errors import APIConnectionError, CGNError, error_from_response

MECHANISMS = ("shape", "texture", "background")
TERMINAL = ("completed", "failed", "cancelled")
RETRY_STATUS = (502, 503, 504)


class BatchJobError(CGNError):
    """A batch job ended failed or cancelled; `.status` is its last status."""

    def __init__(self, message: str, status: dict[str, Any]):
        super().__init__(message)
        self.status = status


def _wait(response: httpx.Response, delay: float) -> float:
    """The server's Retry-After (seconds or HTTP date, parsed as the client does), else our backoff delay."""
    after = _retry_after(response.headers.get("retry-after"))
    return delay if after is None else min(after, MAX_RETRY_DELAY)


def _request(http: httpx.Client, method: str, path: str, retries: int = 5, **kw) -> httpx.Response:
    """Bounded retries on 502/503/504 (honouring Retry-After) and on connection errors: a status poll
    must ride out an API restart or a Redis blip."""
    delay = 0.25
    for attempt in range(retries + 1):
        try:
            response = http.request(method, path, **kw)
        except httpx.TransportError as exc:
            if attempt == retries:
                raise APIConnectionError(f"{method} {path}: {exc}", getattr(exc, "request", None)) from exc
            time.sleep(delay)
            delay = min(4.0, delay * 2)
            continue
        if response.status_code in RETRY_STATUS and attempt < retries:
            time.sleep(_wait(response, delay))
            delay = min(4.0, delay * 2)
            continue
        if response.status_code >= 400:
            raise error_from_response(response)
        return response
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Shard:
    index: int
    name: str
    format: str  # "npz" or "wds"
    content: bytes

    def arrays(self) -> dict[str, np.ndarray]:
        """keys (n,), labels (n, 3), seeds (n, 3) and one uint8 NCHW array per output."""
        return read_shard(self.content, self.format)


class BatchJob:
    """A submitted job. `.status()` asks the server; the other methods build on it."""

    def __init__(self, http: httpx.Client, job_id: str, info: dict[str, Any] | None = None, poll_s: float = 0.5):
        self.http = http
        self.id = job_id
        self.info = info or {}
        self.poll_s = poll_s

    def __repr__(self) -> str:
        return f"BatchJob(id={self.id!r}, state={self.info.get('state')!r})"

    def status(self) -> dict[str, Any]:
        self.info = _request(self.http, "GET", f"/batches/{self.id}").json()
        return self.info

    def cancel(self) -> dict[str, Any]:
        self.info = _request(self.http, "DELETE", f"/batches/{self.id}").json()
        return self.info

    def delete(self) -> None:
        """Cancel and remove the job and its shards now."""
        _request(self.http, "DELETE", f"/batches/{self.id}", params={"purge": "true"})

    def wait(self, progress: bool = False, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job ends; a tqdm bar of samples done with progress=True (if tqdm is installed).
        Raises BatchJobError when it failed or was cancelled, TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = _bar(self.info.get("n"), progress, self.id)
        try:
            while True:
                s = self.status()
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
        if s["state"] != "completed":
            raise BatchJobError(f"batch job {self.id} {s['state']}: {s.get('errors', [])[-3:]}", s)
        return s

    def shard(self, k: int) -> Shard:
        r = _request(self.http, "GET", f"/batches/{self.id}/shards/{k}")
        fmt = self.info.get("format") or self.status()["format"]
        return Shard(k, _shard_name(k, fmt), fmt, r.content)

    def iter_shards(self, timeout: float | None = None) -> Iterator[Shard]:
        """Shards as they are written (in completion order), until the job ends."""
        seen: set[int] = set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            s = self.status()
            fresh = [sh["index"] for sh in s["shards"] if sh["index"] not in seen]
            for k in fresh:
                seen.add(k)
                yield self.shard(k)
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
        paths = []
        for sh in self.iter_shards():
            path = directory / sh.name
            tmp = path.with_suffix(path.suffix + ".part")
            tmp.write_bytes(sh.content)
            os.replace(tmp, path)
            paths.append(path)
        if self.info["state"] != "completed":
            raise BatchJobError(f"batch job {self.id} {self.info['state']}", self.info)
        if labels:
            r = _request(self.http, "GET", f"/batches/{self.id}/labels.csv")
            (directory / "labels.csv").write_bytes(r.content)
        return sorted(paths)

    def labels_table(self) -> str:
        return _request(self.http, "GET", f"/batches/{self.id}/labels.csv").text

    def dataset(self, directory: str | Path | None = None, output: str = "composite", transform=None):
        """A torch Dataset over the job's shards: item i is (image, shape, texture, background), the image a
        float tensor CHW in [0, 1] (or `transform(uint8 CHW array)`). Downloads to `directory` (or a temp dir)."""
        if directory is None:
            import tempfile

            directory = tempfile.mkdtemp(prefix=f"cgn-batch-{self.id[:8]}-")
        paths = self.download(directory, labels=False)
        return shard_dataset(paths, output=output, transform=transform)


def _body(
    n: int | None,
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
) -> dict[str, Any]:
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
    return body


def _http_of(client: Any) -> Any:
    """A CGNClient/AsyncCGNClient (its httpx client carries base_url and the API key), or an httpx client."""
    return getattr(client, "_http", client)


def submit_batch(client: Any, n: int | None = None, *, retries: int = 2, **options: Any) -> BatchJob:
    """POST /batches -> BatchJob. Options: model, seed, policy ("uniform" or "same"), shape, texture, bg
    (fixed labels, ids or names), labels (explicit [shape, texture, bg] rows), cfs_per_shape, outputs,
    shard_size, format ("npz" or "wds"), truncation (ImageNet models). Sample i's labels and seeds come
    from (seed, i) alone.
    `retries`: on 503 (queue full: honours Retry-After) and connection errors; safe, the POST is idempotent."""
    http = _http_of(client)
    headers = {"Idempotency-Key": uuid.uuid4().hex}  # so retrying a lost answer never queues the job twice
    info = _request(http, "POST", "/batches", retries, json=_body(n, **options), headers=headers).json()
    return BatchJob(http, info["id"], info)


async def _arequest(http: httpx.AsyncClient, method: str, path: str, retries: int = 5, **kw) -> httpx.Response:
    import asyncio

    delay = 0.25
    for attempt in range(retries + 1):
        try:
            response = await http.request(method, path, **kw)
        except httpx.TransportError as exc:
            if attempt == retries:
                raise APIConnectionError(f"{method} {path}: {exc}", getattr(exc, "request", None)) from exc
            await asyncio.sleep(delay)
            delay = min(4.0, delay * 2)
            continue
        if response.status_code in RETRY_STATUS and attempt < retries:
            await asyncio.sleep(_wait(response, delay))
            delay = min(4.0, delay * 2)
            continue
        if response.status_code >= 400:
            raise error_from_response(response)
        return response
    raise AssertionError("unreachable")


class AsyncBatchJob:
    """The asyncio twin of BatchJob (status, cancel, wait, shard, iter_shards)."""

    def __init__(self, http: httpx.AsyncClient, job_id: str, info: dict[str, Any] | None = None, poll_s: float = 0.5):
        self.http, self.id, self.info, self.poll_s = http, job_id, info or {}, poll_s

    async def status(self) -> dict[str, Any]:
        self.info = (await _arequest(self.http, "GET", f"/batches/{self.id}")).json()
        return self.info

    async def cancel(self) -> dict[str, Any]:
        self.info = (await _arequest(self.http, "DELETE", f"/batches/{self.id}")).json()
        return self.info

    async def wait(self, timeout: float | None = None) -> dict[str, Any]:
        import asyncio

        deadline = None if timeout is None else time.monotonic() + timeout
        while (s := await self.status())["state"] not in TERMINAL:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"batch job {self.id} still {s['state']} after {timeout}s")
            await asyncio.sleep(self.poll_s)
        if s["state"] != "completed":
            raise BatchJobError(f"batch job {self.id} {s['state']}: {s.get('errors', [])[-3:]}", s)
        return s

    async def shard(self, k: int) -> Shard:
        r = await _arequest(self.http, "GET", f"/batches/{self.id}/shards/{k}")
        fmt = self.info.get("format") or (await self.status())["format"]
        return Shard(k, _shard_name(k, fmt), fmt, r.content)

    async def iter_shards(self):
        import asyncio

        seen: set[int] = set()
        while True:
            s = await self.status()
            fresh = [sh["index"] for sh in s["shards"] if sh["index"] not in seen]
            for k in fresh:
                seen.add(k)
                yield await self.shard(k)
            if s["state"] in TERMINAL and not fresh:
                return
            if not fresh:
                await asyncio.sleep(self.poll_s)


async def asubmit_batch(client: Any, n: int | None = None, *, retries: int = 2, **options: Any) -> AsyncBatchJob:
    http = _http_of(client)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    info = (await _arequest(http, "POST", "/batches", retries, json=_body(n, **options), headers=headers)).json()
    return AsyncBatchJob(http, info["id"], info)


def batch_job(client: Any, job_id: str) -> BatchJob:
    """Reattach to a job by id (from another process, or after a restart)."""
    job = BatchJob(_http_of(client), job_id)
    job.status()
    return job


def list_batches(client: Any, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    return _request(_http_of(client), "GET", "/batches", params={"limit": limit, "offset": offset}).json()["jobs"]


# ---- shard files --------------------------------------------------------------------------------
def _shard_name(k: int, fmt: str) -> str:
    return f"shard-{k:06d}.{'npz' if fmt == 'npz' else 'tar'}"


def read_shard(data: bytes, fmt: str) -> dict[str, np.ndarray]:
    if fmt == "npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    return _read_wds(data)


def _read_wds(data: bytes) -> dict[str, np.ndarray]:
    from PIL import Image

    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for m in tar:
            if m.isfile():
                key, _, ext = m.name.partition(".")
                samples.setdefault(key, {})[ext] = tar.extractfile(m).read()
    out: dict[str, list] = {"keys": [], "labels": [], "seeds": []}
    for files in samples.values():
        meta = json.loads(files["json"])
        out["keys"].append(meta["index"])
        out["labels"].append([meta[m] for m in MECHANISMS])
        out["seeds"].append([meta[f"{m}_seed"] for m in MECHANISMS])
        for ext, payload in files.items():
            if ext.endswith("png"):
                name = "composite" if ext == "png" else ext[: -len(".png")]
                arr = np.asarray(Image.open(io.BytesIO(payload)))
                out.setdefault(name, []).append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    meta = ("keys", "labels", "seeds")
    return {k: np.asarray(v, dtype=np.int64) if k in meta else np.stack(v) for k, v in out.items()}


def shard_dataset(paths: Sequence[str | Path], output: str = "composite", transform: Callable | None = None):
    """A map-style torch Dataset over shard files (npz or WebDataset tar); one decoded shard is cached."""
    import torch
    from torch.utils.data import Dataset

    class ShardDataset(Dataset):
        def __init__(self) -> None:
            self.paths = [Path(p) for p in sorted(paths)]
            self.sizes = [_count(p) for p in self.paths]
            self.offsets = np.cumsum([0, *self.sizes])
            self._cached: tuple[int, dict[str, np.ndarray]] | None = None

        def __len__(self) -> int:
            return int(self.offsets[-1])

        def _shard(self, s: int) -> dict[str, np.ndarray]:
            if self._cached is None or self._cached[0] != s:
                p = self.paths[s]
                self._cached = (s, read_shard(p.read_bytes(), "npz" if p.suffix == ".npz" else "wds"))
            return self._cached[1]

        def __getitem__(self, i: int):
            if not -len(self) <= i < len(self):
                raise IndexError(f"index {i} out of range for {len(self)} samples")
            i %= len(self)
            s = int(np.searchsorted(self.offsets, i, side="right") - 1)
            arrays = self._shard(s)
            j = i - int(self.offsets[s])
            image = arrays[output][j]
            image = transform(image) if transform else torch.from_numpy(image.astype(np.float32) / 255.0)
            y = arrays["labels"][j]
            return image, int(y[0]), int(y[1]), int(y[2])

    return ShardDataset()


def _count(path: Path) -> int:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return len(z["keys"])
    with tarfile.open(path) as tar:
        return sum(1 for m in tar if m.name.endswith(".json"))


def _bar(total: int | None, enabled: bool, job_id: str):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=f"batch {job_id[:8]}", unit="sample")
