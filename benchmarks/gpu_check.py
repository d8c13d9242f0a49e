"""The GPU check: same bytes on CUDA however a sample is batched, and what the CUDA chunk size costs.

Run once per GPU lease (scripts/device_check.sh runs it with the other GPU benchmarks):

1. Bytes. Each built-in MNIST CGN and the full-size ImageNet CGN (random weights, fp32 and bf16):
   samples alone and inside batches (crossing chunk boundaries) against the same samples in one large
   batch, and the sha256 of a whole batch in a fresh process against this one's.
2. ImageNet rows per forward on CUDA (`cuda_forward_rows`): images/s at batch 64 and the latency of a
   lone request for several chunk sizes, bf16 and fp32.
3. cuDNN deterministic mode (what the service uses) against benchmark mode (autotuned), bf16.
4. MNIST on CUDA: images/s at batch 256 and 1024, lone-request latency, and CPU-vs-CUDA difference.

    python3 benchmarks/gpu_check.py [--json out.json]
"""

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from cgn.device import deterministic_cuda
from cgn.imagenet.model import ImagenetCGN, ImagenetCGNConfig
from cgn.pipeline import counterfactuals, generate
from model_store import ModelStore

MNIST = ("mnist-colored", "mnist-double-colored", "mnist-wildlife")
OUTPUTS = ("composite", "mask", "foreground", "background")
# The random ImageNet weights, made once and read by the child processes (a full-size init takes a while).
RANDOM_IMAGENET = Path(tempfile.gettempdir()) / "gpu_check_imagenet.safetensors"
DEVICE, SIZE = "cuda", "full"
TF32 = False  # the service turns TF32 off at load (cgn.device); the "tf32" section turns it back on after


def sync() -> None:
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def inputs(n: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, classes, (n, 3), generator=g), torch.randint(0, 2**62, (n, 3), generator=g)


def render(model, labels: torch.Tensor, seeds: torch.Tensor) -> dict[str, np.ndarray]:
    """The bytes the service serves (cgn.pipeline.generate); the timings below use the tensor-level
    `counterfactuals`, which leaves images on the GPU."""
    return generate(model, labels.numpy(), seeds.numpy(), OUTPUTS)


def digest(images: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in OUTPUTS:
        h.update(np.ascontiguousarray(images[k]).tobytes())
    return h.hexdigest()[:16]


def mnist(name: str, device: str):
    return ModelStore(None).load(name, device).model


def imagenet(dtype: str) -> ImagenetCGN:
    model = ImagenetCGN(ImagenetCGNConfig() if SIZE == "full" else ImagenetCGNConfig.tiny())
    if RANDOM_IMAGENET.is_file():
        model.load_state_dict(load_file(RANDOM_IMAGENET))
    else:
        save_file(model.init_random_(seed=0).state_dict(), RANDOM_IMAGENET)
    return model.optimize_for_inference(DEVICE, dtype)


def batch_independence(model, labels, seeds, pieces: list[tuple[int, int]]) -> list[str]:
    """Slices [a, b) rendered on their own that differ from the same rows of the whole batch."""
    whole = render(model, labels, seeds)
    bad = []
    for a, b in pieces:
        part = render(model, labels[a:b], seeds[a:b])
        for k in OUTPUTS:
            diff = np.abs(part[k].astype(np.int32) - whole[k][a:b].astype(np.int32))
            if diff.any():
                bad.append(f"[{a}:{b}] {k}: {int((diff > 0).sum())} values off, by up to {int(diff.max())}/255")
    return bad


def child_digest(kind: str, n: int) -> str:
    """sha256 of a batch rendered in a fresh process (kind: an MNIST name, or imagenet-fp32 / -bf16)."""
    cmd = [sys.executable, __file__, "--digest", kind, "--n", str(n), "--device", DEVICE, "--size", SIZE]
    cmd += ["--tf32"] if TF32 else []
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"child {kind} failed: {out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def build(kind: str):
    """The model as the service loads it (which turns TF32 off), then TF32 as the running section wants."""
    model = imagenet(kind.split("-")[1]) if kind.startswith("imagenet-") else mnist(kind, DEVICE)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = TF32
    return model


def classes(kind: str) -> int:
    return 1000 if kind.startswith("imagenet-") else 10


IMAGENET_PIECES = [(0, 1), (1, 2), (7, 8), (15, 16), (16, 17), (39, 40), (5, 21)]


def check_bytes(results: dict, kinds: tuple[str, ...] = (*MNIST, "imagenet-fp32", "imagenet-bf16")) -> None:
    mnist_pieces = [(0, 1), (1, 2), (255, 256), (256, 257), (599, 600), (100, 164), (200, 300)]
    cases = [(k, 40, IMAGENET_PIECES) if k.startswith("imagenet-") else (k, 600, mnist_pieces) for k in kinds]
    for kind, n, pieces in cases:
        model = build(kind)
        labels, seeds = inputs(n, classes(kind), seed=1)
        bad = batch_independence(model, labels, seeds, pieces)
        mine, other = digest(render(model, labels, seeds)), child_digest(kind, n)
        results["bytes"][kind] = {"rows": model.rows_per_forward(), "bad_slices": bad, "digest": mine, "other": other}
        print(f"bytes {kind:22s} rows {model.rows_per_forward():3d}: batch-independent "
              f"{'yes' if not bad else 'NO: ' + '; '.join(bad)}; a fresh process gives the same digest: "
              f"{'yes' if mine == other else 'NO'} ({mine} vs {other})", flush=True)  # fmt: skip
        del model


def check_bytes_tf32(results: dict) -> None:
    """The ImageNet CGN again with TF32 on (torch's default for cuDNN), which the service turns off."""
    global TF32
    TF32, sub = True, {"bytes": {}}
    try:
        check_bytes(sub, ("imagenet-fp32",))
    finally:
        TF32 = False
        deterministic_cuda()
    results["bytes_tf32_on"] = sub["bytes"]


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return out


def sweep_rows(results: dict) -> None:
    labels, seeds = inputs(64, 1000, seed=2)
    for dtype in ("bf16", "fp32"):
        model = imagenet(dtype)
        for rows in (2, 8, 16, 32, 64):
            model.cuda_forward_rows = rows
            counterfactuals(model, labels, seeds)  # warm-up of this shape
            batch = statistics.median(timed(lambda m=model: counterfactuals(m, labels, seeds), 3))
            lone = statistics.median(timed(lambda m=model: counterfactuals(m, labels[:1], seeds[:1]), 5))
            run = {"dtype": dtype, "rows": rows, "batch64_images_per_s": 64 / batch, "lone_ms": 1e3 * lone}
            results["rows"].append(run)
            print(f"imagenet {dtype} rows {rows:3d}: batch 64 {64 / batch:8.1f} images/s; "
                  f"lone request {1e3 * lone:7.1f} ms", flush=True)  # fmt: skip
        if dtype == "bf16":
            model.cuda_forward_rows = 64
            for mode in ("deterministic", "benchmark"):
                torch.backends.cudnn.benchmark = mode == "benchmark"
                torch.backends.cudnn.deterministic = mode != "benchmark"
                counterfactuals(model, labels, seeds)
                batch = statistics.median(timed(lambda m=model: counterfactuals(m, labels, seeds), 3))
                results["cudnn"][mode] = 64 / batch
                print(f"imagenet bf16 rows 64, cuDNN {mode:13s}: {64 / batch:8.1f} images/s", flush=True)
            deterministic_cuda()
        del model


def mnist_speed(results: dict) -> None:
    model = mnist("mnist-wildlife", DEVICE)
    cpu = mnist("mnist-wildlife", "cpu")
    for n in (256, 1024):
        labels, seeds = inputs(n, 10, seed=3)
        counterfactuals(model, labels, seeds)
        t = statistics.median(timed(lambda m=model, y=labels, s=seeds: counterfactuals(m, y, s), 5))
        results["mnist"][f"batch{n}_images_per_s"] = n / t
        print(f"mnist-wildlife CUDA batch {n:5d}: {n / t:10.0f} images/s", flush=True)
    labels, seeds = inputs(64, 10, seed=4)
    lone = statistics.median(timed(lambda: counterfactuals(model, labels[:1], seeds[:1]), 20))
    gpu = counterfactuals(model, labels, seeds)["composite"].cpu()
    diff = (gpu - counterfactuals(cpu, labels, seeds)["composite"]).abs().max().item()
    results["mnist"] |= {"lone_ms": 1e3 * lone, "max_abs_cuda_vs_cpu": diff}
    print(f"mnist-wildlife CUDA lone request {1e3 * lone:.2f} ms; composite max abs CUDA vs CPU {diff:.2e}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--digest", help=argparse.SUPPRESS)  # child mode: print one batch's sha256
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--tf32", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--skip", default="", help="comma list of bytes,tf32,rows,mnist")
    p.add_argument("--device", default="cuda", help="cpu: a smoke run of the script itself")
    p.add_argument("--size", choices=["full", "tiny"], default="full", help="ImageNet CGN size (tiny: smoke run)")
    args = p.parse_args()
    global DEVICE, SIZE, TF32
    DEVICE, SIZE, TF32 = args.device, args.size, args.tf32
    if args.digest:
        labels, seeds = inputs(args.n, classes(args.digest), seed=1)
        print(digest(render(build(args.digest), labels, seeds)))
        return
    card = torch.cuda.get_device_name() if DEVICE.startswith("cuda") else DEVICE
    print(f"device: {card}; torch {torch.__version__}", flush=True)
    RANDOM_IMAGENET.unlink(missing_ok=True)
    results: dict = {"device": card, "torch": torch.__version__}
    results |= {"bytes": {}, "rows": [], "cudnn": {}, "mnist": {}}
    sections = {"bytes": check_bytes, "tf32": check_bytes_tf32, "rows": sweep_rows, "mnist": mnist_speed}
    for name, fn in sections.items():
        if name in args.skip.split(","):
            continue
        try:
            fn(results)
        except Exception as exc:  # one failing section must not cost the lease the others
            results[f"{name}_error"] = repr(exc)
            print(f"section {name} failed: {exc!r}", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
