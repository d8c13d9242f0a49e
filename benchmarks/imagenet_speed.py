"""Counterfactuals per second of the full-size ImageNet CGN: batched (fp32 / bf16 / fp16) vs the official way.

The baseline is how the official repository generates data (imagenet/generate_data.py): one image at a
time, fp32, through the CGN's full forward (spectral norms recomputed every call, and it also runs the
pseudo ground-truth BigGAN and the U2-Net on the background: 4 BigGANs + 2 U2-Nets per image). Ours is
`cgn.pipeline.counterfactuals` on the inference model (3 BigGANs + 1 U2-Net per image, folded spectral
norms, per-sample seeded noise), over batch sizes and dtypes. Both run in the same process on the same
random weights, so the printed ratios are measured in one run. On CUDA it also reports peak memory per
batch size, the card, and the max / mean abs difference of bf16 / fp16 composites against fp32.

    python3 benchmarks/imagenet_speed.py                    # CPU: small batches, fp32 and bf16
    python3 benchmarks/imagenet_speed.py --batch-sizes 1,16,64,128 --dtypes fp32,bf16,fp16 --channels-last
"""

import argparse
import json
import platform
import time

import torch

from cgn.imagenet.model import ImagenetCGN, ImagenetCGNConfig
from cgn.pipeline import counterfactuals


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def inputs(n: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1234 + offset)
    labels = torch.randint(0, 1000, (n, 3), generator=g)
    seeds = torch.randint(0, 2**62, (n, 3), generator=g)
    return labels, seeds


class Clock:
    """Wall time, and this process's CPU time: on a shared CPU the second is the steadier measure."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


@torch.no_grad()
def official_way(model: ImagenetCGN, n: int, device: torch.device) -> tuple[float, float]:
    """Images/s of the official generation loop: batch 1, fp32, the CGN's whole forward per image."""
    labels, seeds = inputs(n, offset=99)
    trunc = model.config.truncation

    def one(i: int) -> torch.Tensor:
        u = model.noise([int(seeds[i, 0])]).to(device)  # the official CGN shares u across its IMs
        ys = model.one_hot(labels[i])
        model.biggan_GT(u, ys[0:1], trunc)
        premask = model.f_shape(u, ys[0:1], trunc)
        mask = model.u2net(premask).clamp(1e-4, 1 - 1e-4)
        foreground = model.f_text(u, ys[1:2], trunc)
        background = model.f_bg(u, ys[2:3], trunc)
        model.u2net(background)  # the background mask of the official forward
        return mask * foreground + (1 - mask) * background

    if device.type == "cuda":
        one(0)  # warm-up (CUDA context, cudnn autotuning); on the CPU a first call costs what the others do
    sync(device)
    with Clock() as c:
        for i in range(n):
            one(i)
        sync(device)
    return n / c.wall, n / c.cpu


def timed(
    model: ImagenetCGN, batch: int, repeats: int, device: torch.device, compiled: bool
) -> tuple[float, float, float | None]:
    labels, seeds = inputs(batch)
    if device.type == "cuda" or compiled:
        counterfactuals(model, labels, seeds)  # warm-up (cudnn.benchmark / compile happen here)
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with Clock() as c:
        for _ in range(repeats):
            counterfactuals(model, labels, seeds)
        sync(device)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return batch * repeats / c.wall, batch * repeats / c.cpu, peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", choices=["full", "tiny"], default="full", help="tiny: a smoke run of the script")
    p.add_argument("--batch-sizes", default=None, help="comma list (default: CPU 1,4; CUDA 1,8,32,64,128)")
    p.add_argument("--dtypes", default=None, help="comma list of fp32,bf16,fp16 (default: CPU fp32,bf16; CUDA all)")
    p.add_argument("--baseline-images", type=int, default=None, help="images of the official loop (CPU 2, CUDA 50)")
    p.add_argument("--repeats", type=int, default=None, help="timed batches per setting (CPU 1, CUDA 5)")
    p.add_argument("--diff-batch", type=int, default=4, help="samples compared fp32 vs half")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile each part (CUDA)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in (args.batch_sizes or ("1,8,32,64,128" if cuda else "1,4")).split(",")]
    dtypes = (args.dtypes or ("fp32,bf16,fp16" if cuda else "fp32,bf16")).split(",")
    baseline_n = args.baseline_images or (50 if cuda else 2)
    repeats = args.repeats or (5 if cuda else 1)
    card = torch.cuda.get_device_name(device) if cuda else f"CPU {platform.processor() or platform.machine()}"
    print(f"device: {card}; torch {torch.__version__}; threads {torch.get_num_threads()}")

    config = ImagenetCGNConfig(ground_truth=True) if args.size == "full" else ImagenetCGNConfig.tiny(ground_truth=True)
    model = ImagenetCGN(config).init_random_(seed=0).to(device).eval()
    base, base_cpu = official_way(model, baseline_n, device)
    print(
        f"baseline (official loop: batch 1, fp32, 4 BigGAN + 2 U2-Net per image): {base:.3f} images/s "
        f"({base_cpu:.3f} per CPU-second)"
    )

    del model.biggan_GT  # inference needs no pseudo ground truth
    results = {
        "device": card,
        "torch": torch.__version__,
        "size": args.size,
        "threads": torch.get_num_threads(),
        "baseline_images_per_s": base,
        "baseline_images_per_cpu_s": base_cpu,
        "runs": [],
    }
    composites: dict[str, torch.Tensor] = {}
    diff_labels, diff_seeds = inputs(args.diff_batch, offset=7)
    folded = False
    for dtype in dtypes:
        model.optimize_for_inference(device, dtype, args.channels_last, args.compile, fold_spectral_norm=not folded)
        folded = True
        composites[dtype] = counterfactuals(model, diff_labels, diff_seeds)["composite"].float().cpu()
        for batch in batch_sizes:
            rate, rate_cpu, peak = timed(model, batch, repeats, device, args.compile)
            run = {
                "dtype": dtype,
                "batch": batch,
                "images_per_s": rate,
                "ratio": rate / base,
                "images_per_cpu_s": rate_cpu,
                "ratio_cpu": rate_cpu / base_cpu,
                "peak_gib": peak,
            }
            results["runs"].append(run)
            mem = f", peak {peak:.2f} GiB" if peak is not None else ""
            cpu = "" if cuda else f" (per CPU-second: {rate_cpu:.3f} = {rate_cpu / base_cpu:.2f}x)"
            print(
                f"{dtype:5s} batch {batch:4d}: {rate:9.3f} images/s = {rate / base:6.2f}x baseline{cpu}{mem}",
                flush=True,
            )
    for dtype, comp in composites.items():
        if dtype != "fp32" and "fp32" in composites:
            d = (comp - composites["fp32"]).abs()
            results[f"{dtype}_vs_fp32"] = {"max_abs": d.max().item(), "mean_abs": d.mean().item()}
            print(
                f"{dtype} vs fp32 composite (in [0, 1], {args.diff_batch} samples): max abs {d.max():.4f}, "
                f"mean abs {d.mean():.5f}"
            )
    best = max(results["runs"], key=lambda r: r["images_per_s"])
    print(f"best: {best['dtype']} batch {best['batch']}: {best['ratio']:.2f}x the official loop's images/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
