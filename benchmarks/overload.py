"""Overload, measured in one run against a real `cgn serve` on this machine (loopback only, bounded in time).

1. goodput (200s per second) of 1,024 concurrent clients on POST /counterfactual for --seconds, against the
   rate of 64 clients; each client sends, waits for the answer and, on a 503, sleeps its Retry-After, as
   the SDK does. Targets: goodput >= 0.8x the 64-client rate, p99 latency of admitted requests <= 1 s,
   every refusal a 503 with Retry-After, GET /healthz p99 <= 100 ms throughout.
2. head of line: a /counterfactual sent while a /samples n=1024 runs answers within 3x its idle latency.

The load generator speaks HTTP/1.1 over raw asyncio streams (one keep-alive connection per client): an
HTTP library would spend more CPU per request than the server, and both share these cores.

    python3 benchmarks/overload.py [--clients 1024] [--base-clients 64] [--seconds 20] [--model mnist-wildlife]
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BODY = json.dumps({"shape": 3, "texture": 7, "bg": 1, "seed": 0}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive HTTP/1.1 connection: request -> (status, headers, body)."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        self.writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        data = await self.reader.readexactly(int(headers.get("content-length", 0)))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def client_loop(port: int, until: float, stats: dict) -> None:
    conn = Conn(port)
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            status, headers, _ = await conn.request("POST", "/counterfactual", BODY)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            conn.close()
            stats["errors"] += 1
            await asyncio.sleep(0.1)
            continue
        elapsed = time.perf_counter() - start
        if time.monotonic() > until:  # answered after the window: not part of it
            break
        stats["timeline"].append((time.monotonic(), status, int(headers.get("retry-after", 0))))
        if status == 200:
            stats["ok"].append(elapsed)
        elif status == 503:
            stats["refused"] += 1
            retry = headers.get("retry-after")
            if retry is None:
                stats["refused_without_retry_after"] += 1
            await asyncio.sleep(max(0.0, min(float(retry or 1), until - time.monotonic())))
        else:
            stats["other"][status] = stats["other"].get(status, 0) + 1
    conn.close()


def probe_health(port: int, seconds: float, out) -> None:
    """GET /healthz every 50 ms from a process of its own, so the load generator's own event loop does not
    add to what is measured."""
    latencies: list[float] = []
    until = time.monotonic() + seconds
    sock = None
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while not data.endswith(b"}"):
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("closed")
                data += chunk
            latencies.append(time.perf_counter() - start)
        except OSError:
            latencies.append(float("inf"))
            sock = None
        time.sleep(0.05)
    out.put(latencies)


async def load(port: int, clients: int, seconds: float) -> dict:
    stats: dict = {"ok": [], "refused": 0, "refused_without_retry_after": 0, "errors": 0, "other": {}, "timeline": []}
    queue: multiprocessing.Queue = multiprocessing.Queue()
    prober = multiprocessing.Process(target=probe_health, args=(port, seconds, queue))
    prober.start()
    until = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(*[client_loop(port, until, stats) for _ in range(clients)])
    wall = seconds  # answers after the window are not counted
    health = queue.get(timeout=60)
    prober.join()
    ok = np.array(stats["ok"]) if stats["ok"] else np.array([np.nan])
    per_2s = {}
    for t, status, retry in stats["timeline"]:
        b = per_2s.setdefault(int((t - started) // 2) * 2, [0, 0, 0])
        b[0 if status == 200 else 1] += 1
        b[2] = max(b[2], retry)
    return {
        "clients": clients,
        "goodput": len(stats["ok"]) / wall,
        "p50": float(np.percentile(ok, 50)),
        "p99": float(np.percentile(ok, 99)),
        "refused": stats["refused"],
        "refused_without_retry_after": stats["refused_without_retry_after"],
        "errors": stats["errors"],
        "other": stats["other"],
        "healthz_p99": float(np.percentile(health, 99)) if health else float("inf"),
        "healthz_max": max(health) if health else float("inf"),
        "timeline": per_2s,
    }


async def head_of_line(port: int) -> dict:
    conn, big = Conn(port), Conn(port)
    idle = []
    for _ in range(10):
        start = time.perf_counter()
        await conn.request("POST", "/counterfactual", BODY)
        idle.append(time.perf_counter() - start)
    samples = json.dumps({"n": 1024, "seed": 1}).encode()
    big_task = asyncio.create_task(big.request("POST", "/samples", samples))
    await asyncio.sleep(0.03)
    start = time.perf_counter()
    status, _, _ = await conn.request("POST", "/counterfactual", BODY)
    behind = time.perf_counter() - start
    big_status, _, _ = await big_task
    conn.close()
    big.close()
    return {"idle": float(np.median(idle)), "behind": behind, "status": (status, big_status)}


def serve(port: int, model: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "CGN_PORT": str(port),
        "CGN_HOST": "127.0.0.1",
        "CGN_DEFAULT_MODEL": model,
        "CGN_MAX_SAMPLES": "1024",
        "CGN_ASSETS_DIR": str(log.parent / "assets"),
        "CGN_LOG_LEVEL": "warning",
        "CGN_THREADS": os.environ.get("CGN_THREADS", "1"),  # one core for torch, one for HTTP (docs/service.md)
    }
    cgn = Path(sys.executable).parent / "cgn"
    proc = subprocess.Popen([str(cgn), "serve"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                if b" 200 " in s.recv(200):
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"cgn serve did not become ready:\n{log.read_text()[-2000:]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=1024)
    p.add_argument("--base-clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--base-seconds", type=float, default=10)
    p.add_argument("--model", default="mnist-wildlife")
    args = p.parse_args()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.clients)), hard))
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = serve(port, args.model, Path(tmp) / "server.log")
        try:
            asyncio.run(load(port, 8, 3))  # warm-up
            base = asyncio.run(load(port, args.base_clients, args.base_seconds))
            over = asyncio.run(load(port, args.clients, args.seconds))
            time.sleep(2)
            hol = asyncio.run(head_of_line(port))
        finally:
            proc.terminate()
            proc.wait(10)
    ratio = over["goodput"] / base["goodput"]
    for r in (base, over):
        print(
            f"{r['clients']:5d} clients: goodput {r['goodput']:7.1f} req/s, admitted p50 {r['p50'] * 1000:6.1f} ms "
            f"p99 {r['p99'] * 1000:6.1f} ms, refused {r['refused']} (without Retry-After "
            f"{r['refused_without_retry_after']}), errors {r['errors']}, other {r['other']}, /healthz p99 "
            f"{r['healthz_p99'] * 1000:.1f} ms (max {r['healthz_max'] * 1000:.1f})"
        )
    print("1024 clients, per 2 s [answered, refused, max Retry-After]:", over["timeline"])
    print(f"goodput ratio {args.clients}/{args.base_clients} clients: {ratio:.2f} (target >= 0.8)")
    print(f"admitted p99 under overload: {over['p99'] * 1000:.0f} ms (target <= 1000)")
    print(f"/healthz p99 under overload: {over['healthz_p99'] * 1000:.1f} ms (target <= 100)")
    print(
        f"head of line: /counterfactual idle {hol['idle'] * 1000:.1f} ms, behind /samples n=1024 "
        f"{hol['behind'] * 1000:.1f} ms: {hol['behind'] / hol['idle']:.2f}x idle (target <= 3), status {hol['status']}"
    )
    met = (
        ratio >= 0.8
        and over["p99"] <= 1.0
        and over["healthz_p99"] <= 0.1
        and over["refused_without_retry_after"] == 0
        and not over["other"]
        and hol["behind"] <= 3 * hol["idle"]
    )
    print("all targets met" if met else "some targets missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
