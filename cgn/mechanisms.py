"""What every CGN offers: three independent mechanisms, each with its own labels and seeds."""

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from cgn.noise import as_seed_list

Mechanism = Literal["shape", "texture", "background"]
MECHANISMS: tuple[Mechanism, ...] = ("shape", "texture", "background")
OUTPUTS = ("composite", "mask", "premask", "foreground", "background")


def check_labels(field: str, labels: Sequence[int] | Tensor, num_classes: int) -> Tensor:
    """Refuse labels outside [0, num_classes) with a ValueError naming the field."""
    t = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        bad = [int(v) for v in t.tolist() if not 0 <= v < num_classes][:5]
        raise ValueError(f"{field}: labels must be in [0, {num_classes - 1}], got {bad}")
    return t


class CounterfactualModel(nn.Module):
    """Base of the MNIST and ImageNet CGNs.

    Subclasses implement `_shape`, `_texture` and `_background` on validated tensors; outputs
    are images in [0, 1] (masks 1 channel), computed in eval mode so a sample never depends on
    its batch. Every forward runs on exactly `forward_rows` rows (the last chunk padded by
    repeating its last row): CPU kernels pick other code paths for other batch sizes (1-3 and 5-7
    rows give other bits than 8 on an AMD EPYC, 1 row on another CPU; docs/mnist.md), so a fixed
    chunk is what makes a sample's bytes the same alone, in a micro-batch or in a batch job. A
    model may list larger CPU chunks (`cpu_fast_rows`); one is used for the full chunks of a large
    batch only where a probe shows it gives those very bits.
    On CUDA the chunk is `cuda_forward_rows`: a GPU computes a few hundred small rows in the time of
    one, so padding a lone request costs it little, while 4-row forwards would leave it idle.
    A truncation is an argument of each call, never a change to the model, so one loaded model serves
    every truncation at once; `takes_truncation` says whether a model has one (BigGAN's noise scale).
    """

    forward_rows: int = 4  # 2: -30 % batch throughput; 8: 2x single-request latency (MNIST CGN, 1 CPU thread)
    cuda_forward_rows: int = 256
    cpu_fast_rows: tuple[int, ...] = ()  # larger CPU chunks, used where they give the same bits (_same_bits_rows)
    takes_truncation: bool = False  # True where `truncation` may be given (None: the model's configured default)

    num_classes: int
    image_size: int

    def shape(
        self, labels: Sequence[int] | Tensor, seeds: Sequence[int] | Tensor, truncation: float | None = None
    ) -> dict[str, Tensor]:
        """The mask, and the premask it was made from (the same tensor for the MNIST CGNs)."""
        return self._mechanism("shape", self._shape, labels, seeds, truncation)

    def texture(
        self, labels: Sequence[int] | Tensor, seeds: Sequence[int] | Tensor, truncation: float | None = None
    ) -> Tensor:
        """The foreground (texture) image."""
        return self._mechanism("texture", self._texture, labels, seeds, truncation, "foreground")

    def background(
        self, labels: Sequence[int] | Tensor, seeds: Sequence[int] | Tensor, truncation: float | None = None
    ) -> Tensor:
        return self._mechanism("background", self._background, labels, seeds, truncation, "background")

    def check_truncation(self, truncation: float | None) -> None:
        """Refuse a truncation this model cannot take, or one outside (0, 1], with a ValueError."""
        if truncation is None:
            return
        if not self.takes_truncation:
            raise ValueError(f"truncation: {type(self).__name__} takes no truncation, got {truncation}")
        if not 0 < truncation <= 1:
            raise ValueError(f"truncation: must be in (0, 1], got {truncation}")

    def _truncation_kw(self, truncation: float | None) -> dict[str, float]:
        """What the mechanisms get: nothing for None, so a model without a truncation keeps (y, seeds)."""
        self.check_truncation(truncation)
        return {} if truncation is None else {"truncation": truncation}

    def _mechanism(
        self, mechanism: str, fn, labels, seeds, truncation: float | None, output: str | None = None
    ) -> dict[str, Tensor] | Tensor:
        """`fn(y, seeds)` on validated inputs, in padded chunks: the dict of tensors it returns, or, with
        `output`, the one tensor it returns (carried under that name)."""
        kw = self._truncation_kw(truncation)
        y, s = self._inputs(mechanism, labels, seeds)
        if output is None:
            return self._run_padded(mechanism, lambda yy, ss: fn(yy, ss, **kw), y, s)
        return self._run_padded(mechanism, lambda yy, ss: {output: fn(yy, ss, **kw)}, y, s)[output]

    def _inputs(self, mechanism: str, labels, seeds) -> tuple[Tensor, list[int]]:
        y = check_labels(f"{mechanism} label", labels, self.num_classes)
        s = as_seed_list(f"{mechanism} seed", seeds)
        if len(s) != len(y):
            raise ValueError(f"{mechanism}: got {len(y)} labels but {len(s)} seeds")
        return y, s

    @torch.no_grad()
    def _run_padded(self, mechanism: str, fn, y: Tensor, seeds: list[int]) -> dict[str, Tensor]:
        if self.training:
            raise RuntimeError("inference needs eval mode: call .eval() first")
        if not seeds:
            return fn(y, seeds)
        rows = self.rows_per_forward()
        sizes = self._same_bits_rows(mechanism, fn, rows) if len(seeds) > rows else (rows,)
        chunks, i = [], 0
        while i < len(seeds):
            size = next((k for k in sizes if k <= len(seeds) - i), rows)
            yy, ss = y[i : i + size], seeds[i : i + size]
            n = len(ss)
            out = fn(torch.cat([yy, yy[-1:].expand(size - n)]), ss + ss[-1:] * (size - n))
            chunks.append({k: v[:n] for k, v in out.items()})
            i += n
        return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}

    def _same_bits_rows(self, mechanism: str, fn, rows: int) -> tuple[int, ...]:
        """Those of `cpu_fast_rows` whose forward gives every row the very bits of `rows`-row forwards
        (checked once per mechanism and thread count on a probe batch), largest first, then `rows`.

        Why: kernels pick code paths by shape, not by value, so one bit-identical probe stands for
        every input, and a batch runs in large chunks (MNIST CGN: ~1.3x the images/s of 4-row
        chunks) while its bytes stay those of a lone request.
        """
        if self._device().type == "cuda" or not self.cpu_fast_rows:
            return (rows,)
        key = (mechanism, rows, torch.get_num_threads())
        cache = self.__dict__.setdefault("_same_bits_cache", {})
        if key not in cache:
            same = []
            for size in sorted(self.cpu_fast_rows, reverse=True):
                if size <= rows or size % rows:
                    continue
                y = torch.arange(size) % self.num_classes
                seeds = [7919 * (i + 1) for i in range(size)]
                whole = fn(y, seeds)
                parts = [fn(y[i : i + rows], seeds[i : i + rows]) for i in range(0, size, rows)]
                if all(torch.equal(whole[k], torch.cat([p[k] for p in parts])) for k in whole):
                    same.append(size)
            cache[key] = (*same, rows)
        return cache[key]

    def rows_per_forward(self) -> int:
        return self.cuda_forward_rows if self._device().type == "cuda" else self.forward_rows

    def _device(self) -> torch.device:
        raise NotImplementedError

    # `truncation` comes only where takes_truncation, as a value check_truncation accepted.
    def _shape(self, y: Tensor, seeds: list[int], truncation: float | None = None) -> dict[str, Tensor]:
        raise NotImplementedError

    def _texture(self, y: Tensor, seeds: list[int], truncation: float | None = None) -> Tensor:
        raise NotImplementedError

    def _background(self, y: Tensor, seeds: list[int], truncation: float | None = None) -> Tensor:
        raise NotImplementedError
