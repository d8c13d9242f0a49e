"""Interpolation between two classes of one mechanism, noise and the other mechanisms fixed, for every CGN.

Both CGNs condition each mechanism on a class vector: the MNIST CGN on a learned embedding of the label, the
ImageNet CGN (BigGAN) on a one-hot vector. A mix (1 - t) * vec(a) + t * vec(b) is a valid input either way,
so the strip shows how the mask, the texture or the background morphs from class a to class b while the
noise stays put. The ends are the plain classes: t = 0 and t = 1 give exactly vec(a) and vec(b) (1 * x + 0 * y
is x in floating point), and the rows run in the padded chunks of sampling (`rows_per_forward`), so the ends
have the very bits sampling gives, e.g. `model.texture([a], [seed])`.
"""

from collections.abc import Callable

import torch
from torch import Tensor

from cgn.compose import compose
from cgn.mechanisms import MECHANISMS, CounterfactualModel, check_labels
from cgn.noise import as_seed_list

MIN_STEPS, MAX_STEPS = 2, 64
OUTPUT_OF = {"shape": "mask", "texture": "foreground", "background": "background"}


def weights(steps: int, device: torch.device) -> Tensor:
    """(steps, 1) float32 t_i = i / (steps - 1): t_0 = 0 and t_last = 1 exactly."""
    return (torch.arange(steps, dtype=torch.float64) / (steps - 1)).float().to(device).unsqueeze(1)


@torch.no_grad()
def interpolate(
    model: CounterfactualModel,
    mechanism: str,
    labels: list[int],
    target: int,
    seeds: list[int],
    steps: int,
    overrides: dict[str, Tensor] | None = None,
    truncation: float | None = None,
) -> dict[str, Tensor]:
    """`steps` images (both ends included) whose `mechanism` moves from labels[k] to `target`; the other
    two mechanisms keep their label and seed, or their override (an image, as in cgn.pipeline).
    `truncation`: as in cgn.pipeline (None: the model's own; a ValueError for a model that takes none).

    Returns mask, foreground, background and composite, each (steps, C, H, W) in [0, 1].
    """
    if mechanism not in MECHANISMS:
        raise ValueError(f"mechanism must be one of {', '.join(MECHANISMS)}, got {mechanism!r}")
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be in [{MIN_STEPS}, {MAX_STEPS}], got {steps}")
    if len(labels) != 3 or len(seeds) != 3:
        raise ValueError("labels and seeds: one per mechanism (shape, texture, background)")
    check_labels("labels", [*labels, target], model.num_classes)
    seeds = as_seed_list("seeds", seeds)
    model.check_truncation(truncation)
    if model.training:
        raise RuntimeError("inference needs eval mode: call .eval() first")
    overrides = overrides or {}
    if OUTPUT_OF[mechanism] in overrides:
        raise ValueError(f"{mechanism}: the interpolated mechanism cannot be replaced by an image")
    k = MECHANISMS.index(mechanism)
    start, end, run = _conditioning(model, mechanism, labels[k], target, seeds[k], truncation)
    vectors = (1 - (t := weights(steps, start.device))) * start + t * end
    rows = model.rows_per_forward()
    chunks = []
    for i in range(0, steps, rows):
        part = vectors[i : i + rows]
        n = len(part)
        padded = torch.cat([part, part[-1:].expand(rows - n, -1)]) if n < rows else part
        chunks.append(run(padded)[:n])
    moving = torch.cat(chunks)
    images = {OUTPUT_OF[mechanism]: moving}
    for j, name in enumerate(MECHANISMS):  # the fixed mechanisms: one sample, or the image replacing it
        output = OUTPUT_OF[name]
        if name == mechanism:
            continue
        if output in overrides:
            image = overrides[output].to(moving.device).float()
        elif name == "shape":
            image = model.shape([labels[j]], [seeds[j]], truncation)["mask"]
        else:
            image = getattr(model, name)([labels[j]], [seeds[j]], truncation)
        images[output] = image.expand(steps, -1, -1, -1)
    images["composite"] = compose(images["mask"], images["foreground"], images["background"])
    return {key: images[key] for key in ("mask", "foreground", "background", "composite")}


def _conditioning(
    model: CounterfactualModel, mechanism: str, a: int, b: int, seed: int, truncation: float | None = None
) -> tuple[Tensor, Tensor, Callable[[Tensor], Tensor]]:
    """The class vectors of a and b, and the mechanism as a function of class vectors (noise of `seed`)."""
    if hasattr(model, "label_embedding"):  # the MNIST CGN: concat(u, embedding(y)) into each IM
        from cgn.shuffle import patch_shuffle

        table = model.label_embedding.weight
        u, offsets = model.noise([seed])
        u = u.to(table.device)

        def mnist(vec: Tensor) -> Tensor:
            x = torch.cat([u.expand(len(vec), -1), vec], dim=1)
            if mechanism == "shape":
                return model.shape_im(x).float().clamp(model.MASK_EPS, 1 - model.MASK_EPS)
            im = model.texture_im if mechanism == "texture" else model.background_im
            return (patch_shuffle(im(x), offsets.expand(len(vec), -1)).float() + 1) / 2

        return table[a], table[b], mnist

    # the ImageNet CGN: BigGAN on (u, one-hot(y)) per mechanism, the U2-Net makes the mask
    u = model.noise([seed], truncation).to(model._device())
    start, end = model.one_hot(torch.tensor([a, b]))

    def imagenet(vec: Tensor) -> Tensor:
        uu = u.expand(len(vec), -1)
        with model._autocast():
            if mechanism == "shape":
                return model.mask_from(model.premask_from(uu, vec, truncation)).float()
            gen = model.texture_from if mechanism == "texture" else model.background_from
            return (gen(uu, vec, truncation).float() + 1) / 2

    return start, end, imagenet
