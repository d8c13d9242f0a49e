"""Per-sample seeded noise.

Every sample owns a generator seeded from its own seed (as in NVlabs/edm's generate.py), so a
sample's noise never depends on what else shares its batch, nor on the order samples arrive in.
"""

from collections.abc import Sequence

import torch
from torch import Tensor

SEED_MAX = 2**63 - 1


def check_seed(field: str, seed: int) -> int:
    """Refuse seeds outside [0, 2**63 - 1] with a ValueError naming the field."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{field}: seed must be an integer in [0, {SEED_MAX}], got {seed!r}")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"{field}: seed must be in [0, {SEED_MAX}], got {seed}")
    return seed


def as_seed_list(field: str, seeds: Sequence[int] | Tensor) -> list[int]:
    values = seeds.tolist() if isinstance(seeds, Tensor) else list(seeds)
    return [check_seed(field, s if isinstance(s, bool) else int(s)) for s in values]  # bools stay refused


def distinct(seeds: Sequence[int]) -> tuple[list[int], Tensor]:
    """The distinct seeds in first-seen order, and each seed's index among them. A padded chunk
    repeats its last seed (up to 255 times on CUDA): its noise is drawn once and indexed."""
    index: dict[int, int] = {}
    rows = [index.setdefault(s, len(index)) for s in seeds]
    return list(index), torch.tensor(rows, dtype=torch.long)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def normal(generators: Sequence[torch.Generator], dim: int) -> Tensor:
    """One standard-normal row of `dim` values per generator."""
    return torch.stack([torch.randn(dim, generator=g) for g in generators]) if generators else torch.empty(0, dim)


def truncated_normal(generators: Sequence[torch.Generator], dim: int, truncation: float) -> Tensor:
    """Normal rows truncated to [-2, 2] by resampling, then scaled by the truncation (BigGAN)."""
    rows = []
    for g in generators:
        row = torch.randn(dim, generator=g)
        outside = row.abs() > 2
        while outside.any():
            row[outside] = torch.randn(int(outside.sum()), generator=g)
            outside = row.abs() > 2
        rows.append(row * truncation)
    return torch.stack(rows) if rows else torch.empty(0, dim)


def randint(generators: Sequence[torch.Generator], high: int, count: int) -> Tensor:
    """`count` integers in [0, high) per generator, drawn after that generator's noise."""
    if not generators:
        return torch.empty(0, count, dtype=torch.long)
    return torch.stack([torch.randint(high, (count,), generator=g) for g in generators])
