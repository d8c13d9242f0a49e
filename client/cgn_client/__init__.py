"""cgn-service client SDK: counterfactual images, single mechanisms and training batches over HTTP.

from cgn_client import CGNClient
client = CGNClient("http://127.0.0.1:8000")
cf = client.counterfactual(shape="cow", texture="elephant", bg="moon", seed=1)
cf.image.save("cf.png")
batch = client.sample_batch(256, seed=0)   # uint8 NCHW images + (n, 3) labels
job = client.batches.submit(100_000, seed=0)  # a queued batch job; job.wait(), job.dataset()

Layout: _base_client (Call, the sync/async transports), _retry (the retry policy), resources/ (request
builders and the models/assets/batches namespaces), _client (the twins), batch (job helpers, shard readers).
"""

from cgn_client._base_client import Call
from cgn_client._client import AsyncCGNClient, CGNClient
from cgn_client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BatchJobError,
    CGNError,
    ConflictError,
    InternalServerError,
    InvalidRequestError,
    ModelNotInstalledError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    RateLimitError,
    UnknownNameError,
)
from cgn_client._payload import PayloadError, decode_samples
from cgn_client._retry import RetryPolicy, parse_retry_after
from cgn_client._types import Counterfactual, SampleBatch, asset
from cgn_client.resources import AsyncBatchJob, BatchJob

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncBatchJob",
    "AsyncCGNClient",
    "AuthenticationError",
    "BadRequestError",
    "BatchJob",
    "BatchJobError",
    "CGNClient",
    "CGNError",
    "Call",
    "ConflictError",
    "Counterfactual",
    "InternalServerError",
    "InvalidRequestError",
    "ModelNotInstalledError",
    "NotFoundError",
    "OverloadedError",
    "PayloadError",
    "PayloadTooLargeError",
    "RateLimitError",
    "RetryPolicy",
    "SampleBatch",
    "UnknownNameError",
    "asset",
    "decode_samples",
    "parse_retry_after",
]
