"""Interpolation sheets: one mechanism's class (or all three) moves from one class to another, noise fixed.

BigGAN is conditioned on a class vector, so a mix (1 - t) * onehot(a) + t * onehot(b) is a valid input:
the sheet shows how the mask, texture or background morphs while everything else stays put.

    cgn interpolate --model imagenet-cgn --mechanism texture --classes cow,elephant,valley --to zebra --out sheet.png

(the command lives in cgn_cli/interpolate.py)
"""

import torch
from torch import Tensor

from cgn.compose import compose
from cgn.imagenet.model import ImagenetCGN
from cgn.imagenet.sheets import grid
from cgn.mechanisms import MECHANISMS, check_labels
from cgn.noise import as_seed_list

MODES = (*MECHANISMS, "all")


@torch.no_grad()
def interpolate(
    model: ImagenetCGN, mechanism: str, labels: list[int], target: int, seeds: list[int], steps: int = 6
) -> dict[str, Tensor]:
    """Outputs in [0, 1] for `steps + 2` points from labels[k] to target (k = the mechanism, or all)."""
    if mechanism not in MODES:
        raise ValueError(f"mechanism must be one of {', '.join(MODES)}, got {mechanism!r}")
    if len(labels) != 3 or len(seeds) != 3:
        raise ValueError("labels and seeds: one per mechanism (shape, texture, background)")
    if not 0 <= steps <= 64:
        raise ValueError(f"steps must be in [0, 64], got {steps}")
    check_labels("labels", [*labels, target], model.num_classes)
    seeds = as_seed_list("seeds", seeds)
    model.eval()
    n = steps + 2
    t = torch.linspace(0, 1, n, device=model._device()).unsqueeze(1)
    vectors = []
    for k, name in enumerate(MECHANISMS):
        start = model.one_hot(torch.tensor([labels[k]]))
        if mechanism in (name, "all"):
            vectors.append((1 - t) * start + t * model.one_hot(torch.tensor([target])))
        else:
            vectors.append(start.expand(n, -1))
    u = [model.noise([s]).to(model._device()).expand(n, -1) for s in seeds]
    premask = model.premask_from(u[0], vectors[0])
    mask = model.mask_from(premask)
    foreground = model.texture_from(u[1], vectors[1])
    background = model.background_from(u[2], vectors[2])
    images = {"mask": mask, "foreground": (foreground + 1) / 2, "background": (background + 1) / 2}
    images["composite"] = compose(mask, images["foreground"], images["background"])
    return {k: v.float().cpu() for k, v in images.items()}


def sheet(images: dict[str, Tensor], mechanism: str) -> Tensor:
    """Row 1: the composites; row 2 (unless "all"): the interpolated mechanism's own output."""
    rows = [images["composite"]]
    if mechanism != "all":
        rows.append(images[{"shape": "mask", "texture": "foreground", "background": "background"}[mechanism]])
    rows = [r.expand(-1, 3, -1, -1) for r in rows]
    return grid(torch.cat(rows), columns=len(images["composite"]))
