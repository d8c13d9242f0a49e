"""Batch-queue throughput: samples/s of one MNIST job with 1 and 2 workers, against raw in-process generation.

    python3 benchmarks/batch_bench.py                 # 20,000 samples, chunks (shards) of 1,000
    python3 benchmarks/batch_bench.py --n 2000        # a quick look

Starts its own redis-server (append-only file, fsync always, as docker-compose.yml) on a free port,
`cgn worker` processes with one torch thread each, and times submit -> completed once the workers
are up (process start-up excluded). "raw" is this process generating the same chunks with the same
thread count, without queue, encoding or writing; it runs first and last, so load drift on a shared
machine shows. Prints the ratios measured in this run.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cpu_time import cpu_seconds  # noqa: E402

from cgn.mnist.model import MnistCGN, MnistCGNConfig  # noqa: E402
from cgn.pipeline import generate  # noqa: E402
from model_store import Manifest, ModelStore, save_model  # noqa: E402
from service.batch.queue import BatchQueue, QueueConfig  # noqa: E402
from service.batch.spec import BatchSpec, samples  # noqa: E402
from service.batch.store import resolve_url  # noqa: E402

BUILTIN = "mnist-wildlife"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_store(tmp: Path) -> tuple[ModelStore, str, str]:
    """The built-in MNIST CGN when installed, else a random-weight one of the same architecture (same cost)."""
    store = ModelStore(tmp / "models")
    if any(e.name == BUILTIN and e.installed for e in store.entries()):
        return store, BUILTIN, f"built-in {BUILTIN}"
    torch.manual_seed(0)
    model = MnistCGN(MnistCGNConfig())
    vocab = {m: [str(i) for i in range(10)] for m in ("shape", "texture", "background")}
    manifest = Manifest("mnist-bench", "mnist-cgn", model.config.to_dict(), 32, vocab, description="benchmark")
    save_model(tmp / "models", manifest, model.state_dict())
    return store, "mnist-bench", "random-weight MNIST CGN (the built-in ones were not installed yet)"


def start_redis(tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    (tmp / "redis").mkdir()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp / "redis"), "--save", ""]
    proc = subprocess.Popen(args + ["--appendonly", "yes", "--appendfsync", "always"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    q = BatchQueue.from_url(url)
    for _ in range(100):
        try:
            q.r.ping()
            return proc, url
        except Exception:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def raw(store: ModelStore, spec: BatchSpec, batch_size: int) -> tuple[float, float]:
    """In-process generation of the same chunks, same batch size and threads, nothing else.
    -> (samples/s, CPU ms per sample)"""
    model = store.load(spec.model).model
    c0 = time.process_time()
    t0 = time.perf_counter()
    for k in range(spec.num_chunks):
        start, stop = spec.chunk_range(k)
        p = samples(spec, start, stop)
        for b in range(0, len(p.keys), batch_size):
            generate(model, p.labels[b : b + batch_size], p.seeds[b : b + batch_size], spec.outputs)
    return spec.n / (time.perf_counter() - t0), 1000 * (time.process_time() - c0) / spec.n


def queued(url: str, env: dict, spec: BatchSpec, workers: int, tmp: Path) -> tuple[float, float, list[dict]]:
    """-> (samples/s, worker CPU ms per sample, per-worker metrics)"""
    q = BatchQueue.from_url(url, QueueConfig(visibility_timeout_s=120, heartbeat_s=5))
    q.r.flushdb()
    cmd = [sys.executable, "-m", "cgn_cli.main", "worker", "--threads", "1", "--log-level", "warning"]
    procs = [subprocess.Popen(cmd, env=env, cwd=ROOT) for _ in range(workers)]
    try:
        # wait until every worker is up (it heartbeats at start) and has loaded the model (a 1-sample warm-up job)
        while len(q.workers()) < workers:
            time.sleep(0.1)
        warm = q.submit(BatchSpec(**{**spec.__dict__, "n": workers, "shard_size": 1}))
        while q.status(warm)["state"] != "completed":
            time.sleep(0.05)
        c0 = sum(cpu_seconds(p.pid) for p in procs)
        t0 = time.perf_counter()
        job = q.submit(spec)
        while q.status(job)["state"] not in ("completed", "failed", "cancelled"):
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        cpu_ms = 1000 * (sum(cpu_seconds(p.pid) for p in procs) - c0) / spec.n
        status = q.status(job)
        assert status["state"] == "completed" and status["done"] == spec.n, status
        time.sleep(1.2 * 5)  # one more heartbeat carries the final per-worker metrics
        return spec.n / elapsed, cpu_ms, q.workers()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--chunk", type=int, default=1000, help="samples per chunk (= per shard)")
    ap.add_argument("--batch-size", type=int, default=256, help="samples per forward pass")
    ap.add_argument("--format", default="npz", choices=["npz", "wds"])
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="cgn-batch-bench-"))
    redis_proc, url = start_redis(tmp)
    try:
        store, name, described = model_store(tmp)
        manifest = store.entry(name).manifest
        spec = BatchSpec(
            model=name,
            n=args.n,
            seed=1,
            shard_size=args.chunk,
            format=args.format,
            results=resolve_url(tmp / "results"),
            vocabulary={m: list(v) for m, v in manifest.vocabulary.items()},
        )
        env = {
            **os.environ,
            "CGN_REDIS_URL": url,
            "CGN_MODEL_STORE": str(tmp / "models"),
            "CGN_BATCH_GEN_BATCH_SIZE": str(args.batch_size),
            "OMP_NUM_THREADS": "1",
        }
        print(f"model: {described}; n={args.n}, chunk={args.chunk}, batch={args.batch_size}, format={args.format}")
        print(f"machine: {os.cpu_count()} cores, load average before: {os.getloadavg()}")
        r, r_cpu = raw(store, spec, args.batch_size)
        print(f"raw in-process (1 thread):  {r:8.1f} samples/s   {r_cpu:.2f} CPU ms/sample")
        one, one_cpu, w1 = queued(url, env, spec, 1, tmp)
        print(
            f"queue, 1 worker:            {one:8.1f} samples/s   {one_cpu:.2f} CPU ms/sample   ({one / r:.2f} of raw)"
        )
        two, two_cpu, w2 = queued(url, env, spec, 2, tmp)
        print(
            f"queue, 2 workers:           {two:8.1f} samples/s   {two_cpu:.2f} CPU ms/sample   ({two / one:.2f}x of 1)"
        )
        r2, r2_cpu = raw(store, spec, args.batch_size)  # again: on a shared machine the load drifts during a run
        print(f"raw in-process, again:      {r2:8.1f} samples/s   {r2_cpu:.2f} CPU ms/sample   (drift {r2 / r:.2f}x)")
        mean_raw, mean_raw_cpu = (r + r2) / 2, (r_cpu + r2_cpu) / 2
        print(f"queue (1 worker) vs mean raw: {one / mean_raw:.2f} by wall clock, {mean_raw_cpu / one_cpu:.2f} by CPU")
        per = [round(w.get("samples_per_s", 0), 1) for w in w2]
        print(f"per-worker busy samples/s with 2 workers: {per}")
        print(f"load average after: {os.getloadavg()}")
        result = {
            "n": args.n,
            "chunk": args.chunk,
            "batch_size": args.batch_size,
            "format": args.format,
            "model": described,
            "raw_samples_per_s": round(r, 1),
            "raw_again_samples_per_s": round(r2, 1),
            "raw_cpu_ms_per_sample": round(mean_raw_cpu, 3),
            "queue_1_worker_samples_per_s": round(one, 1),
            "queue_1_worker_cpu_ms_per_sample": round(one_cpu, 3),
            "queue_2_workers_samples_per_s": round(two, 1),
            "queue_2_workers_cpu_ms_per_sample": round(two_cpu, 3),
            "queue_vs_mean_raw_wall": round(one / mean_raw, 3),
            "queue_vs_raw_cpu": round(mean_raw_cpu / one_cpu, 3),
            "two_vs_one_worker": round(two / one, 3),
            "loadavg_after": os.getloadavg(),
        }
        print(json.dumps(result))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    finally:
        redis_proc.terminate()
        redis_proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
