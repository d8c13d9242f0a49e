"""Shard files, written byte-for-byte reproducibly: the same samples always give the same bytes.

npz: one array per output (uint8 NCHW) plus keys, labels (n, 3) and seeds (n, 3), uncompressed,
with fixed zip timestamps. wds: a WebDataset tar, per sample `KEY.png` (composite), `KEY.<output>.png`
for other outputs and `KEY.json` (labels, names, seeds), with fixed tar headers.
"""

import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cgn.mechanisms import MECHANISMS

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass
class ShardData:
    """One shard in memory: images per output (uint8 NCHW) and per-sample metadata."""

    keys: np.ndarray  # int64 (n,) sample index in the job
    labels: np.ndarray  # int64 (n, 3)
    seeds: np.ndarray  # int64 (n, 3)
    images: dict[str, np.ndarray]
    names: list[tuple[str, str, str]] | None = None  # class names per sample (wds JSON)

    def __len__(self) -> int:
        return len(self.keys)


def write_npz(shard: ShardData) -> bytes:
    buf = io.BytesIO()
    arrays = {**shard.images, "keys": shard.keys, "labels": shard.labels, "seeds": shard.seeds}
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            with z.open(info, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.ascontiguousarray(arrays[name]), allow_pickle=False)
    return buf.getvalue()


def read_npz(data: bytes) -> ShardData:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    keys, labels, seeds = arrays.pop("keys"), arrays.pop("labels"), arrays.pop("seeds")
    return ShardData(keys, labels, seeds, arrays)


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 CHW -> PNG (grey for one channel). PIL writes no timestamp, so bytes are stable."""
    hwc = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(hwc)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def sample_json(shard: ShardData, i: int, key: str) -> bytes:
    record: dict = {"key": key, "index": int(shard.keys[i])}
    for m, mech in enumerate(MECHANISMS):
        record[mech] = int(shard.labels[i, m])
    if shard.names is not None:
        for m, mech in enumerate(MECHANISMS):
            record[f"{mech}_name"] = shard.names[i][m]
    for m, mech in enumerate(MECHANISMS):
        record[f"{mech}_seed"] = int(shard.seeds[i, m])
    return json.dumps(record, sort_keys=True).encode()


def write_wds(shard: ShardData, key_of) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(len(shard)):
            key = key_of(int(shard.keys[i]))
            files = {}
            for output in sorted(shard.images):
                ext = "png" if output == "composite" else f"{output}.png"
                files[ext] = png_bytes(shard.images[output][i])
            files["json"] = sample_json(shard, i, key)
            for ext, payload in files.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode = len(payload), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def iter_wds(data: bytes) -> Iterator[dict[str, bytes]]:
    """Samples of a WebDataset tar as {"__key__": key, ext: bytes}, in file order."""
    current: dict = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, ext = member.name.partition(".")
            if current and current["__key__"] != key:
                yield current
                current = {}
            current["__key__"] = key
            current[ext] = tar.extractfile(member).read()
    if current:
        yield current


def read_wds(data: bytes) -> ShardData:
    keys, labels, seeds, names = [], [], [], []
    images: dict[str, list[np.ndarray]] = {}
    for sample in iter_wds(data):
        meta = json.loads(sample["json"])
        keys.append(meta["index"])
        labels.append([meta[m] for m in MECHANISMS])
        seeds.append([meta[f"{m}_seed"] for m in MECHANISMS])
        names.append(tuple(meta.get(f"{m}_name", "") for m in MECHANISMS))
        for ext, payload in sample.items():
            if not ext.endswith("png"):
                continue
            output = "composite" if ext == "png" else ext[: -len(".png")]
            arr = np.asarray(Image.open(io.BytesIO(payload)))
            images.setdefault(output, []).append(arr[None] if arr.ndim == 2 else np.transpose(arr, (2, 0, 1)))
    return ShardData(
        np.asarray(keys, dtype=np.int64),
        np.asarray(labels, dtype=np.int64).reshape(-1, 3),
        np.asarray(seeds, dtype=np.int64).reshape(-1, 3),
        {k: np.stack(v) for k, v in images.items()},
        names,
    )


def read_shard(data: bytes, fmt: str) -> ShardData:
    return read_npz(data) if fmt == "npz" else read_wds(data)
