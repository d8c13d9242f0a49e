"""Batch jobs: submit (202 + id), status, shard and labels downloads, cancel, list. See docs/batch.md."""

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from service import openapi
from service.batch import cleanup
from service.batch.body import InvalidBody, parse_batch_request
from service.batch.jobs import broker, fingerprint, idempotency_scope, job_plan, job_status, job_view
from service.batch.labels import csv_rows
from service.batch.queue import BatchQueue, IdempotencyConflict, QueueFull
from service.batch.spec import BatchSpec
from service.batch.store import ResultStore
from service.deps import QueueDep, ServicesDep, require_api_key
from service.problems import Conflict, NotFound, Overloaded
from service.responses import json_view
from service.schemas import BatchJob, BatchJobList, BatchRequest, DeletedJob, WorkerList
from service.services import Services

router = APIRouter(prefix="/batches", tags=["batches"], dependencies=[Depends(require_api_key)])
GONE = "unknown or expired job"  # the 404 of every route of one job

MEDIA = {"npz": "application/octet-stream", "wds": "application/x-tar"}


@router.post(
    "",
    status_code=202,
    summary="Submit a batch job; poll GET /batches/{id} until state is completed",
    response_model=BatchJob,
    response_model_exclude_unset=True,
    responses={
        202: {"description": "accepted; the body is the job's status"},
        404: {"description": "unknown or not installed model"},
        409: {"description": "the Idempotency-Key was used with a different request body"},
        422: {"description": "bad input, e.g. n above the limit or an unknown class name"},
        503: {"description": "the queue is full or Redis is unavailable; retry after Retry-After seconds"},
    },
    # the body is read raw and parsed off the event loop (a label table can be megabytes): declared here
    openapi_extra={"requestBody": openapi.json_body(BatchRequest)},
)
async def submit(
    request: Request,
    response: Response,
    services: ServicesDep,
    queue: QueueDep,
    api_key: str | None = Depends(require_api_key),
    idempotency_key: Annotated[
        str | None,
        Header(max_length=200, description="retry-safe submit: the same key and body return the first job"),
    ] = None,
):
    body = await request.body()
    job_id, view = await asyncio.to_thread(_submit, body, services, queue, api_key, idempotency_key)
    response.headers["Location"] = f"/batches/{job_id}"
    return view


def _submit(
    body: bytes, services: Services, queue: BatchQueue, api_key: str | None, idempotency_key: str | None
) -> tuple[str, dict[str, Any]]:
    """Parse, plan and queue a job (in a worker thread: parsing a large label table takes a while)."""
    try:
        req, labels = parse_batch_request(body)
    except InvalidBody as exc:  # answered like every route's invalid body
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors]) from None
    spec, explicit = job_plan(services, **(req.plan_args() | {"labels": labels}))
    wait = services.settings.redis_retry_after_s
    with broker(wait):
        try:
            job_id = queue.submit(
                spec,
                explicit,
                idempotency_key,
                scope=idempotency_scope(api_key),
                fingerprint=fingerprint(spec, explicit),
            )
        except QueueFull as exc:
            raise Overloaded(f"{exc}; retry later", retry_after=services.settings.batch_full_retry_after_s) from exc
        except IdempotencyConflict as exc:
            raise Conflict(
                f"Idempotency-Key: this key was used with a different request body (job {exc.job_id}); "
                "send a new key for a new job",
                "Idempotency-Key",
                job_id=exc.job_id,
            ) from exc
        ResultStore(spec.results).put(f"{job_id}/job.json", spec.to_json().encode())
    return job_id, job_view(job_status(queue, job_id, wait))


@router.get("", summary="Batch jobs, newest first", response_model=BatchJobList, response_model_exclude_unset=True)
def list_jobs(
    queue: QueueDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
):
    with broker(services.settings.redis_retry_after_s):
        cleanup.sweep(queue)
        ids = queue.list_jobs(offset, limit)
        total = queue.count()
        jobs = [s for s in (queue.status(j) for j in ids) if s is not None]
    return {"jobs": [job_view(s, full=False) for s in jobs], "total": total, "offset": offset, "limit": limit}


@router.get("/workers", summary="Batch workers: heartbeat, state and per-worker metrics", response_model=WorkerList)
def workers(queue: QueueDep, services: ServicesDep):
    with broker(services.settings.redis_retry_after_s):
        return {"workers": queue.workers(), "queued_samples": queue.queued_samples()}


@router.get(
    "/{job_id}",
    summary="State, progress (samples done of n), shards and errors of a job",
    **json_view(BatchJob, GONE),
)
def status(job_id: str, queue: QueueDep, services: ServicesDep):
    return job_view(job_status(queue, job_id, services.settings.redis_retry_after_s))


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
def shard(job_id: str, k: int, queue: QueueDep, services: ServicesDep):
    status = job_status(queue, job_id, services.settings.redis_retry_after_s)
    spec: BatchSpec = status["spec"]
    if not 0 <= k < status["num_shards"]:
        raise NotFound(f"k: shard index must be in [0, {status['num_shards'] - 1}], got {k}", "k")
    if k not in status["done_shards"]:
        raise Conflict(
            f"k: shard {k} is not written yet ({len(status['done_shards'])} of {status['num_shards']} done, "
            f"job {status['state']})",
            "k",
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
    responses={200: {"content": {"text/csv": {}}}, 404: {"description": GONE}},
)
def labels(job_id: str, queue: QueueDep, services: ServicesDep):
    with broker(services.settings.redis_retry_after_s):
        got = queue.spec(job_id)
    if got is None:
        raise NotFound(f"job_id: no batch job {job_id!r} (unknown, or expired and cleaned up)", "job_id")
    spec, explicit = got
    headers = {"Content-Disposition": f'attachment; filename="{job_id}-labels.csv"'}
    return StreamingResponse(csv_rows(spec, explicit), media_type="text/csv", headers=headers)


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a job: workers stop taking its chunks; shards written so far stay until expiry",
    **json_view(BatchJob, GONE),
)
def cancel(job_id: str, queue: QueueDep, services: ServicesDep):
    wait = services.settings.redis_retry_after_s
    job_status(queue, job_id, wait)
    with broker(wait):
        queue.cancel(job_id)
    return job_view(job_status(queue, job_id, wait))


@router.delete(
    "/{job_id}",
    summary="Delete a job now: its record, its queued chunks and its files (a running job stops)",
    **json_view(DeletedJob, GONE),
)
def delete(job_id: str, queue: QueueDep, services: ServicesDep):
    wait = services.settings.redis_retry_after_s
    spec: BatchSpec = job_status(queue, job_id, wait)["spec"]
    with broker(wait):
        queue.cancel(job_id)  # workers drop its chunks
        queue.forget(job_id)
        ResultStore(spec.results).remove_tree(job_id)
    return {"id": job_id, "state": "deleted", "deleted_at": time.time()}
