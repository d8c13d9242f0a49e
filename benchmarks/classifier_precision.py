"""Training speed of the Table 1 classifier (the invariant ensemble) in fp32 and bf16 autocast, one thread.

    python3 benchmarks/classifier_precision.py

The two precisions alternate round by round on the same batches, so a noisy machine slows both alike;
the ratio is the median over rounds. bf16 can pay off only where oneDNN runs it natively (AVX512-BF16 or
AMX, `native_bf16()`), and not everywhere there; the job's `--precision auto` makes a short version of
this measurement (`faster_precision`).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jobs" / "classifier"))

from cgn_classifier.model import InvariantEnsemble  # noqa: E402
from cgn_classifier.train import TrainConfig, native_bf16, train_step  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def random_batches(batch_size: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`steps` uint8 image batches with (N, 3) labels, the same on every call."""
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, generator=g),
         torch.randint(0, 10, (batch_size, 3), generator=g))
        for _ in range(steps)
    ]  # fmt: skip


def images_per_s(model: InvariantEnsemble, opt: torch.optim.Optimizer, batches: list, precision: str) -> float:
    t0 = time.perf_counter()
    for x, y in batches:
        train_step(model, opt, x, y, precision)
    return sum(len(x) for x, _ in batches) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=100, help="training steps per precision and round")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    args = p.parse_args()
    torch.set_num_threads(1)
    batches = random_batches(args.batch_size, args.steps)
    runs = {}
    for precision in PRECISIONS:
        torch.manual_seed(0)
        model = InvariantEnsemble().to(memory_format=torch.channels_last)
        runs[precision] = (model, torch.optim.Adam(model.parameters(), lr=1e-3))
        images_per_s(*runs[precision], batches[:5], precision)  # warm-up
    rates: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for _ in range(args.rounds):
        for precision in PRECISIONS:
            rates[precision].append(images_per_s(*runs[precision], batches, precision))
    print(f"native bf16: {native_bf16()}; torch {torch.__version__}; 1 thread; batch {args.batch_size}")
    for precision in PRECISIONS:
        print(f"{precision}: {statistics.median(rates[precision]):.0f} images/s (rounds: "
              + ", ".join(f"{r:.0f}" for r in rates[precision]) + ")")  # fmt: skip
    ratios = [b / f for f, b in zip(rates["fp32"], rates["bf16"], strict=True)]
    print(f"bf16 / fp32: {statistics.median(ratios):.2f}x (per round: {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
