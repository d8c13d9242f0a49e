"""What a batch job is: a resolved, self-describing spec, and the samples each chunk holds.

The spec is stored in Redis with the job, so any worker on any machine can render any chunk
from it alone; sample i depends only on (spec, i), never on chunking or on which worker ran it.
"""

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from cgn.mechanisms import MECHANISMS
from cgn.noise import check_seed
from cgn.pipeline import check_outputs
from cgn.sampling import SamplePlan, plan

FORMATS = ("npz", "wds")
POLICIES = ("uniform", "same")
EXTENSIONS = {"npz": "npz", "wds": "tar"}


@dataclass(frozen=True)
class BatchSpec:
    """Label ids only (names were resolved at submission); `explicit` means labels come from a table."""

    model: str
    n: int
    seed: int = 0
    policy: str = "uniform"
    fixed: tuple[int | None, int | None, int | None] = (None, None, None)
    cfs_per_shape: int = 1
    outputs: tuple[str, ...] = ("composite",)
    shard_size: int = 1000
    format: str = "npz"
    explicit: bool = False
    truncation: float | None = None  # BigGAN truncation (ImageNet); None: the model's own
    results: str = ""  # where shards go: a local directory or any fsspec URL, fixed at submission
    vocabulary: dict[str, list[str]] = field(default_factory=dict)  # names per mechanism, for label files

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n: must be >= 1, got {self.n}")
        check_seed("seed", self.seed)
        if self.policy not in POLICIES:
            raise ValueError(f"policy: must be one of {', '.join(POLICIES)}; got {self.policy!r}")
        if self.cfs_per_shape < 1:
            raise ValueError(f"cfs_per_shape: must be >= 1, got {self.cfs_per_shape}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size: must be >= 1, got {self.shard_size}")
        if self.truncation is not None and not 0 < self.truncation <= 1:
            raise ValueError(f"truncation: must be in (0, 1], got {self.truncation}")
        if self.format not in FORMATS:
            raise ValueError(f"format: must be one of {', '.join(FORMATS)}; got {self.format!r}")
        object.__setattr__(self, "outputs", tuple(check_outputs(self.outputs)))
        object.__setattr__(self, "fixed", tuple(self.fixed))

    @property
    def num_chunks(self) -> int:
        return -(-self.n // self.shard_size)

    def chunk_range(self, k: int) -> tuple[int, int]:
        if not 0 <= k < self.num_chunks:
            raise IndexError(f"shard index must be in [0, {self.num_chunks - 1}], got {k}")
        return k * self.shard_size, min(self.n, (k + 1) * self.shard_size)

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]

    def shard_name(self, k: int) -> str:
        return f"shard-{k:06d}.{self.extension}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "BatchSpec":
        data = json.loads(text)
        data["fixed"] = tuple(data["fixed"])
        data["outputs"] = tuple(data["outputs"])
        return cls(**data)

    def name(self, mechanism_index: int, label: int) -> str:
        names = self.vocabulary.get(MECHANISMS[mechanism_index], [])
        return names[label] if 0 <= label < len(names) else str(label)


def sample_key(index: int) -> str:
    """WebDataset-safe key (no dots), the same in every run of the same spec."""
    return f"{index:09d}"


def samples(spec: BatchSpec, start: int, stop: int, explicit: np.ndarray | None = None) -> SamplePlan:
    """Labels and seeds of samples [start, stop); seeds always from (job seed, i)."""
    num_classes = tuple(max(1, len(spec.vocabulary.get(m, []))) for m in MECHANISMS)
    p = plan(spec.seed, start, stop, num_classes, spec.policy, spec.fixed, spec.cfs_per_shape)
    if not spec.explicit:
        return p
    if explicit is None or len(explicit) != spec.n:
        raise ValueError("this job has an explicit label table, and it was not given")
    return SamplePlan(np.ascontiguousarray(explicit[start:stop], dtype=np.int64), p.seeds, p.keys)
