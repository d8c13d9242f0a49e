"""Service throughput, measured in one run against a real `cgn serve` on this machine.

1. images/s of CGNClient.sample_batch over HTTP (prefetching iterator) vs the raw in-process generator
   (cgn.pipeline.generate, the same code the server runs) at the same batch size. Target: >= 0.8.
2. requests/s of single POST /counterfactual calls from 32 concurrent clients vs one client calling
   sequentially. Dynamic micro-batching must give >= 3x.

Uses the built-in MNIST model given by --model (default mnist-wildlife) when installed; otherwise a
random-weight MNIST CGN of the same architecture (same compute; the bytes differ, the speed does not).

    python3 benchmarks/service_bench.py [--batch 32] [--seconds 10] [--model mnist-wildlife]
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from cpu_time import cpu_seconds  # noqa: E402


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


def raw_images_per_s(root: Path | None, name: str, batch: int, seconds: float, device: str) -> float:
    from cgn.pipeline import generate
    from cgn.sampling import plan
    from model_store import ModelStore

    loaded = ModelStore(root).load(name, device)

    classes = tuple(len(loaded.manifest.vocabulary[m]) for m in ("shape", "texture", "background"))
    done, start, k = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        p = plan(0, k * batch, (k + 1) * batch, classes)
        generate(loaded.model, p.labels, p.seeds)
        done += batch
        k += 1
    return done / (time.perf_counter() - start)


def http_images_per_s(url: str, batch: int, num_batches: int) -> float:
    """A fixed number of batches, so that no prefetched batch is made and not counted."""
    from cgn_client import CGNClient

    with CGNClient(url, timeout=300) as client:
        done, start = 0, time.perf_counter()
        for b in client.batches(batch, prefetch=2, seed=1, num_batches=num_batches):
            done += len(b)
        return done / (time.perf_counter() - start)


async def counterfactual_rps(url: str, concurrency: int, seconds: float) -> float:
    """`concurrency` keep-alive connections, each sending one /counterfactual after another; requests/s.

    A minimal HTTP/1.1 client on asyncio streams (like wrk or hey): the load generator shares the two
    cores with the server, so it must cost little CPU per request, the same for both modes.
    """
    host, port = url.removeprefix("http://").split(":")
    done = 0
    stop = time.perf_counter() + seconds

    async def one_client(c: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, int(port))
        i = 0
        try:
            while time.perf_counter() < stop:
                labels = {"shape": (c + i) % 10, "texture": i % 10, "bg": (3 * c) % 10}
                body = json.dumps(labels | {"seed": 100_000 * c + i})
                head = f"POST /counterfactual HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n{body}".encode())
                status = await reader.readline()
                if b" 200 " not in status:
                    raise RuntimeError(f"/counterfactual answered {status!r}")
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                png = await reader.readexactly(length)
                assert png[:4] == b"\x89PNG"
                done += 1
                i += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in range(concurrency)))
    return done / (time.perf_counter() - start)


def warm_up(url: str, batch: int) -> None:
    from cgn_client import CGNClient

    with CGNClient(url, timeout=300) as client:
        client.sample_batch(batch)


def metric_sum(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


class CpuMeter:
    """CPU seconds used by this process and the server process: a figure the machine's load barely moves."""

    def __init__(self, server_pid: int):
        self.pid = server_pid

    def read(self) -> tuple[float, float]:
        t = os.times()
        return cpu_seconds(self.pid), t.user + t.system


def measured(meter: CpuMeter, fn, *args) -> tuple[float, float, float]:
    """(fn's result: units per second, server CPU seconds, client CPU seconds) for one call of fn."""
    s0, c0 = meter.read()
    rate = fn(*args)
    s1, c1 = meter.read()
    return rate, s1 - s0, c1 - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist-wildlife")
    ap.add_argument("--batch", type=int, default=32, help="sample_batch size and raw generator batch size")
    ap.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=10.0, help="server CGN_MAX_WAIT_MS")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, here and in the server (CGN_THREADS)")
    ap.add_argument("--device", default="cpu", help="torch device, here and in the server (CGN_DEVICE)")
    ap.add_argument("--max-batches", type=int, default=10_000, help="most batches of the HTTP measurement")
    ap.add_argument("--server-log", type=Path, default=None, help="keep the server's log here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="cgn-bench-"))
    root, name, what = pick_model(args.model, tmp)
    print(f"model: {what} on {args.device}; torch threads {torch.get_num_threads()}; {os.cpu_count()} CPUs; "
          f"load average before {os.getloadavg()[0]:.1f}")  # fmt: skip

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
        "CGN_DEVICE": args.device,
    }
    if root is not None:
        env["CGN_MODEL_STORE"] = str(root)
    server = ServerProcess(env, args.server_log or tmp / "server.log").start()
    meter = CpuMeter(server.proc.pid)
    try:
        # the server idles while the raw generator runs in this process, and the other way round
        raw, _, raw_cpu = measured(meter, raw_images_per_s, root, name, args.batch, args.seconds, args.device)
        warm_up(server.url, args.batch)
        num_batches = max(4, min(args.max_batches, round(raw * args.seconds / args.batch)))
        http, http_srv, http_cli = measured(meter, http_images_per_s, server.url, args.batch, num_batches)
        n_raw, n_http = raw * args.seconds, num_batches * args.batch  # images made (raw: rate x its duration)
        print(f"sample_batch over HTTP: {http:8.1f} images/s  raw in-process generator: {raw:8.1f} images/s  "
              f"(batch {args.batch})  ratio {http / raw:.2f}  (target >= 0.8)")  # fmt: skip
        raw_ms, http_ms = 1000 * raw_cpu / n_raw, 1000 * (http_srv + http_cli) / n_http
        print(f"  CPU per image: HTTP {http_ms:.2f} ms (server + client)  raw {raw_ms:.2f} ms  "
              f"CPU ratio {raw_ms / http_ms:.2f}")  # fmt: skip

        asyncio.run(counterfactual_rps(server.url, 1, 1.0))  # warm-up
        seq, seq_srv, seq_cli = measured(meter, lambda: asyncio.run(counterfactual_rps(server.url, 1, args.seconds)))
        conc, conc_srv, conc_cli = measured(
            meter, lambda: asyncio.run(counterfactual_rps(server.url, args.concurrency, args.seconds))
        )
        metrics = httpx.get(f"{server.url}/metrics").text
        count, total = (metric_sum(metrics, f"cgn_microbatch_size_{kind}") for kind in ("count", "sum"))
        print(f"/counterfactual: {args.concurrency} concurrent clients {conc:7.1f} req/s  "
              f"sequential {seq:7.1f} req/s  ratio {conc / seq:.2f}  (target >= 3)  "
              f"mean micro-batch {total / max(count, 1):.1f} samples")  # fmt: skip
        seq_ms = 1000 * (seq_srv + seq_cli) / (seq * args.seconds)
        conc_ms = 1000 * (conc_srv + conc_cli) / (conc * args.seconds)
        print(f"  CPU per request: sequential {seq_ms:.2f} ms  concurrent {conc_ms:.2f} ms (server + client)  "
              f"CPU ratio {seq_ms / conc_ms:.2f}; server alone {1000 * seq_srv / (seq * args.seconds):.2f} vs "
              f"{1000 * conc_srv / (conc * args.seconds):.2f} ms")  # fmt: skip
        print(f"load average after {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
