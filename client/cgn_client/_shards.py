"""Batch-job shards: the files, read with numpy and PIL alone (no HTTP, no server code), and a torch Dataset."""

import io
import json
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MECHANISMS = ("shape", "texture", "background")


@dataclass(frozen=True)
class Shard:
    index: int
    name: str
    format: str  # "npz" or "wds"
    content: bytes

    def arrays(self) -> dict[str, np.ndarray]:
        """keys (n,), labels (n, 3), seeds (n, 3) and one uint8 NCHW array per output."""
        return read_shard(self.content, self.format)


def shard_name(k: int, fmt: str) -> str:
    """The file name of shard k in format fmt ("npz" or "wds")."""
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
