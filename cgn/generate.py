"""Run the three mechanisms for a batch of samples and compose them."""

from collections.abc import Iterable

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
) -> dict[str, Tensor]:
    """labels, seeds: (n, 3) in shape/texture/background order. Images come back in [0, 1].

    `overrides` replaces a mechanism's output for all n samples (an intervention do(m := image)):
    keys "mask", "foreground", "background", tensors broadcastable to (n, C, H, W).
    """
    wanted = check_outputs(outputs)
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
            out.update(model.shape(labels[:, 0], seeds[:, 0]))
    for k, (name, mechanism) in enumerate((("foreground", model.texture), ("background", model.background)), 1):
        if need_all or name in wanted:
            image = overrides[name] if name in overrides else mechanism(labels[:, k], seeds[:, k])
            out[name] = image.expand(len(labels), -1, -1, -1)
    if need_all:
        out["composite"] = compose(out["mask"], out["foreground"], out["background"])
    return {k: out[k] for k in wanted}


def to_uint8(images: Tensor) -> Tensor:
    """[0, 1] floats -> uint8 NCHW on the CPU (round half up, as PIL does)."""
    return (images.detach().float().clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8).cpu()
