"""Service throughput, measured in one run against a real `cgn serve` on this machine.

1. images/s of CGNClient.sample_batch over HTTP (prefetching iterator) vs the raw in-process generator
   (service.runner.generate, the same code the server runs) at the same batch size. Target: >= 0.8.
2. requests/s of single POST /counterfactual calls from 32 concurrent clients vs one client calling
   sequentially. Dynamic micro-batching must give >= 3x.

Uses the built-in MNIST model given by --model (default mnist-wildlife) when installed; otherwise a
random-weight MNIST CGN of the same architecture (same compute; the bytes differ, the speed does not).

    python3 benchmarks/service_bench.py [--batch 32] [--seconds 10] [--model mnist-wildlife]
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def pick_model(name: str, tmp: Path) -> tuple[Path | None, str, str]:
    """(model-store root, model name, what it is)."""
    from model_store import ModelStore

    store = ModelStore(None)
    if any(e.name == name and e.installed for e in store.entries()):
        return None, name, f"built-in {name}"
    import torch

    from cgn.mnist.model import MnistCGN, MnistCGNConfig
    from model_store import Manifest, save_model

    torch.manual_seed(0)
    model = MnistCGN(MnistCGNConfig(init_type="normal", init_gain=0.2))
    vocabulary = {m: [f"{m}-{i}" for i in range(10)] for m in ("shape", "texture", "background")}
    manifest = Manifest("mnist-bench", "mnist-cgn", model.config.to_dict(), 32, vocabulary)
    save_model(tmp / "models", manifest, model.state_dict())
    return tmp / "models", "mnist-bench", f"random-weight MNIST CGN ({name} is not installed yet)"


def raw_images_per_s(root: Path | None, name: str, batch: int, seconds: float) -> float:
    from cgn.sampling import plan
    from service.runner import load_model
    from service.settings import Settings

    loaded = load_model(Settings(model_store=root), name)
    from service.runner import generate

    classes = tuple(len(loaded.manifest.vocabulary[m]) for m in ("shape", "texture", "background"))
    done, start, k = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        p = plan(0, k * batch, (k + 1) * batch, classes)
        generate(loaded, p.labels, p.seeds)
        done += batch
        k += 1
    return done / (time.perf_counter() - start)


def http_images_per_s(url: str, batch: int, seconds: float) -> float:
    from cgn_client import CGNClient

    with CGNClient(url, timeout=120) as client:
        client.sample_batch(batch)  # warm-up
        done, start = 0, time.perf_counter()
        for b in client.batches(batch, prefetch=2, seed=1):
            done += len(b)
            if time.perf_counter() - start >= seconds:
                break
        return done / (time.perf_counter() - start)


async def counterfactual_rps(url: str, concurrency: int, seconds: float) -> float:
    """Each client sends one /counterfactual after another (its own seed sequence); returns requests/s."""
    done = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def one_client(c: int) -> None:
            nonlocal done
            i = 0
            while time.perf_counter() < stop:
                body = {"shape": (c + i) % 10, "texture": i % 10, "bg": (3 * c) % 10, "seed": 100_000 * c + i}
                r = await http.post("/counterfactual", json=body)
                r.raise_for_status()
                done += 1
                i += 1

        start = time.perf_counter()
        await asyncio.gather(*(one_client(c) for c in range(concurrency)))
        return done / (time.perf_counter() - start)


def metric_sum(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist-wildlife")
    ap.add_argument("--batch", type=int, default=32, help="sample_batch size and raw generator batch size")
    ap.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=2.0, help="server CGN_MAX_WAIT_MS")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, here and in the server (CGN_THREADS)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    tmp = Path(tempfile.mkdtemp(prefix="cgn-bench-"))
    root, name, what = pick_model(args.model, tmp)
    print(f"model: {what}; torch threads {torch.get_num_threads()}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip

    sys.path.insert(0, str(REPO / "tests" / "service"))
    from servers import ServerProcess

    env = {
        "CGN_DEFAULT_MODEL": name,
        "CGN_ASSETS_DIR": str(tmp / "assets"),
        "CGN_MAX_BATCH_SIZE": str(args.batch),
        "CGN_MAX_WAIT_MS": str(args.max_wait_ms),
        "CGN_MAX_SAMPLES": str(max(args.batch, 1024)),
        "CGN_LOG_LEVEL": "warning",
        "CGN_THREADS": str(args.threads),
    }
    if root is not None:
        env["CGN_MODEL_STORE"] = str(root)
    server = ServerProcess(env, tmp / "server.log").start()
    try:
        # the server idles while the raw generator runs in this process, and the other way round
        raw = raw_images_per_s(root, name, args.batch, args.seconds)
        http = http_images_per_s(server.url, args.batch, args.seconds)
        print(f"sample_batch over HTTP: {http:8.1f} images/s  raw in-process generator: {raw:8.1f} images/s  "
              f"(batch {args.batch})  ratio {http / raw:.2f}  (target >= 0.8)")  # fmt: skip
        asyncio.run(counterfactual_rps(server.url, 1, 1.0))  # warm-up
        seq = asyncio.run(counterfactual_rps(server.url, 1, args.seconds))
        conc = asyncio.run(counterfactual_rps(server.url, args.concurrency, args.seconds))
        metrics = httpx.get(f"{server.url}/metrics").text
        count = sum(
            float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("cgn_microbatch_size_count")
        )
        total = sum(
            float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("cgn_microbatch_size_sum")
        )
        print(f"/counterfactual: {args.concurrency} concurrent clients {conc:7.1f} req/s  "
              f"sequential {seq:7.1f} req/s  ratio {conc / seq:.2f}  (target >= 3)  "
              f"mean micro-batch {total / max(count, 1):.1f} samples")  # fmt: skip
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
