"""Nearest x2 upsampling in the MNIST CGN at generation time: aten's nn.Upsample against the
broadcast copy of cgn.mnist.model.Upsample2x, measured in one run on the same weights.

images/s of the three mechanisms through the model's public API (the runner's chunking), 512
samples per pass, the two variants alternating; checks that both give the same bits and prints
the ratio. (Training runs aten's op either way: Upsample2x defers to it under autograd.)

    python3 benchmarks/upsample_bench.py [--threads 2] [--repeats 5] [--model mnist-double-colored]
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cgn.mnist.model import MnistCGN, Upsample2x  # noqa: E402
from cgn.sampling import plan  # noqa: E402


def swap(model: MnistCGN, aten: bool) -> None:
    for im in (model.shape_im, model.texture_im, model.background_im):
        for i, layer in enumerate(im):
            if isinstance(layer, Upsample2x | nn.Upsample):
                im[i] = nn.Upsample(scale_factor=2) if aten else Upsample2x()


def generate(model: MnistCGN, labels: torch.Tensor, seeds: torch.Tensor) -> list[torch.Tensor]:
    with torch.inference_mode():
        mask = model.shape(labels[:, 0], seeds[:, 0])["mask"]
        return [mask, model.texture(labels[:, 1], seeds[:, 1]), model.background(labels[:, 2], seeds[:, 2])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default="mnist-double-colored", help="built-in weights (random ones if absent)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        from model_store.store import ModelStore

        model = ModelStore().load(args.model).model
    except Exception as exc:  # noqa: BLE001 - the speed does not depend on the weights
        print(f"{args.model}: {exc}; random weights")
        model = MnistCGN()
    p = plan(0, 0, 512, 10)
    labels, seeds = torch.from_numpy(p.labels), torch.from_numpy(p.seeds)
    model.eval()
    outputs, seconds = {}, {True: [], False: []}
    for aten in (True, False):  # warm-up, and the bits of each variant
        swap(model, aten)
        outputs[aten] = generate(model, labels, seeds)
    same = all(torch.equal(a, b) for a, b in zip(outputs[True], outputs[False], strict=True))
    for _ in range(args.repeats):  # alternate, so drift on a noisy machine hits both alike
        for aten in (True, False):
            swap(model, aten)
            t = time.perf_counter()
            generate(model, labels, seeds)
            seconds[aten].append(time.perf_counter() - t)
    best = {aten: min(v) for aten, v in seconds.items()}
    print(f"same bits: {same}")
    print(
        f"generation, {args.threads} threads: nn.Upsample {512 / best[True]:.0f} images/s, "
        f"Upsample2x {512 / best[False]:.0f} images/s: {best[True] / best[False]:.2f}x"
    )


if __name__ == "__main__":
    main()
