"""`cgn-train-classifier`: real MNIST-variant data + counterfactuals from cgn-service -> a JSON report.

    cgn-train-classifier --data colored.npz --url http://127.0.0.1:8000 --model mnist-colored \\
        --cf-n 20000 --cfs-per-shape 10 --epochs 3 --out report.json

Counterfactuals come through the client SDK: a prefetching stream of POST /samples (--source stream),
a batch job's shards (--source batch: a new job, or --batch-id of a finished one), or shard files
downloaded earlier (--source shards). --cf-n 0 trains on the real data alone.
"""

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from cgn_classifier import data
from cgn_classifier.augment import AUGMENTS, DEGREES, SCALE, SHIFT
from cgn_classifier.model import HEADS
from cgn_classifier.train import OPTIMIZERS, PRECISIONS, TrainConfig, mix, train

log = logging.getLogger("cgn_classifier")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cgn-train-classifier", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="real train/test splits (.npz from scripts/export_mnist_variant.py)")
    p.add_argument("--out", default="classifier-report.json", help="where the JSON report goes")
    g = p.add_argument_group("counterfactual data (through the client SDK)")
    g.add_argument("--url", default=os.environ.get("CGN_URL"), help="service URL (CGN_URL)")
    g.add_argument("--api-key", default=os.environ.get("CGN_API_KEY"), help="bearer key (CGN_API_KEY)")
    g.add_argument("--model", help="model to sample from (default: the service's default model)")
    g.add_argument("--cf-n", type=int, default=10000, help="generated samples to mix in; 0 = real data only")
    g.add_argument(
        "--policy",
        choices=("uniform", "same"),
        default="uniform",
        help="uniform: counterfactual labels, drawn independently per mechanism; same: one label for all three",
    )
    g.add_argument("--cfs-per-shape", type=int, default=10, help="counterfactuals per sampled shape (paper: 10)")
    g.add_argument("--cf-seed", type=int, default=0, help="seed of the sample stream / batch job")
    g.add_argument(
        "--source",
        choices=("stream", "batch", "shards", "file"),
        default="stream",
        help="file: a saved sample set (--cf-file), e.g. a --cf-cache or a diagnostic set",
    )
    g.add_argument("--cf-file", help="--source file: an .npz of images, labels (N, 3) and meta")
    g.add_argument("--batch-id", help="--source batch: read this finished job instead of submitting one")
    g.add_argument("--shard-size", type=int, default=1000, help="--source batch: samples per shard of a new job")
    g.add_argument("--shards", nargs="*", default=[], help="--source shards: shard files or directories")
    g.add_argument("--pull-batch-size", type=int, default=256, help="samples per /samples request")
    g.add_argument("--prefetch", type=int, default=2, help="/samples requests in flight")
    g.add_argument("--cf-cache", help="keep the pulled samples in this .npz and reuse them when it matches")
    t = p.add_argument_group("training")
    t.add_argument("--real-n", type=int, help="use the first N real training images (default: all)")
    t.add_argument("--test-n", type=int, help="evaluate on N evenly spaced test images (default: all)")
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="adadelta: the paper's recipe")
    t.add_argument("--lr", type=float, help="peak learning rate (default: adam 4e-3, adadelta 1.0)")
    t.add_argument(
        "--weight-decay", type=float, help="decoupled weight decay of adam (default 0.05; adadelta 0: paper)"
    )
    t.add_argument(
        "--input-affine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the input BatchNorm learns a scale and shift (--no-input-affine: ~1.2x faster, ~0.2 points lower)",
    )
    t.add_argument("--gamma", type=float, default=0.7, help="adadelta: learning-rate decay per epoch")
    t.add_argument("--aux-grad", type=float, default=0.1, help="gradient scale of texture/background heads")
    t.add_argument("--seed", type=int, default=0, help="initialisation and shuffling seed")
    t.add_argument("--heads", type=_heads, default=HEADS, help="comma-separated heads of the ensemble")
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    t.add_argument(
        "--augment",
        choices=AUGMENTS,
        default="affine",
        help=f"affine: rotate (±{DEGREES:g}°), scale (±{SCALE * 100:g} %%) and shift (±{SHIFT:g} px)"
        " every training image; none: as they come",
    )
    t.add_argument(
        "--eval-every",
        type=int,
        default=1,
        help="evaluate the test set every N epochs and after the last; 0: last only",
    )
    t.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="bf16: autocast, weights stay fp32; auto: whichever trains faster on this CPU (measured, ~1.5 s)",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def _heads(text: str) -> tuple[str, ...]:
    return tuple(h.strip() for h in text.split(",") if h.strip())


def _client(args: argparse.Namespace):
    from cgn_client import CGNClient

    if not args.url:
        raise SystemExit("cgn-train-classifier: --url (or CGN_URL) is needed to pull generated samples")
    return CGNClient(args.url, api_key=args.api_key, timeout=300.0, max_retries=5)


def counterfactuals(args: argparse.Namespace) -> data.Counterfactuals | None:
    if args.source == "file":
        if not args.cf_file:
            raise SystemExit("cgn-train-classifier: --source file needs --cf-file")
        cf = data.Counterfactuals.load(args.cf_file)
        if 0 < args.cf_n < len(cf):
            cf = data.Counterfactuals(cf.images[: args.cf_n], cf.labels[: args.cf_n], cf.meta | {"n": args.cf_n})
        cf.meta = {"file": str(args.cf_file), **cf.meta}
        return cf
    if args.source == "shards":
        files = []
        for s in args.shards:
            path = Path(s)
            files += sorted([*path.glob("shard-*.npz"), *path.glob("shard-*.tar")]) if path.is_dir() else [path]
        if not files:
            raise SystemExit("cgn-train-classifier: --source shards needs --shards FILE|DIR with shard files")
        return data.from_shard_files(files)
    if args.cf_n <= 0 and args.batch_id is None:
        return None
    req = data.Request(args.cf_n, args.model, args.cf_seed, args.policy, args.cfs_per_shape)
    if args.cf_cache and Path(args.cf_cache).is_file():
        cached = data.Counterfactuals.load(args.cf_cache)
        if {k: cached.meta.get(k) for k in req.key()} == req.key() and args.source == "stream":
            log.info("reusing %d samples from %s (pulled from %s)", len(cached), args.cf_cache, cached.meta.get("url"))
            cached.meta["cache"] = str(args.cf_cache)
            return cached
        log.info("%s does not match this request; pulling again", args.cf_cache)
    with _client(args) as client:
        if args.source == "batch":
            cf = data.from_batch_job(client, None if args.batch_id else req, args.batch_id, args.shard_size)
        else:
            cf = data.stream(client, req, args.pull_batch_size, args.prefetch)
    log.info("pulled %d samples from %s in %.1f s", len(cf), cf.meta.get("url"), cf.meta.get("seconds", 0))
    if args.cf_cache:
        cf.save(args.cf_cache)
    return cf


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name in vars(args)})
    except ValueError as e:
        raise SystemExit(f"cgn-train-classifier: {e}") from None
    real = data.load_real(args.data)
    train_split, test_split = real.train.take(args.real_n), real.test.spread(args.test_n)
    cf = counterfactuals(args)
    pulled = time.perf_counter()
    images, labels = mix(train_split, cf)
    log.info(
        "%s: %d real + %d generated training images, %d test images, heads %s",
        real.variant,
        len(train_split),
        len(cf) if cf else 0,
        len(test_split),
        ",".join(cfg.heads),
    )

    def on_epoch(r: dict) -> None:
        tr, te = r["train_acc"], r["test_acc"]
        first = tr["shape"] if "shape" in tr else next(iter(tr.values()))
        tested = "" if te is None else " test " + " ".join(f"{h}={v:.3f}" for h, v in te.items())
        log.info("epoch %d: loss %.4f train %.4f%s %.0f img/s", r["epoch"], r["loss"], first, tested, r["images_per_s"])

    _, history = train(images, labels, test_split, cfg, on_epoch)
    last = history[-1]
    report = {
        "job": "cgn-train-classifier",
        "config": {k: v for k, v in vars(args).items() if k != "api_key"} | {"heads": list(cfg.heads)},
        "training": cfg.to_dict(),
        "dataset": real.variant,
        "data": {
            "real_file": str(args.data),
            "real_meta": real.meta,
            "real_train": len(train_split),
            "generated": len(cf) if cf else 0,
            "test": len(test_split),
        },
        "service": None if cf is None else {"url": cf.meta.get("url"), "model": cf.meta.get("model"), **cf.meta},
        "epochs": history,
        "final": {
            "train_acc": last["train_acc"],
            "test_acc": last["test_acc"],
            "test_acc_vs_digit": last["test_acc_vs_digit"],
        },
        "table1": {"train_acc": last["train_acc"].get("shape"), "test_acc": last["test_acc"].get("shape")},
        "wall_time_s": round(time.perf_counter() - t0, 3),
        "pull_time_s": round(pulled - t0, 3),
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def run_argv(argv: list[str]) -> dict[str, Any]:
    """run() from command-line arguments: what a process pool can call by name."""
    return run(parser().parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(name)s: %(message)s"
    )
    report = run(args)
    t = report["table1"]
    print(json.dumps({"dataset": report["dataset"], "out": args.out, **t, "wall_time_s": report["wall_time_s"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
