"""Labels and seeds of sample i of a job, derived from (job seed, i) alone.

Any worker, any chunking, any batch size: sample i always gets the same labels and seeds, so
it always gets the same bytes. SplitMix64 over (seed, index, stream) gives independent streams.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np

from cgn.mechanisms import MECHANISMS
from cgn.noise import SEED_MAX, check_seed

MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
LabelPolicy = Literal["fixed", "uniform", "same"]


def splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & MASK64
        return z ^ (z >> np.uint64(31))


def derive(seed: int, index: np.ndarray, stream: int) -> np.ndarray:
    """A 63-bit value per index, independent across streams."""
    with np.errstate(over="ignore"):
        x = splitmix64(np.uint64(seed) ^ splitmix64(np.uint64(stream) * np.uint64(0x632BE59BD9B4E019)))
        return (splitmix64(x ^ index.astype(np.uint64)) >> np.uint64(1)).astype(np.int64)


@dataclass(frozen=True)
class SamplePlan:
    """labels and seeds: int64 arrays of shape (n, 3), columns in MECHANISMS order."""

    labels: np.ndarray
    seeds: np.ndarray
    keys: np.ndarray  # sample index within the job


def plan(
    seed: int,
    start: int,
    stop: int,
    num_classes: int | tuple[int, int, int],
    policy: LabelPolicy = "uniform",
    fixed: tuple[int | None, int | None, int | None] = (None, None, None),
    cfs_per_shape: int = 1,
) -> SamplePlan:
    """Samples start..stop-1 of a job.

    policy "uniform": each mechanism's label drawn uniformly and independently (counterfactuals);
    "same": one label drawn per sample and given to all three mechanisms (non-counterfactual);
    a mechanism listed in `fixed` keeps its label. With cfs_per_shape=k, samples i and j share
    shape label and shape noise when i // k == j // k: k counterfactuals of each shape.
    """
    check_seed("seed", seed)
    if cfs_per_shape < 1:
        raise ValueError(f"cfs_per_shape: must be >= 1, got {cfs_per_shape}")
    if not 0 <= start <= stop:
        raise ValueError(f"sample range [{start}, {stop}) is invalid")
    classes = (num_classes,) * 3 if isinstance(num_classes, int) else tuple(num_classes)
    idx = np.arange(start, stop, dtype=np.int64)
    shape_idx = idx // cfs_per_shape
    labels = np.empty((len(idx), 3), dtype=np.int64)
    seeds = np.empty((len(idx), 3), dtype=np.int64)
    for k, mech in enumerate(MECHANISMS):
        group = shape_idx if mech == "shape" else idx
        seeds[:, k] = derive(seed, group, 2 * k)
        if fixed[k] is not None:
            if not 0 <= fixed[k] < classes[k]:
                raise ValueError(f"{mech}: label must be in [0, {classes[k] - 1}], got {fixed[k]}")
            labels[:, k] = fixed[k]
        elif policy == "same":
            labels[:, k] = derive(seed, shape_idx, 99) % classes[k]
        elif policy == "uniform":
            labels[:, k] = derive(seed, group, 2 * k + 1) % classes[k]
        else:
            raise ValueError(f"label policy must be one of fixed, uniform, same; got {policy!r}")
    assert seeds.max(initial=0) <= SEED_MAX
    return SamplePlan(labels, seeds, idx)
