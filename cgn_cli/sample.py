"""`cgn sample`: a PNG grid of counterfactuals with the mask, foreground and background rows."""

import argparse
import os
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sample", help="write a grid of counterfactuals to a PNG")
    parser.add_argument("--model", default="mnist-wildlife")
    parser.add_argument("--shape", required=True, help="shape class id or name")
    parser.add_argument("--texture", required=True, help="texture class id or name")
    parser.add_argument("--background", "--bg", required=True, help="background class id or name")
    parser.add_argument("--seed", type=int, default=0, help="first noise seed; columns use seed, seed+1, ...")
    parser.add_argument("-n", type=int, default=8, help="columns (noise seeds)")
    parser.add_argument("--store", type=Path, default=os.environ.get("CGN_MODEL_STORE"), help="model-store root")
    parser.add_argument("--out", type=Path, required=True)
    parser.set_defaults(func=run)


def _label(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from cgn.mnist.sheet import save_grid
    from cgn.pipeline import generate
    from model_store import ModelStore

    loaded = ModelStore(args.store).load(args.model)
    manifest = loaded.manifest
    if args.n < 1:
        raise ValueError(f"-n: must be >= 1, got {args.n}")
    ids = [
        manifest.vocab(m).resolve(m, _label(v)).id
        for m, v in (("shape", args.shape), ("texture", args.texture), ("background", args.background))
    ]
    seeds = np.repeat(np.arange(args.seed, args.seed + args.n, dtype=np.int64)[:, None], 3, axis=1)
    labels = np.tile(np.array(ids, dtype=np.int64), (args.n, 1))
    out = generate(loaded.model, labels, seeds, ["composite", "mask", "foreground", "background"])
    save_grid([out["composite"], out["mask"], out["foreground"], out["background"]], args.out, scale=3)
    names = [manifest.vocabulary[m][i] for m, i in zip(("shape", "texture", "background"), ids, strict=True)]
    print(f"wrote {args.out}: shape={names[0]} texture={names[1]} background={names[2]}, seeds {args.seed}..")
    return 0
