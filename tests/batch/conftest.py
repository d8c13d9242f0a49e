"""A whole batch stack per test: the shared redis-server fixture, an API process, worker processes."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cgn_client import CGNClient

from model_store import ModelStore
from service.batch.queue import BatchQueue, QueueConfig
from service.batch.render import render
from service.batch.shards import read_shard
from service.batch.spec import BatchSpec
from service.batch.store import resolve_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "service"))
from servers import free_port, stop_processes  # noqa: E402

VISIBILITY_S = 2.0
HEARTBEAT_S = 0.4


class Stack:
    def __init__(self, redis_server, model_root: Path, tmp: Path, **settings: str):
        self.redis = redis_server
        self.model_root = model_root
        self.tmp = tmp
        self.results = tmp / "results"
        self.logs = tmp / "logs"
        self.logs.mkdir(exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "CGN_REDIS_URL": redis_server.url,
            "CGN_MODEL_STORE": str(model_root),
            "CGN_RESULTS_DIR": str(self.results),
            "CGN_ASSETS_DIR": str(tmp / "assets"),
            "CGN_DEFAULT_MODEL": "mnist-test",
            "CGN_MODELS": "",
            "CGN_BATCH_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S),
            "CGN_BATCH_HEARTBEAT_S": str(HEARTBEAT_S),
            "CGN_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
        }
        self.env.update({f"CGN_{k.upper()}": str(v) for k, v in settings.items()})
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._n = 0
        config = QueueConfig(visibility_timeout_s=float(self.env["CGN_BATCH_VISIBILITY_TIMEOUT_S"]))
        self.queue = BatchQueue.from_url(redis_server.url, config)
        self._model = None

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen:
        self._n += 1
        log = open(self.logs / f"{self._n:02d}-{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        cmd = [sys.executable, "-m", "cgn_cli.main", *args]
        return subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=log, stderr=log)

    def start_api(self) -> None:
        """Spawn the API; `client()` waits for it (so workers can start meanwhile)."""
        self.api = self._spawn(["serve", "--port", str(self.port)], "api")

    def client(self) -> CGNClient:
        deadline = time.monotonic() + 240  # generous: the shared 2-core machine can be 10x oversubscribed
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                raise RuntimeError(f"API exited with {self.api.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return CGNClient(self.url)
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"API did not come up in 240s\n{self.log_tail()}")

    def kill_api(self) -> None:
        self.api.kill()
        self.api.wait()

    def start_worker(self, *extra: str) -> subprocess.Popen:
        p = self._spawn(["worker", "--log-level", "debug", *extra], "worker")
        self.workers.append(p)
        return p

    def log_tail(self, n: int = 4000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-n:]}" for p in sorted(self.logs.iterdir()))

    def close(self) -> None:
        stop_processes(self.api, *self.workers)

    # ---- observations ---------------------------------------------------------------------------
    def pending(self) -> int:
        try:
            return int(self.queue.r.xpending(self.queue.stream, self.queue.config.group)["pending"])
        except Exception:
            return 0

    def submit(self, n: int, **kw) -> str:
        """Submit straight to Redis, as the API would (for tests about workers, not HTTP)."""
        manifest = ModelStore(self.model_root).entry("mnist-test").manifest
        vocab = {m: list(v) for m, v in manifest.vocabulary.items()}
        spec = BatchSpec(model="mnist-test", n=n, results=resolve_url(self.results), vocabulary=vocab, **kw)
        return self.queue.submit(spec)

    def wait_state(self, job_id: str, timeout: float = 240) -> dict:
        return self.wait_for(
            lambda: (s := self.queue.status(job_id))["state"] in ("completed", "failed", "cancelled") and s,
            timeout,
            f"job {job_id} to end",
        )

    def holders(self) -> list[tuple[str, str]]:
        """(entry id, consumer) of every chunk in hand."""
        pending = self.queue.r.xpending_range(self.queue.stream, self.queue.config.group, "-", "+", 100)
        return [(p["message_id"].decode(), p["consumer"].decode()) for p in pending]

    def wait_for(self, predicate, timeout: float = 120, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}\n{self.log_tail()}")

    def model(self):
        if self._model is None:
            self._model = ModelStore(self.model_root).load("mnist-test").model
        return self._model

    def check(self, job_id: str) -> dict:
        """The job's shards against an uninterrupted in-process reference run: byte-identical, every sample
        once. Returns the status."""
        status = self.queue.status(job_id)
        spec, explicit = self.queue.spec(job_id)
        directory = Path(spec.results) / job_id
        on_disk = sorted(p.name for p in directory.iterdir() if p.name != "job.json")
        assert on_disk == sorted(spec.shard_name(k) for k in status["done_shards"]), "stray or missing shard files"
        keys = []
        for k in status["done_shards"]:
            data = (directory / spec.shard_name(k)).read_bytes()
            assert data == render(self.model(), spec, k, explicit), f"shard {k} differs from the reference run"
            keys.extend(read_shard(data, spec.format).keys.tolist())
        assert len(keys) == len(set(keys)), "duplicate sample keys"
        assert len(keys) == status["done"]
        if status["state"] == "completed":
            assert status["done"] == spec.n and sorted(keys) == list(range(spec.n))
            assert status["failed"] == 0 and not status["failed_shards"]
        return status


@pytest.fixture
def stack(redis_server, model_root, tmp_path) -> Iterator[Stack]:
    s = Stack(redis_server, model_root, tmp_path)
    yield s
    s.close()


@pytest.fixture
def make_stack(redis_server, model_root, tmp_path) -> Iterator:
    """A stack with extra CGN_* settings, e.g. make_stack(batch_max_n=100)."""
    made: list[Stack] = []

    def make(**settings: str) -> Stack:
        made.append(Stack(redis_server, model_root, tmp_path, **settings))
        return made[-1]

    yield make
    for s in made:
        s.close()
