"""`cgn train mnist|imagenet`."""

import argparse
import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from cgn_cli.store import writable_store


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train a CGN")
    kinds = parser.add_subparsers(dest="family", required=True)
    mnist = kinds.add_parser("mnist", help="train an MNIST CGN (colored, double-colored, wildlife)")
    mnist.add_argument("--dataset", required=True, choices=["colored", "double-colored", "wildlife"])
    mnist.add_argument("--steps", type=int, default=None, help="generator updates (default: preset)")
    mnist.add_argument("--batch-size", type=int, default=None)
    mnist.add_argument("--max-minutes", type=float, default=30.0, help="stop after this much training time")
    mnist.add_argument("--features", default="random", choices=["random", "vgg16"], help="style-loss features")
    mnist.add_argument("--shape-prior", type=float, default=1.0, help="mask discriminator weight; 0 = paper only")
    mnist.add_argument(
        "--texture-prior", type=float, default=1.0, help="real-mask texture discriminator weight; 0 = paper only"
    )
    mnist.add_argument("--color-prior", type=float, default=1.0, help="mean-color match weight; 0 = paper only")
    mnist.add_argument(
        "--color-by-class", action="store_true", help="color prior: match each class's color distribution"
    )
    mnist.add_argument("--contrast-prior", type=float, default=0.0, help="color-spread (std) match weight; 0 = off")
    mnist.add_argument(
        "--shape-warmup", type=int, default=None, help="first steps train the shape mechanism alone (default: preset)"
    )
    mnist.add_argument("--warmup-batch", type=int, default=None, help="batch of a shape warm-up step (default 64)")
    mnist.add_argument(
        "--shape-imle", type=float, default=0.0, help="warm-up: nearest-of-8 mask pulled to each real digit; 0 = off"
    )
    mnist.add_argument("--imle-all-steps", action="store_true", help="keep --shape-imle in the full steps too")
    mnist.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: autocast, for CPUs with native bf16"
    )
    mnist.add_argument("--init-from", default=None, help="start from these weights (a model.safetensors)")
    mnist.add_argument(
        "--polish", action="store_true", help="train texture and background only, on the non-adversarial losses"
    )
    mnist.add_argument("--seed", type=int, default=0)
    mnist.add_argument("--threads", type=int, default=None, help="torch threads")
    mnist.add_argument("--run-dir", type=Path, default=None, help="checkpoints and sample sheets (default runs/)")
    mnist.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    mnist.add_argument(
        "--store", type=Path, default=None, help="model-store root to write into (default: $CGN_MODEL_STORE)"
    )
    mnist.add_argument("--no-export", action="store_true", help="train only; do not write a model-store entry")
    mnist.add_argument("--mnist-dir", default=None, help="directory of standard MNIST IDX files")
    mnist.add_argument("--texture-dir", default=None, help="Wildlife textures: object/ and background/ images")
    mnist.set_defaults(func=run_mnist)
    # The ImageNet trainer parses its own options: importing it (BigGAN) here would slow every `cgn` call.
    imagenet = kinds.add_parser("imagenet", add_help=False, help="train the ImageNet CGN (cgn train imagenet -h)")
    imagenet.add_argument("rest", nargs=argparse.REMAINDER)
    imagenet.set_defaults(func=run_imagenet)


def run_imagenet(args: argparse.Namespace) -> int:
    from cgn_cli.train_imagenet import main

    return main(["imagenet", *args.rest])


def _base_provenance(weights: Path) -> dict:
    """What a run started from: the weights' sha256 and, from a model-store manifest beside them,
    how they were trained."""
    from model_store.manifest import sha256_file

    base = {"weights": str(weights), "sha256": sha256_file(weights)}
    manifest = weights.parent / "manifest.json"
    if manifest.is_file():
        base["training"] = json.loads(manifest.read_text()).get("training", {})
    return base


def run_mnist(args: argparse.Namespace) -> int:
    from cgn.mnist.train import TrainConfig, train
    from model_store.mnist import export

    overrides = {"seed": args.seed, "features": args.features, "max_minutes": args.max_minutes}
    overrides |= {"shape_prior": args.shape_prior, "texture_prior": args.texture_prior, "color_prior": args.color_prior}
    overrides |= {"contrast_prior": args.contrast_prior, "color_by_class": args.color_by_class}
    overrides |= {"shape_imle": args.shape_imle, "imle_all_steps": args.imle_all_steps, "precision": args.precision}
    if args.shape_warmup is not None:
        overrides["shape_warmup"] = args.shape_warmup
    overrides |= {"init_from": args.init_from, "polish": args.polish}
    overrides |= {"mnist_dir": args.mnist_dir, "texture_dir": args.texture_dir, "threads": args.threads}
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if args.warmup_batch is not None:
        overrides["warmup_batch"] = args.warmup_batch
    cfg = TrainConfig.preset(args.dataset, **overrides)
    missing = "no writable model store to export into: pass --store DIR or set CGN_MODEL_STORE"
    store = None if args.no_export else writable_store(args.store, missing)  # before training, not after it
    base = _base_provenance(Path(args.init_from)) if args.init_from else None  # read before an export overwrites it
    run_dir = args.run_dir or Path("runs") / f"mnist-{args.dataset}"
    trainer = train(cfg, run_dir, resume=args.resume)
    report = {"steps": trainer.step_no, "seconds": round(trainer.seconds, 1), "run_dir": str(run_dir)}
    print(json.dumps(report))
    if not args.no_export:
        training = {"command": "cgn " + shlex.join(sys.argv[1:]), "config": asdict(cfg)} | report
        if base:
            training["base"] = base
        texture_dir = Path(args.texture_dir) if args.texture_dir else None
        path = export(trainer.model.eval(), args.dataset, store, training, texture_dir)
        print(f"wrote {path}")
    return 0
