"""Batch jobs: submit (202 + id), status, shard and labels downloads, cancel, list. See docs/batch.md."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import numpy as np
import redis
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from cgn.mechanisms import MECHANISMS
from service.batch import cleanup
from service.batch.labels import csv_rows
from service.batch.queue import BatchQueue, QueueConfig, QueueFull
from service.batch.spec import BatchSpec
from service.batch.store import ResultStore, resolve_url
from service.deps import Services, get_services, manifest_of, require_api_key
from service.errors import APIError, InvalidInput, NotFound, Overloaded
from service.generation import check_truncation
from service.resolve import fixed_label
from service.schemas import BatchJob, BatchJobList, DeletedJob, WorkerList

router = APIRouter(prefix="/batches", tags=["batches"], dependencies=[Depends(require_api_key)])

Seed = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
Output = Literal["composite", "mask", "premask", "foreground", "background"]
Label = StrictInt | Annotated[StrictStr, Field(min_length=1, max_length=200)]
MEDIA = {"npz": "application/octet-stream", "wds": "application/x-tar"}


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"model": "mnist-wildlife", "n": 100000, "seed": 1, "format": "wds", "shard_size": 1000},
                {"n": 5000, "shape": 3, "cfs_per_shape": 10, "outputs": ["composite", "mask"]},
                {"labels": [[3, "red", 0], [7, 1, 2]], "seed": 5},
            ]
        },
    )
    model: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = Field(
        None, description="model name; default: the configured default model"
    )
    n: Annotated[StrictInt, Field(ge=1)] | None = Field(None, description="samples; at most CGN_BATCH_MAX_N")
    seed: Seed = Field(0, description="sample i's labels and seeds derive from (seed, i) only")
    policy: Literal["uniform", "same"] = Field(
        "uniform", description="uniform: labels drawn independently per mechanism; same: one label for all three"
    )
    shape: Label | None = Field(None, description="fix the shape label of every sample (id or name)")
    texture: Label | None = Field(None, description="fix the texture label of every sample")
    background: Label | None = Field(None, alias="bg", description="fix the background label (alias: background)")
    labels: Annotated[list[Annotated[list[Label], Field(min_length=3, max_length=3)]], Field(min_length=1)] | None = (
        Field(None, description="explicit [shape, texture, background] per sample; n defaults to its length")
    )
    cfs_per_shape: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = Field(
        1, description="counterfactuals per shape: k consecutive samples share shape label and noise"
    )
    outputs: Annotated[list[Output], Field(min_length=1, max_length=5)] = Field(default_factory=lambda: ["composite"])
    shard_size: Annotated[StrictInt, Field(ge=1)] | None = Field(
        None, description="samples per shard; default CGN_BATCH_SHARD_SIZE"
    )
    format: Literal["npz", "wds"] = Field(
        "npz", description="npz: uint8 NCHW arrays + labels; wds: WebDataset tar of PNG + JSON per sample"
    )
    truncation: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None, description="BigGAN truncation (ImageNet models); default: the model's"
    )


_lock = threading.Lock()


def get_queue(request: Request) -> BatchQueue:
    """One Redis client per app, made on first use (the API starts even when Redis is not up yet)."""
    state = request.app.state
    with _lock:
        if getattr(state, "batch_queue", None) is None:
            settings = state.services.settings
            state.batch_queue = BatchQueue.from_url(settings.redis_url, QueueConfig.from_settings(settings))
    return state.batch_queue


@contextmanager
def broker() -> Iterator[None]:
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Overloaded(f"the batch queue (Redis) is unavailable: {exc}", retry_after=5) from exc


def _resolve_explicit(manifest, rows: list[list[Any]]) -> np.ndarray:
    cache: dict[tuple[int, Any], int] = {}
    out = np.empty((len(rows), 3), dtype=np.int64)
    for i, row in enumerate(rows):
        for m, value in enumerate(row):
            key = (m, value)
            if key not in cache:
                try:
                    cache[key] = fixed_label(manifest, MECHANISMS[m], value)
                except APIError as exc:
                    exc.message = f"labels[{i}][{m}] ({MECHANISMS[m]}): {exc.message}"
                    exc.field = f"labels.{i}.{m}"
                    raise
            out[i, m] = cache[key]
    return out


def _spec(req: BatchRequest, services: Services) -> tuple[BatchSpec, np.ndarray | None]:
    settings = services.settings
    name = req.model or settings.default_model
    manifest = manifest_of(services, name)
    check_truncation(manifest, req.truncation)
    explicit = _resolve_explicit(manifest, req.labels) if req.labels is not None else None
    n = req.n
    if explicit is not None:
        if n is not None and n != len(explicit):
            raise InvalidInput(f"n: {n} does not match the {len(explicit)} rows of labels", "n")
        n = len(explicit)
    if n is None:
        raise InvalidInput("n: required (or give an explicit labels list)", "n")
    limit = settings.batch_max_n
    if n > limit:
        raise InvalidInput(f"n: at most {limit} samples per batch job, got {n}", "n", allowed=f"1..{limit}")
    shard_size = req.shard_size or settings.batch_shard_size
    shards = -(-n // shard_size)
    if shards > settings.batch_max_shards:
        least = -(-n // settings.batch_max_shards)
        raise InvalidInput(
            f"shard_size: {n} samples in shards of {shard_size} make {shards} shards; at most "
            f"{settings.batch_max_shards} are allowed, so use shard_size >= {least}",
            "shard_size",
            allowed=f"{least}..{n}",
        )
    given = {"shape": req.shape, "texture": req.texture, "background": req.background}
    fixed = tuple(fixed_label(manifest, m, given[m]) for m in MECHANISMS)
    spec = BatchSpec(
        model=name,
        n=n,
        seed=req.seed,
        policy=req.policy,
        fixed=fixed,
        cfs_per_shape=req.cfs_per_shape,
        outputs=tuple(req.outputs),
        shard_size=shard_size,
        format=req.format,
        truncation=req.truncation,
        explicit=explicit is not None,
        results=resolve_url(settings.results_dir),
        vocabulary={m: list(manifest.vocabulary[m]) for m in MECHANISMS},
    )
    return spec, explicit


def _view(status: dict[str, Any], full: bool = True) -> dict[str, Any]:
    spec: BatchSpec = status["spec"]
    job_id = status["id"]
    out = {
        "id": job_id,
        "state": status["state"],
        "model": spec.model,
        "n": status["n"],
        "done": status["done"],
        "failed": status["failed"],
        "progress": round(status["done"] / status["n"], 6),
        "format": spec.format,
        "shard_size": spec.shard_size,
        "num_shards": status["num_shards"],
        "done_shards": len(status["done_shards"]),
        "created_at": status["created_at"],
        "started_at": status["started_at"],
        "finished_at": status["finished_at"],
        "expires_at": status["expires_at"],
        "url": f"/batches/{job_id}",
    }
    if not full:
        return out
    shards = []
    for k in status["done_shards"]:
        start, stop = spec.chunk_range(k)
        shards.append({"index": k, "start": start, "stop": stop, "samples": stop - start, "name": spec.shard_name(k)})
        shards[-1]["url"] = f"/batches/{job_id}/shards/{k}"
    out.update(
        shards=shards,
        failed_shards=status["failed_shards"],
        errors=status["errors"],
        labels_url=f"/batches/{job_id}/labels.csv",
        results=f"{spec.results}/{job_id}",
        spec={
            "seed": spec.seed,
            "policy": spec.policy,
            "fixed": dict(zip(MECHANISMS, spec.fixed, strict=True)),
            "explicit_labels": spec.explicit,
            "cfs_per_shape": spec.cfs_per_shape,
            "outputs": list(spec.outputs),
            "truncation": spec.truncation,
        },
    )
    return out


def _status(queue: BatchQueue, job_id: str) -> dict[str, Any]:
    with broker():
        status = queue.status(job_id)
    if status is None:
        raise NotFound(f"job_id: no batch job {job_id!r} (unknown, or expired and cleaned up)", "job_id")
    return status


@router.post(
    "",
    status_code=202,
    summary="Submit a batch job; poll GET /batches/{id} until state is completed",
    response_model=BatchJob,
    response_model_exclude_unset=True,
    responses={
        202: {"description": "accepted; the body is the job's status"},
        404: {"description": "unknown or not installed model"},
        422: {"description": "bad input, e.g. n above the limit or an unknown class name"},
        503: {"description": "the queue is full or Redis is unavailable; retry after Retry-After seconds"},
    },
)
def submit(
    req: BatchRequest,
    request: Request,
    response: Response,
    services: Services = Depends(get_services),
    idempotency_key: Annotated[str | None, Header(max_length=200, description="retry-safe submit")] = None,
):
    queue = get_queue(request)
    spec, explicit = _spec(req, services)
    with broker():
        try:
            job_id = queue.submit(spec, explicit, idempotency_key)
        except QueueFull as exc:
            raise Overloaded(f"{exc}; retry later", retry_after=max(1, services.settings.retry_after_s) * 10) from exc
        ResultStore(spec.results).put(f"{job_id}/job.json", spec.to_json().encode())
    response.headers["Location"] = f"/batches/{job_id}"
    return _view(_status(queue, job_id))


@router.get("", summary="Batch jobs, newest first", response_model=BatchJobList, response_model_exclude_unset=True)
def list_jobs(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
):
    queue = get_queue(request)
    with broker():
        cleanup.sweep(queue)
        ids = queue.list_jobs(offset, limit)
        total = queue.count()
        jobs = [s for s in (queue.status(j) for j in ids) if s is not None]
    return {"jobs": [_view(s, full=False) for s in jobs], "total": total, "offset": offset, "limit": limit}


@router.get("/workers", summary="Batch workers: heartbeat, state and per-worker metrics", response_model=WorkerList)
def workers(request: Request):
    queue = get_queue(request)
    with broker():
        return {"workers": queue.workers(), "queued_samples": queue.queued_samples()}


@router.get(
    "/{job_id}",
    summary="State, progress (samples done of n), shards and errors of a job",
    response_model=BatchJob,
    response_model_exclude_unset=True,
    responses={404: {"description": "unknown or expired job"}},
)
def status(job_id: str, request: Request):
    return _view(_status(get_queue(request), job_id))


@router.get(
    "/{job_id}/shards/{k}",
    summary="Download shard k (npz, or a WebDataset tar)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}, "application/x-tar": {}}},
        404: {"description": "unknown job or shard index"},
        409: {"description": "the shard is not written yet"},
    },
)
def shard(job_id: str, k: int, request: Request):
    status = _status(get_queue(request), job_id)
    spec: BatchSpec = status["spec"]
    if not 0 <= k < status["num_shards"]:
        raise NotFound(f"k: shard index must be in [0, {status['num_shards'] - 1}], got {k}", "k")
    if k not in status["done_shards"]:
        raise APIError(
            f"k: shard {k} is not written yet ({len(status['done_shards'])} of {status['num_shards']} done, "
            f"job {status['state']})",
            "k",
            status=409,
        )
    store = ResultStore(spec.results)
    relpath = f"{job_id}/{spec.shard_name(k)}"
    headers = {"Content-Disposition": f'attachment; filename="{spec.shard_name(k)}"'}
    try:
        headers["Content-Length"] = str(store.size(relpath))
    except FileNotFoundError:
        raise NotFound(f"k: shard {k} of job {job_id} is gone from the result store (expired?)", "k") from None
    return StreamingResponse(store.iter_bytes(relpath), media_type=MEDIA[spec.format], headers=headers)


@router.get(
    "/{job_id}/labels.csv",
    summary="The labels table: key, shape/texture/background ids and names, seeds per sample",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, 404: {"description": "unknown or expired job"}},
)
def labels(job_id: str, request: Request):
    queue = get_queue(request)
    with broker():
        got = queue.spec(job_id)
    if got is None:
        raise NotFound(f"job_id: no batch job {job_id!r} (unknown, or expired and cleaned up)", "job_id")
    spec, explicit = got
    headers = {"Content-Disposition": f'attachment; filename="{job_id}-labels.csv"'}
    return StreamingResponse(csv_rows(spec, explicit), media_type="text/csv", headers=headers)


@router.delete(
    "/{job_id}",
    summary="Cancel a job (shards written so far stay until expiry); purge=true deletes all",
    response_model=BatchJob | DeletedJob,
    response_model_exclude_unset=True,
    responses={404: {"description": "unknown or expired job"}},
)
def cancel(job_id: str, request: Request, purge: bool = False):
    queue = get_queue(request)
    status = _status(queue, job_id)
    with broker():
        if purge:
            spec: BatchSpec = status["spec"]
            queue.forget(job_id)
            ResultStore(spec.results).remove_tree(job_id)
            return {"id": job_id, "state": "deleted", "deleted_at": time.time()}
        queue.cancel(job_id)
    return _view(_status(queue, job_id))
