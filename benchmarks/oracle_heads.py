"""Diagnostic: the classifier job on perfect double-colored counterfactuals (real training digits,
object and background colors drawn uniformly), one run per training recipe, so the recipe's own
ceiling is known before any CGN is judged.

    python3 benchmarks/oracle_heads.py [--n 20000] [--epochs 4]

Rows: the shape head alone; the three-head ensemble with full gradients from every head (plain
multi-task); the ensemble as the job trains it (texture/background gradients scaled by 0.1); and the
paper's optimiser (Adadelta lr 1.0, x0.7 per epoch, batch 64) on that ensemble.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "jobs" / "classifier"))
sys.path.insert(0, str(ROOT / "scripts"))
from cgn_classifier.data import Counterfactuals, Split  # noqa: E402
from cgn_classifier.model import HEADS  # noqa: E402
from cgn_classifier.train import TrainConfig, evaluate, train  # noqa: E402
from export_mnist_variant import export_oracle  # noqa: E402

from cgn.mnist import datasets  # noqa: E402

ADAM = dict(lr=2e-3, precision="fp32")  # the recipe of docs/results.md's footnote 1 (the job defaults: 4e-3, auto)
RECIPES = {
    "shape head alone (adam)": dict(heads=("shape",), **ADAM),
    "3 heads, full gradients (adam)": dict(heads=HEADS, aux_grad=1.0, **ADAM),
    "3 heads, aux_grad 0.1 (adam; the job's aux_grad)": dict(heads=HEADS, aux_grad=0.1, **ADAM),
    "3 heads, aux_grad 0.1, paper's Adadelta": dict(heads=HEADS, optimizer="adadelta", batch_size=64, precision="fp32"),
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20000, help="perfect counterfactuals (one per digit)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--test-n", type=int, default=2000)
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        cf = Counterfactuals.load(export_oracle("double-colored", Path(tmp) / "oracle.npz", args.n, 1))
    test = datasets.load("double-colored", "test")
    idx = np.linspace(0, len(test.labels) - 1, args.test_n).round().astype(np.int64)
    factors = np.stack([test.labels.numpy(), test.object_ids.numpy(), test.background_ids.numpy()], 1)[idx]
    test_split = Split(datasets.to_uint8(test.images[idx]), factors)
    images, labels = torch.from_numpy(cf.images), torch.from_numpy(cf.labels)
    print(f"{args.n} perfect double-colored counterfactuals, {args.epochs} epochs, {args.test_n} test images")
    for name, recipe in RECIPES.items():
        model, history = train(images, labels, test_split, TrainConfig(epochs=args.epochs, seed=0, **recipe))
        curve = " ".join(f"{100 * r['test_acc']['shape']:.1f}" for r in history)
        final = evaluate(model, test_split)["own"]
        print(f"{name}: shape test per epoch {curve} | train {100 * history[-1]['train_acc']['shape']:.1f}", end="")
        print(" | " + " ".join(f"{h} {100 * v:.1f}" for h, v in final.items()), flush=True)


if __name__ == "__main__":
    main()
