"""Training-step time of the Table 1 classifier: the shipped backbone against the input BatchNorm
without its learnt scale and shift (`--no-input-affine`, the faster network) and against ReLU
before the max-pool, at batch 32 and 16, one thread, under the job's `--precision auto`.

    python3 benchmarks/classifier_step.py

Variants alternate round by round on the same batches, so a noisy machine slows all alike; each
ratio is the median over rounds of (variant's time / shipped time) for the same batch size.
- shipped: the input BatchNorm learns a scale and shift, so the backward pass also computes the first
  conv's input gradient (a transposed conv to 3 channels); max-pool then ReLU.
- no input affine: the input BatchNorm without them (`--no-input-affine`).
- + ReLU first: ReLU on the full 32x32 map, then max-pool (the same function, 4x the ReLU work).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jobs" / "classifier"))

from cgn_classifier.augment import random_affine  # noqa: E402
from cgn_classifier.model import InvariantEnsemble  # noqa: E402
from cgn_classifier.train import TrainConfig, train_step  # noqa: E402


def random_batches(batch_size: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`steps` uint8 image batches with (N, 3) labels, the same on every call."""
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, generator=g),
         torch.randint(0, 10, (batch_size, 3), generator=g))
        for _ in range(steps)
    ]  # fmt: skip


def variant(name: str) -> InvariantEnsemble:
    torch.manual_seed(0)
    model = InvariantEnsemble(input_affine=name != "no input affine")
    if name == "+ ReLU first":
        model.backbone[2], model.backbone[3] = model.backbone[3], model.backbone[2]
    return model.to(memory_format=torch.channels_last)


VARIANTS = ("shipped", "no input affine", "+ ReLU first")


def ms_per_step(model, opt, batches, precision: str, gen: torch.Generator) -> float:
    t0 = time.perf_counter()
    for x, y in batches:
        train_step(model, opt, x, y, precision, lambda v: random_affine(v, gen))
    return (time.perf_counter() - t0) / len(batches) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=60, help="training steps per variant, batch size and round")
    p.add_argument("--batch-sizes", default="32,16")
    args = p.parse_args()
    torch.set_num_threads(1)
    precision = TrainConfig().precision  # "auto": the faster precision on this CPU
    print(f"torch {torch.__version__}; 1 thread; precision {precision}; augmentation on")
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        batches = random_batches(bs, args.steps)
        runs = {}
        for name in VARIANTS:
            model = variant(name)
            runs[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-3))
            ms_per_step(*runs[name], batches[:5], precision, torch.Generator().manual_seed(1))  # warm-up
        times: dict[str, list[float]] = {n: [] for n in VARIANTS}
        for _ in range(args.rounds):
            for name in VARIANTS:
                times[name].append(ms_per_step(*runs[name], batches, precision, torch.Generator().manual_seed(1)))
        base = times["shipped"]
        for name in VARIANTS:
            ratio = statistics.median(t / b for t, b in zip(times[name], base, strict=True))
            per_run = statistics.median(times[name]) * 240_000 / bs / 1e3
            print(f"batch {bs:3d} {name:15s} {statistics.median(times[name]):6.2f} ms/step "
                  f"(~{per_run:4.0f} s per 60,000 x 4 epochs)  x{ratio:.2f} the shipped time")  # fmt: skip


if __name__ == "__main__":
    main()
