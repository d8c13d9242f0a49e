"""Decoder of the POST /samples payload (format in docs/service.md); independent of any server code."""

import json
import struct
from typing import Any

import numpy as np

MAGIC = b"CGNS"
SUPPORTED_VERSIONS = (1,)
MEDIA_TYPE = "application/x-cgn-samples"


class PayloadError(ValueError):
    pass


def decode_samples(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """-> (arrays by name, meta). Arrays are read-only views into `data` (no copy)."""
    if len(data) < 10 or data[:4] != MAGIC:
        raise PayloadError("not a CGNS samples payload")
    version, header_len = struct.unpack_from("<HI", data, 4)
    if version not in SUPPORTED_VERSIONS:
        raise PayloadError(f"samples payload version {version} is not supported (client knows {SUPPORTED_VERSIONS})")
    start = 10 + header_len
    if len(data) < start:
        raise PayloadError("samples payload is truncated (header)")
    header = json.loads(data[10:start].decode())
    arrays = {}
    body = memoryview(data)[start:]
    for spec in header["arrays"]:
        end = spec["offset"] + spec["nbytes"]
        if end > len(body):
            raise PayloadError(f"samples payload is truncated (array {spec['name']})")
        arr = np.frombuffer(body[spec["offset"] : end], dtype=np.dtype(spec["dtype"]))
        arrays[spec["name"]] = arr.reshape(spec["shape"])
    return arrays, header.get("meta", {})
