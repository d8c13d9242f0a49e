"""Batch jobs as the API offers them: a request's spec, a job's public view, Redis outages as problems.

No HTTP here; service/routes/batches.py parses requests and sends what these return.
"""

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import numpy as np
import redis

from cgn.mechanisms import MECHANISMS
from model_store import Manifest
from service.batch.queue import BatchQueue
from service.batch.spec import BatchSpec
from service.batch.store import resolve_url
from service.plan import check_truncation, manifest_of
from service.problems import InvalidInput, NotFound, Overloaded, Problem
from service.resolve import fixed_label
from service.services import Services


@contextmanager
def broker(retry_after: int) -> Iterator[None]:
    """Redis down or slow: a 503-kind problem with Retry-After, never a 500."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Overloaded(f"the batch queue (Redis) is unavailable: {exc}", retry_after=retry_after) from exc


def job_status(queue: BatchQueue, job_id: str, retry_after: int) -> dict[str, Any]:
    with broker(retry_after):
        status = queue.status(job_id)
    if status is None:
        raise NotFound(f"job_id: no batch job {job_id!r} (unknown, or expired and cleaned up)", "job_id")
    return status


EXPLICIT_SLICE = 16_384  # rows resolved per step: no step holds the GIL for long


def explicit_labels(manifest: Manifest, rows: list[list[Any]] | np.ndarray) -> np.ndarray:
    """Each row's three labels resolved to ids; a bad one names its row and column (the first in row order).

    Each distinct value of a column is resolved once; the rows are then mapped column by column, in slices."""
    out = np.empty((len(rows), 3), dtype=np.int64)
    ids: list[dict[Any, int]] = [{}, {}, {}]
    for start in range(0, len(rows), EXPLICIT_SLICE):
        part = rows[start : start + EXPLICIT_SLICE]
        bad: list[tuple[int, int, Problem]] = []
        columns = []
        for m, known in enumerate(ids):
            column = part[:, m].tolist() if isinstance(part, np.ndarray) else [row[m] for row in part]
            columns.append(column)
            for value in set(column) - known.keys():  # 3 and "3" are different keys, as they should be
                try:
                    known[value] = fixed_label(manifest, MECHANISMS[m], value)
                except Problem as exc:
                    bad.append((start + column.index(value), m, exc))
        if bad:
            i, m, exc = min(bad, key=lambda b: b[:2])
            exc.message = f"labels[{i}][{m}] ({MECHANISMS[m]}): {exc.message}"
            exc.field = f"labels.{i}.{m}"
            raise exc
        for m, column in enumerate(columns):
            out[start : start + len(part), m] = np.fromiter(map(ids[m].__getitem__, column), np.int64, len(column))
    return out


def fingerprint(spec: BatchSpec, explicit: np.ndarray | None) -> str:
    """sha256 of what a request asks for: its resolved spec (where results go aside) and its label table.
    Requests that differ only in how they name a class (3 or "three") ask for the same job."""
    digest = hashlib.sha256(
        json.dumps({k: v for k, v in asdict(spec).items() if k != "results"}, sort_keys=True).encode()
    )
    if explicit is not None:
        digest.update(np.ascontiguousarray(explicit, dtype="<i8").tobytes())
    return digest.hexdigest()


def idempotency_scope(api_key: str | None) -> str:
    """Idempotency keys live per API key (a hash of it, never the key); without configured keys, one space."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32] if api_key else "open"


def job_plan(
    services: Services,
    *,
    model: str | None,
    n: int | None,
    seed: int,
    policy: str,
    fixed: dict[str, int | str | None],
    labels: list[list[int | str]] | np.ndarray | None,
    cfs_per_shape: int,
    outputs: list[str],
    shard_size: int | None,
    format: str,
    truncation: float | None,
) -> tuple[BatchSpec, np.ndarray | None]:
    """The job's spec (labels resolved, limits checked) and its explicit label table, if it has one."""
    settings = services.settings
    name = model or settings.default_model
    manifest = manifest_of(services, name)
    check_truncation(manifest, truncation)
    explicit = explicit_labels(manifest, labels) if labels is not None else None
    if explicit is not None:
        if n is not None and n != len(explicit):
            raise InvalidInput(f"n: {n} does not match the {len(explicit)} rows of labels", "n")
        n = len(explicit)
    if n is None:
        raise InvalidInput("n: required (or give an explicit labels list)", "n")
    limit = settings.batch_max_n
    if n > limit:
        raise InvalidInput(f"n: at most {limit} samples per batch job, got {n}", "n", allowed=f"1..{limit}")
    shard_size = shard_size or settings.batch_shard_size
    shards = -(-n // shard_size)
    if shards > settings.batch_max_shards:
        least = -(-n // settings.batch_max_shards)
        raise InvalidInput(
            f"shard_size: {n} samples in shards of {shard_size} make {shards} shards; at most "
            f"{settings.batch_max_shards} are allowed, so use shard_size >= {least}",
            "shard_size",
            allowed=f"{least}..{n}",
        )
    fixed_ids = tuple(fixed_label(manifest, m, fixed.get(m)) for m in MECHANISMS)
    spec = BatchSpec(
        model=name,
        n=n,
        seed=seed,
        policy=policy,
        fixed=fixed_ids,
        cfs_per_shape=cfs_per_shape,
        outputs=tuple(outputs),
        shard_size=shard_size,
        format=format,
        truncation=truncation,
        explicit=explicit is not None,
        results=resolve_url(settings.results_dir),
        vocabulary={m: list(manifest.vocabulary[m]) for m in MECHANISMS},
    )
    return spec, explicit


def job_view(status: dict[str, Any], full: bool = True) -> dict[str, Any]:
    """A job's status as the API shows it; the list view leaves out shards, errors and spec."""
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
