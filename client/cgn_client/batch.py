"""Batch jobs from the SDK: submit, follow, download shards, and read them as a torch Dataset.

The job API is `client.batches` (`client.batches.submit(...)`, `.get(id)`, `.list()`) and
`client.submit_batch(...)`; this module keeps the functional forms and the shard readers:
`batch_job(client, id)`, `list_batches(client)`, `submit_batch(client, ...)`, `asubmit_batch(client, ...)`,
`read_shard`, `shard_dataset`. A `client` here is a CGNClient/AsyncCGNClient, or an httpx client whose
base_url points at the service (wrapped in a CGNClient). Shard readers are independent of server code.
"""

from typing import Any

import httpx

from cgn_client._client import AsyncCGNClient, CGNClient
from cgn_client._errors import BatchJobError
from cgn_client._shards import MECHANISMS, Shard, read_shard, shard_dataset, shard_name
from cgn_client.resources.batches import TERMINAL, AsyncBatchJob, BatchJob

__all__ = [
    "MECHANISMS",
    "TERMINAL",
    "AsyncBatchJob",
    "BatchJob",
    "BatchJobError",
    "Shard",
    "asubmit_batch",
    "batch_job",
    "list_batches",
    "read_shard",
    "shard_dataset",
    "shard_name",
    "submit_batch",
]


def _client(client: Any) -> Any:
    if isinstance(client, httpx.Client):
        return CGNClient(str(client.base_url), http_client=client)
    if isinstance(client, httpx.AsyncClient):
        return AsyncCGNClient(str(client.base_url), http_client=client)
    return client


def submit_batch(client: Any, n: int | None = None, *, retries: int | None = None, **options: Any) -> BatchJob:
    """POST /batches -> BatchJob (client.batches.submit)."""
    return _client(client).batches.submit(n, retries=retries, **options)


async def asubmit_batch(
    client: Any, n: int | None = None, *, retries: int | None = None, **options: Any
) -> AsyncBatchJob:
    return await _client(client).batches.submit(n, retries=retries, **options)


def batch_job(client: Any, job_id: str) -> BatchJob:
    """Reattach to a job by id (from another process, or after a restart): client.batches.get(job_id)."""
    return _client(client).batches.get(job_id)


def list_batches(client: Any, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Jobs, newest first: client.batches.list(limit, offset)."""
    return _client(client).batches.list(limit, offset)
