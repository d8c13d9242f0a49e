"""Where a CGN's counterfactuals lose accuracy against perfect ones: its masks, or its colors/textures.

    python3 benchmarks/mask_gap.py                      # double-colored, ~10 min on 2 cores

Four training sets of the same size, from the same sample plan (stream seed 0, labels uniform and
independent per mechanism, as the Table 1 benchmark pulls them from the service):
  cgn          the CGN's counterfactuals;
  cgn-masks    the CGN's masks under the dataset's true colors/textures for the same labels;
  real-shapes  real training digits (not among the real images the job also gets) under the CGN's
               foregrounds and backgrounds;
  true         real digits under true colors/textures: what a perfect CGN would give.
Each is mixed with the first --real-n real training images and fed to cgn-train-classifier with one
recipe; the shape head's test accuracy per set says which mechanism costs what. `--sets cgn-masks`
builds and trains on one set only: the shape-only proxy of docs/results.md (a model whose textures are untrained).
"""

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "jobs" / "classifier"))
sys.path.insert(0, str(ROOT / "scripts"))

from cgn_classifier import cli as job  # noqa: E402
from cgn_classifier.data import Counterfactuals  # noqa: E402
from export_mnist_variant import export  # noqa: E402

from cgn.compose import compose  # noqa: E402
from cgn.mnist import datasets  # noqa: E402
from cgn.mnist.digits import binary_digits, load_mnist  # noqa: E402
from cgn.pipeline import counterfactuals  # noqa: E402
from cgn.sampling import plan  # noqa: E402
from model_store.store import ModelStore  # noqa: E402

SETS = ("cgn", "cgn-masks", "real-shapes", "true")


def mechanisms(
    model, labels: np.ndarray, seeds: np.ndarray, outputs: tuple[str, ...], chunk: int = 4096
) -> dict[str, torch.Tensor]:
    parts = [
        counterfactuals(model, labels[i : i + chunk], seeds[i : i + chunk], outputs)
        for i in range(0, len(labels), chunk)
    ]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def training_sets(
    dataset: str, model, n: int, real_n: int, out: Path, chosen: tuple[str, ...] = SETS
) -> dict[str, Path]:
    """Builds and saves the `chosen` sets only; each set's bytes do not depend on which others are chosen."""
    if real_n + n > 60000:
        raise SystemExit("--real-n + --n must stay within the 60,000 training digits")
    p = plan(0, 0, n, model.num_classes, "uniform")
    textured = {"cgn", "real-shapes"} & set(chosen)
    m = mechanisms(model, p.labels, p.seeds, ("mask", "foreground", "background") if textured else ("mask",))
    raw, digit_labels = load_mnist("train")
    digits, digit_y = binary_digits(raw[-n:]), digit_labels[-n:]
    tex, bg = torch.from_numpy(p.labels[:, 1]), torch.from_numpy(p.labels[:, 2])
    gen = torch.Generator().manual_seed(5)
    images = {}
    if "cgn" in chosen:
        images["cgn"] = compose(m["mask"], m["foreground"], m["background"])
    if {"cgn-masks", "true"} & set(chosen):  # "true" draws its colors from `gen` after these
        images["cgn-masks"] = datasets.make_images(dataset, m["mask"], tex, bg, gen)
    if "real-shapes" in chosen:
        images["real-shapes"] = compose(digits, m["foreground"], m["background"])
    if "true" in chosen:
        images["true"] = datasets.make_images(dataset, digits, tex, bg, gen)
    paths = {}
    for name in (s for s in SETS if s in chosen):
        shape = p.labels[:, 0] if name.startswith("cgn") else digit_y
        labels = np.stack([shape, p.labels[:, 1], p.labels[:, 2]], 1).astype(np.int64)
        meta = {"set": name, "dataset": dataset, "n": n}
        x = datasets.to_uint8(images[name])
        paths[name] = Counterfactuals(x, labels, meta).save(out / f"{dataset}-{name}-n{n}.npz")
    return paths


def job_argv(real: Path, cf: Path, n: int, report: Path, epochs: int, extra: list[str]) -> list[str]:
    argv = ["--data", str(real), "--source", "file", "--cf-file", str(cf), "--cf-n", str(n)]
    return argv + ["--threads", "1", "--epochs", str(epochs), "--out", str(report), "-q", *extra]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="double-colored", choices=datasets.VARIANTS)
    p.add_argument("--model", help="model name (default: mnist-<dataset>)")
    p.add_argument("--model-store", help="a model-store root that shadows the built-ins")
    p.add_argument("--n", type=int, default=50000, help="generated training images per set")
    p.add_argument("--real-n", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--job-args", default="", help="more cgn-train-classifier options ('--augment none')")
    p.add_argument("--sets", default=",".join(SETS), help=f"training sets to train on, of {', '.join(SETS)}")
    p.add_argument("--jobs", type=int, default=2, help="classifier runs at a time, one thread each")
    p.add_argument("--work", type=Path, default=ROOT / "var" / "mask-gap")
    args = p.parse_args(argv)
    chosen = tuple(args.sets.split(","))
    if unknown := set(chosen) - set(SETS):
        p.error(f"--sets: unknown {', '.join(sorted(unknown))}; choose from {', '.join(SETS)}")
    t0 = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    model = ModelStore(args.model_store).load(args.model or f"mnist-{args.dataset}").model.eval()
    real = export(args.dataset, args.work / f"{args.dataset}-real{args.real_n}.npz", args.real_n, None, None)
    sets = training_sets(args.dataset, model, args.n, args.real_n, args.work, chosen)
    print(f"built {len(sets)} training sets of {args.n} in {time.perf_counter() - t0:.0f} s", flush=True)
    extra = args.job_args.split()
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {
            name: pool.submit(
                job.run_argv, job_argv(real, path, args.n, args.work / f"report-{name}.json", args.epochs, extra)
            )
            for name, path in sets.items()
        }
        reports = {name: f.result() for name, f in futures.items()}
    print(f"\n{args.dataset}, {args.n} generated + {args.real_n} real, {args.epochs} epochs {args.job_args}".rstrip())
    print("| training set | shape head, test % per epoch |\n| --- | --- |")
    for name in reports:
        accs = [f"{100 * e['test_acc']['shape']:.2f}" for e in reports[name]["epochs"]]
        print(f"| {name} | {', '.join(accs)} |")
    print(f"\n{time.perf_counter() - t0:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
