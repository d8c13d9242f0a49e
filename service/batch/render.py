"""One chunk of a job -> one shard's bytes. The worker and any reference run share this code path."""

from collections.abc import Callable

import numpy as np

from cgn.mechanisms import CounterfactualModel
from cgn.pipeline import generate
from service.batch.shards import ShardData, write_npz, write_wds
from service.batch.spec import BatchSpec, sample_key, samples


def shard_data(
    model: CounterfactualModel,
    spec: BatchSpec,
    start: int,
    stop: int,
    explicit: np.ndarray | None = None,
    batch_size: int = 256,
    between: Callable[[], None] | None = None,
) -> ShardData:
    """Samples [start, stop) in forward passes of `batch_size`; `between` runs after each pass
    (the worker checks for cancellation and shutdown there, and may raise to stop)."""
    p = samples(spec, start, stop, explicit)
    parts: dict[str, list[np.ndarray]] = {o: [] for o in spec.outputs}
    for b in range(0, len(p.keys), batch_size):
        rows = slice(b, b + batch_size)
        out = generate(model, p.labels[rows], p.seeds[rows], spec.outputs, truncation=spec.truncation)
        for name in spec.outputs:
            parts[name].append(out[name])
        if between is not None:
            between()
    names = [tuple(spec.name(m, int(y)) for m, y in enumerate(row)) for row in p.labels.tolist()]
    images = {k: np.concatenate(v) for k, v in parts.items()}
    return ShardData(p.keys, p.labels, p.seeds, images, names)


def encode(spec: BatchSpec, shard: ShardData) -> bytes:
    return write_npz(shard) if spec.format == "npz" else write_wds(shard, sample_key)


def render(model: CounterfactualModel, spec: BatchSpec, k: int, explicit: np.ndarray | None = None, **kw) -> bytes:
    start, stop = spec.chunk_range(k)
    return encode(spec, shard_data(model, spec, start, stop, explicit, **kw))
