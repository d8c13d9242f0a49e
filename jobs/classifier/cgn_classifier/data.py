"""The job's two kinds of data: a real MNIST-variant split from a local .npz, and counterfactuals from
cgn-service through the client SDK (a prefetching stream of /samples, or a batch job's shards).

All images are uint8 NCHW (3, 32, 32); labels are (N, 3) in shape/texture/background order.
"""

import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
REAL_KEYS = ("images", "labels", "object_ids", "background_ids")


@dataclass
class Split:
    """A real split. `factors` (N, 3): digit, object color/texture id, background color/texture id."""

    images: np.ndarray
    factors: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @property
    def digits(self) -> np.ndarray:
        return self.factors[:, 0]

    def training_labels(self) -> np.ndarray:
        """Every head of the ensemble learns the digit from a real image (Figure 1)."""
        return np.repeat(self.digits[:, None], 3, axis=1)

    def take(self, limit: int | None) -> "Split":
        """The first `limit` images (the MNIST training set is in random order)."""
        return self if limit is None or limit >= len(self) else Split(self.images[:limit], self.factors[:limit])

    def spread(self, limit: int | None) -> "Split":
        """`limit` evenly spaced images: the MNIST test set's first half is easier than its second."""
        if limit is None or limit >= len(self):
            return self
        idx = np.linspace(0, len(self) - 1, limit).round().astype(np.int64)
        return Split(self.images[idx], self.factors[idx])


@dataclass
class RealData:
    variant: str
    train: Split
    test: Split
    meta: dict[str, Any] = field(default_factory=dict)


def save_real(path: str | Path, variant: str, splits: dict[str, dict[str, np.ndarray]], meta: dict) -> Path:
    """Write the .npz the job reads: <split>_images uint8 (N, 3, 32, 32), <split>_labels/_object_ids/_background_ids."""
    arrays: dict[str, np.ndarray] = {"variant": np.array(variant), "meta": np.array(json.dumps(meta))}
    for split, values in splits.items():
        if values["images"].dtype != np.uint8 or values["images"].ndim != 4:
            raise ValueError(f"{split}_images: expected uint8 (N, 3, H, W), got {values['images'].dtype}")
        for key in REAL_KEYS:
            arrays[f"{split}_{key}"] = np.asarray(values[key], dtype=np.uint8 if key == "images" else np.int64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    tmp.replace(path)
    return path


def load_real(path: str | Path) -> RealData:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no real-data file (write one with scripts/export_mnist_variant.py)")
    with np.load(path, allow_pickle=False) as z:
        missing = [f"{s}_{k}" for s in SPLITS for k in REAL_KEYS if f"{s}_{k}" not in z.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {', '.join(missing)}")
        splits = {s: Split(z[f"{s}_images"], np.stack([z[f"{s}_{k}"] for k in REAL_KEYS[1:]], axis=1)) for s in SPLITS}
        variant = str(z["variant"]) if "variant" in z.files else path.stem
        meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
    return RealData(variant, splits["train"], splits["test"], meta)


@dataclass
class Counterfactuals:
    """Generated samples: uint8 images, labels given to each mechanism, and where they came from."""

    images: np.ndarray
    labels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as f:
            np.savez(f, images=self.images, labels=self.labels, meta=np.array(json.dumps(self.meta)))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Counterfactuals":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["images"], z["labels"].astype(np.int64), json.loads(str(z["meta"])))


@dataclass(frozen=True)
class Request:
    """What to ask the service for: n samples of stream `seed` under a label policy."""

    n: int
    model: str | None = None
    seed: int = 0
    policy: str = "uniform"  # "uniform": counterfactual labels; "same": one label for all three mechanisms
    cfs_per_shape: int = 1

    def key(self) -> dict[str, Any]:
        return {"n": self.n, "model": self.model, "seed": self.seed, "policy": self.policy, "cfs": self.cfs_per_shape}


def stream(client: Any, req: Request, batch_size: int = 256, prefetch: int = 2) -> Counterfactuals:
    """Pull samples 0..n-1 of the stream with `prefetch` /samples requests in flight (CGNClient.batches)."""
    batch_size = max(1, min(batch_size, req.n))
    t0 = time.perf_counter()
    images, labels, model = [], [], req.model
    batches = client.batches(
        batch_size,
        num_batches=math.ceil(req.n / batch_size),
        prefetch=prefetch,
        seed=req.seed,
        model=req.model,
        policy=req.policy,
        cfs_per_shape=req.cfs_per_shape,
    )
    for batch in batches:
        images.append(np.asarray(batch.images))
        labels.append(np.asarray(batch.labels))
        model = batch.model or model
    seconds = time.perf_counter() - t0
    cf = Counterfactuals(np.concatenate(images)[: req.n], np.concatenate(labels)[: req.n].astype(np.int64))
    cf.meta = _meta("stream", client, req, model, seconds, len(cf)) | {"batch_size": batch_size, "prefetch": prefetch}
    return cf


def from_shards(shards: Iterable[Any], output: str = "composite") -> tuple[np.ndarray, np.ndarray]:
    """Shards (cgn_client.batch.Shard, or dicts of arrays) in any order -> images and labels ordered by sample key."""
    keys, images, labels = [], [], []
    for shard in shards:
        arrays = shard.arrays() if hasattr(shard, "arrays") else shard
        if output not in arrays:
            raise ValueError(f"shard has no {output!r} output (it has {', '.join(sorted(arrays))})")
        keys.append(arrays["keys"])
        images.append(arrays[output])
        labels.append(arrays["labels"])
    if not keys:
        raise ValueError("no shards")
    order = np.argsort(np.concatenate(keys), kind="stable")
    return np.concatenate(images)[order], np.concatenate(labels)[order].astype(np.int64)


def from_batch_job(client: Any, req: Request | None = None, job_id: str | None = None, shard_size: int = 1000):
    """A batch job's shards: the job `job_id` (waited for), or a new job submitted for `req`."""
    from cgn_client.batch import batch_job

    t0 = time.perf_counter()
    if job_id is None:
        if req is None:
            raise ValueError("from_batch_job: give a request or a job id")
        job = client.submit_batch(
            req.n,
            model=req.model,
            seed=req.seed,
            policy=req.policy,
            cfs_per_shape=req.cfs_per_shape,
            shard_size=min(shard_size, req.n),
            format="npz",
        )
    else:
        job = batch_job(client, job_id)
    status = job.wait()
    images, labels = from_shards(job.iter_shards())
    if len(images) != status["n"]:
        raise ValueError(f"batch job {job.id}: {len(images)} samples in its shards, status says {status['n']}")
    info, spec = job.info, job.info.get("spec", {})
    req = Request(
        info.get("n", len(images)),
        info.get("model"),
        spec.get("seed", 0),
        spec.get("policy", "uniform"),
        spec.get("cfs_per_shape", 1),
    )
    cf = Counterfactuals(images, labels)
    cf.meta = _meta("batch", client, req, info.get("model"), time.perf_counter() - t0, len(cf)) | {"job_id": job.id}
    return cf


def from_shard_files(paths: Sequence[str | Path]) -> Counterfactuals:
    """Shards downloaded earlier (BatchJob.download): npz or WebDataset tar."""
    from cgn_client.batch import read_shard

    files = [Path(p) for p in paths]
    shards = [read_shard(p.read_bytes(), "npz" if p.suffix == ".npz" else "wds") for p in files]
    images, labels = from_shards(shards)
    meta = {"source": "shard-files", "files": [str(p) for p in files], "n": len(images)}
    return Counterfactuals(images, labels, meta)


def _meta(source: str, client: Any, req: Request, model: str | None, seconds: float, n: int) -> dict[str, Any]:
    return {
        "source": source,
        "url": getattr(client, "base_url", None),
        **req.key(),
        "model": model,
        "n": n,
        "seconds": round(seconds, 3),
        "images_per_s": round(n / seconds, 1) if seconds > 0 else None,
    }
