"""Interpolation sheets: one mechanism's class (or all three) moves from one class to another, noise fixed.

BigGAN is conditioned on a class vector, so a mix (1 - t) * onehot(a) + t * onehot(b) is a valid input:
the sheet shows how the mask, texture or background morphs while everything else stays put.

    python3 -m cgn.imagenet.interpolate --model imagenet-cgn --mechanism texture \
        --classes cow,elephant,valley --to zebra --out sheet.png
"""

import argparse
from pathlib import Path

import torch
from torch import Tensor

from cgn.compose import compose
from cgn.imagenet.model import ImagenetCGN
from cgn.imagenet.sheets import grid, save_png
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


def main(argv: list[str] | None = None) -> int:
    from model_store import ModelStore

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="imagenet-cgn")
    p.add_argument("--store", type=Path, help="model-store root (default: $CGN_MODEL_STORE)")
    p.add_argument("--mechanism", choices=MODES, required=True)
    p.add_argument("--classes", required=True, help="shape,texture,background: names or ids")
    p.add_argument("--to", required=True, help="the class to interpolate towards")
    p.add_argument("--seeds", default="0,0,0", help="noise seeds of shape,texture,background")
    p.add_argument("--steps", type=int, default=6, help="midpoints between the two classes")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.store is None:
        from service.settings import Settings

        args.store = Settings().model_store
    loaded = ModelStore(args.store).load(args.model)
    words = args.classes.split(",")
    if len(words) != 3:
        raise SystemExit("--classes: give three, for shape,texture,background")
    labels = []
    for mech, word in zip(MECHANISMS, words, strict=True):
        r = loaded.manifest.vocab(mech).resolve(mech, int(word) if word.strip().isdigit() else word)
        print(f"{mech}: {word!r} -> {r.id} {r.name} ({r.via})")
        labels.append(r.id)
    voc = loaded.manifest.vocab(args.mechanism if args.mechanism != "all" else "shape")
    target = voc.resolve("to", int(args.to) if args.to.isdigit() else args.to)
    print(f"to: {args.to!r} -> {target.id} {target.name} ({target.via})")
    seeds = [int(s) for s in args.seeds.split(",")]
    images = interpolate(loaded.model, args.mechanism, labels, target.id, seeds, args.steps)
    print(f"wrote {save_png(sheet(images, args.mechanism), args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
