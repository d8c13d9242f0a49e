"""The one inference pipeline: labels and seeds in, images out, every per-call option an argument.

The service's runner, the batch renderer, `cgn sample` and the benchmarks all call `generate`, so a
sample has the same bytes wherever it is made. Options (outputs, truncation, interventions) are
arguments of the call and never change the model, so one loaded model serves them all at once.
"""

from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from cgn.compose import compose
from cgn.mechanisms import OUTPUTS, CounterfactualModel


def check_outputs(outputs: Iterable[str]) -> list[str]:
    out = list(dict.fromkeys(outputs))
    bad = [o for o in out if o not in OUTPUTS]
    if bad or not out:
        raise ValueError(f"outputs: each must be one of {', '.join(OUTPUTS)}; got {out}")
    return out


def counterfactuals(
    model: CounterfactualModel,
    labels: Tensor,
    seeds: Tensor,
    outputs: Iterable[str] = ("composite",),
    overrides: dict[str, Tensor] | None = None,
    truncation: float | None = None,
) -> dict[str, Tensor]:
    """labels, seeds: (n, 3) in shape/texture/background order. Images come back in [0, 1] on the model's device.

    `overrides` replaces a mechanism's output for all n samples (an intervention do(m := image)):
    keys "mask", "foreground", "background", tensors broadcastable to (n, C, H, W).
    `truncation`: BigGAN's for this call (None: the model's configured one); a ValueError for a
    model that takes none (`model.takes_truncation`), even where every mechanism is overridden.
    """
    wanted = check_outputs(outputs)
    model.check_truncation(truncation)
    overrides = overrides or {}
    labels = torch.as_tensor(labels, dtype=torch.long)
    seeds = torch.as_tensor(seeds, dtype=torch.long)
    need_all = "composite" in wanted
    out: dict[str, Tensor] = {}
    if need_all or {"mask", "premask"} & set(wanted):
        if "mask" in overrides:
            out["mask"] = overrides["mask"].expand(len(labels), -1, -1, -1)
            out["premask"] = out["mask"]
        else:
            out.update(model.shape(labels[:, 0], seeds[:, 0], truncation))
    for k, (name, mechanism) in enumerate((("foreground", model.texture), ("background", model.background)), 1):
        if need_all or name in wanted:
            image = overrides[name] if name in overrides else mechanism(labels[:, k], seeds[:, k], truncation)
            out[name] = image.expand(len(labels), -1, -1, -1)
    if need_all:
        out["composite"] = compose(out["mask"], out["foreground"], out["background"])
    return {k: out[k] for k in wanted}


def to_uint8(images: Tensor) -> Tensor:
    """[0, 1] floats -> uint8 NCHW on the CPU (round half up, as PIL does)."""
    return (images.detach().float().clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8).cpu()


def generate(
    model: CounterfactualModel,
    labels: np.ndarray,
    seeds: np.ndarray,
    outputs: Iterable[str] = ("composite",),
    truncation: float | None = None,
    overrides: dict[str, Tensor] | None = None,
) -> dict[str, np.ndarray]:
    """labels, seeds: int64 (n, 3) in shape/texture/background order. Returns uint8 NCHW arrays per output.

    Inputs are copied (explicit label tables are read-only arrays) and overrides moved to the model's
    device; `truncation` and `overrides` are as in `counterfactuals`.
    """
    labels_t = torch.tensor(np.asarray(labels), dtype=torch.long)
    seeds_t = torch.tensor(np.asarray(seeds), dtype=torch.long)
    device = next(model.parameters()).device
    ov = {k: v.to(device) for k, v in (overrides or {}).items()}
    out = counterfactuals(model, labels_t, seeds_t, outputs, ov, truncation)
    return {k: to_uint8(v).numpy() for k, v in out.items()}
