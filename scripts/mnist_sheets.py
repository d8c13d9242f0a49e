"""Write docs/images/<model>.png: for shape classes 0-9, the factual sample, its mask, and a
counterfactual (texture and background labels changed, same noise) with its mask.

    python scripts/mnist_sheets.py mnist-colored mnist-double-colored mnist-wildlife
"""

import sys
from pathlib import Path

import torch

from cgn.mnist.sheet import save_grid
from cgn.pipeline import counterfactuals
from model_store import ModelStore

OUT = Path(__file__).resolve().parent.parent / "docs" / "images"


def sheet(name: str, seed: int = 0) -> Path:
    model = ModelStore().load(name).model
    y = torch.arange(10)
    seeds = (10 * seed + y)[:, None].repeat(1, 3)  # one noise draw per column, not one for the whole sheet
    factual = torch.stack([y, y, y], 1)
    counter = torch.stack([y, (y + 3) % 10, (y + 5) % 10], 1)
    a = counterfactuals(model, factual, seeds, ["composite", "mask"])
    b = counterfactuals(model, counter, seeds, ["composite", "mask"])
    if not torch.equal(a["mask"], b["mask"]):
        raise AssertionError(f"{name}: the counterfactual changed the mask")
    path = OUT / f"{name}.png"
    save_grid([a["composite"], a["mask"], b["composite"], b["mask"]], path, scale=2)
    return path


if __name__ == "__main__":
    for model_name in sys.argv[1:] or ["mnist-colored", "mnist-double-colored", "mnist-wildlife"]:
        print(sheet(model_name))
