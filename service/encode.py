"""Bytes on the wire: images (png, jpeg, npy) and the compact binary payload of POST /samples.

Samples payload (docs/service.md; decoded by cgn_client without server code), little-endian:
    b"CGNS" | uint16 version (=1) | uint32 header length H | H bytes of UTF-8 JSON header | arrays
The header is {"arrays": [{"name", "dtype", "shape", "offset", "nbytes"}], "meta": {...}}; offsets
count from the first byte after the header. Arrays: one uint8 NCHW array per output ("composite", ...),
"labels" int64 (n, 3) and "seeds" int64 (n, 3), columns shape/texture/background.
"""

import io
import json
import struct

import numpy as np
from PIL import Image

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "npy": "application/x-npy"}
SAMPLES_MEDIA_TYPE = "application/x-cgn-samples"
MAGIC = b"CGNS"
VERSION = 1
JPEG_QUALITY = 95


def encode_image(chw: np.ndarray, fmt: str) -> bytes:
    """One uint8 (C, H, W) image; 1-channel images become grey PNG/JPEG."""
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(chw), allow_pickle=False)
        return buf.getvalue()
    img = Image.fromarray(chw[0], "L") if chw.shape[0] == 1 else Image.fromarray(chw.transpose(1, 2, 0), "RGB")
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, "PNG")
    else:
        img.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0)  # 4:4:4: tiny images keep their colours
    return buf.getvalue()


def encode_samples(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    specs, offset = [], 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        dtype = arr.dtype.newbyteorder("<").str
        specs.append({"name": name, "dtype": dtype, "shape": list(arr.shape), "offset": offset, "nbytes": arr.nbytes})
        offset += arr.nbytes
    header = json.dumps({"arrays": specs, "meta": meta}, separators=(",", ":")).encode()
    parts = [MAGIC, struct.pack("<HI", VERSION, len(header)), header]
    for arr, spec in zip(arrays.values(), specs, strict=True):
        parts.append(np.ascontiguousarray(arr, dtype=np.dtype(spec["dtype"])).tobytes())
    return b"".join(parts)
