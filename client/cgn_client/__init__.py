"""cgn-service client SDK: counterfactual images, single mechanisms and training batches over HTTP.

from cgn_client import CGNClient
client = CGNClient("http://127.0.0.1:8000")
cf = client.counterfactual(shape="cow", texture="elephant", bg="moon", seed=1)
cf.image.save("cf.png")
batch = client.sample_batch(256, seed=0)   # uint8 NCHW images + (n, 3) labels
"""

from cgn_client._client import AsyncCGNClient, Call, CGNClient
from cgn_client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
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
from cgn_client._types import Counterfactual, SampleBatch, asset

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncCGNClient",
    "AuthenticationError",
    "BadRequestError",
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
    "SampleBatch",
    "UnknownNameError",
    "asset",
    "decode_samples",
]
