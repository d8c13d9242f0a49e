"""`cgn train imagenet`: the ImageNet CGN's training loop (cgn/imagenet/train.py) as a command.

Writes losses.jsonl, sample sheets and store-format checkpoints (with the pseudo ground truth, for resuming)
into the run directory; `--export` registers the inference model (without it) in the model store. Without
pretrained BigGAN / U2-Net / CGN weights (`--init`, `--biggan`, `--u2net`) training starts from random
weights: only useful for tests (`--tiny`). cgn_cli/train.py hands its options here unparsed, so that only this
command pays for importing torch and BigGAN.
"""

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from cgn.imagenet import losses as L
from cgn.imagenet.train import TrainConfig, Trainer
from cgn_cli.store import writable_store

TUNABLE = ("steps", "batch_size", "batch_acc", "truncation", "seed", "sample_every", "checkpoint_every")


def add_imagenet_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("imagenet", help="train the ImageNet CGN (needs pretrained BigGAN/U2-Net or cgn.pth)")
    d = TrainConfig()
    p.add_argument("--run-dir", type=Path, required=True, help="checkpoints, sample sheets and losses.jsonl go here")
    p.add_argument("--init", type=Path, help="official cgn.pth to start from (includes biggan_GT)")
    p.add_argument("--biggan", type=Path, help="pretrained biggan-deep-256 weights for all four generators")
    p.add_argument("--u2net", type=Path, help="pretrained u2net.pth")
    p.add_argument("--vgg16", type=Path, help="torchvision VGG16 weights for the perceptual loss (else random filters)")
    p.add_argument("--tiny", action="store_true", help="the tiny test configuration (64 px, width 8)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    for name in TUNABLE:
        default = getattr(d, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    p.add_argument("--export", metavar="NAME", help="register the final inference model under this name")
    p.add_argument("--store", type=Path, help="model-store root for --export (default: $CGN_MODEL_STORE)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from model_store import imagenet as store_imagenet
    from model_store.official import read_checkpoint

    cfg = TrainConfig(**{name: getattr(args, name) for name in TUNABLE}, feature_divisor=8 if args.tiny else 1)
    missing = "--store: no model store root given and CGN_MODEL_STORE is not set"
    export_root = writable_store(args.store, missing) if args.export else None  # before training, not after it
    torch.manual_seed(args.seed)
    model = store_imagenet.training_model(args.init, args.biggan, args.u2net, args.tiny, args.truncation, args.seed)
    features = L.FeatureNet(cfg.feature_divisor, seed=cfg.seed)
    if args.vgg16:
        features.load_vgg16(read_checkpoint(args.vgg16))
    trainer = Trainer(model, cfg, args.device, features)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    log = (args.run_dir / "losses.jsonl").open("a")
    t0 = time.perf_counter()
    for _ in range(cfg.steps):
        values = trainer.step()
        s = trainer.step_count
        log.write(json.dumps({"step": s, "seconds": round(time.perf_counter() - t0, 2), **values}) + "\n")
        log.flush()
        print(f"step {s}: " + " ".join(f"{k} {v:.3f}" for k, v in values.items()), flush=True)
        if s % cfg.sample_every == 0 or s == cfg.steps:
            trainer.sample_sheet(args.run_dir / "samples" / f"step-{s:07d}.png")
        if s % cfg.checkpoint_every == 0 or s == cfg.steps:
            store_imagenet.save_checkpoint(trainer.model, s, asdict(cfg), args.run_dir)
    log.close()
    if args.export:
        training = {"steps": cfg.steps, "seconds": round(time.perf_counter() - t0, 1)}
        store_imagenet.export(model, args.export, export_root, training)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`cgn train imagenet ...`: argv starts with "imagenet"."""
    parser = argparse.ArgumentParser(prog="cgn train")
    add_imagenet_parser(parser.add_subparsers(dest="dataset", required=True))
    args = parser.parse_args(argv)
    return args.func(args)
