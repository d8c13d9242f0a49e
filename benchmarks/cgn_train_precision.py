"""Training-step time of an MNIST CGN in fp32 and under bf16 autocast (`cgn train mnist --precision`):
a shape warm-up step (with and without the IMLE term) and a full step, two threads as the built-ins
were trained.

    python3 benchmarks/cgn_train_precision.py --dataset double-colored

The precisions alternate round by round on one trainer each, so a noisy machine slows both alike;
the ratio is the median over rounds of fp32 time / bf16 time. bf16 pays off only where oneDNN runs it
natively (AVX512-BF16 or AMX).
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cgn.mnist.train import TrainConfig, Trainer

PRECISIONS = ("fp32", "bf16")
STEPS = {"warm-up": dict(shape_imle=0.0), "warm-up + IMLE 2": dict(shape_imle=2.0), "full": dict(shape_imle=0.0)}


def ms_per_step(trainer: Trainer, kind: str, steps: int) -> float:
    trainer.step_no = 0 if kind.startswith("warm-up") else trainer.cfg.shape_warmup
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    return (time.perf_counter() - t0) / steps * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="double-colored", choices=["colored", "double-colored", "wildlife"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=15, help="steps per kind, precision and round")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}; {args.threads} threads; {args.dataset} preset (batch 32, warm-up batch 64)")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, overrides in STEPS.items():
            trainers = {
                prec: Trainer(TrainConfig.preset(args.dataset, precision=prec, limit=5000, **overrides), Path(tmp))
                for prec in PRECISIONS
            }
            for prec in PRECISIONS:
                ms_per_step(trainers[prec], kind, 3)  # warm-up
            times: dict[str, list[float]] = {prec: [] for prec in PRECISIONS}
            for _ in range(args.rounds):
                for prec in PRECISIONS:
                    times[prec].append(ms_per_step(trainers[prec], kind, args.steps))
            ratio = statistics.median(f / b for f, b in zip(times["fp32"], times["bf16"], strict=True))
            fp32, bf16 = (statistics.median(times[prec]) for prec in PRECISIONS)
            print(f"{kind:17s} fp32 {fp32:6.1f} ms  bf16 {bf16:6.1f} ms  bf16 is {ratio:.2f}x as fast")


if __name__ == "__main__":
    main()
