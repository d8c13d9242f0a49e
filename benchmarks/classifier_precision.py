"""Training speed of the Table 1 classifier (the invariant ensemble) in fp32 and bf16 autocast, one thread.

    python3 benchmarks/classifier_precision.py

The two precisions alternate within every round (`step_seconds`, the measurement the job's
`--precision auto` makes in short), so a noisy machine slows both alike; the ratio is the median over
rounds. bf16 can pay off only where oneDNN runs it natively (AVX512-BF16 or AMX, `native_bf16()`), and
not on every such CPU.
"""

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jobs" / "classifier"))

from cgn_classifier.train import TrainConfig, native_bf16, step_seconds  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=100, help="training steps per precision and round")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    args = p.parse_args()
    torch.set_num_threads(1)
    seconds = step_seconds(args.batch_size, args.steps, args.rounds)
    rates = {p: [args.batch_size * args.steps / s for s in times] for p, times in seconds.items()}
    print(f"native bf16: {native_bf16()}; torch {torch.__version__}; 1 thread; batch {args.batch_size}")
    for precision, r in rates.items():
        print(f"{precision}: {statistics.median(r):.0f} images/s (rounds: " + ", ".join(f"{x:.0f}" for x in r) + ")")
    ratios = [b / f for f, b in zip(rates["fp32"], rates["bf16"], strict=True)]
    print(f"bf16 / fp32: {statistics.median(ratios):.2f}x (per round: {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
