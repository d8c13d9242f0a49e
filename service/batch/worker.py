"""A worker process: keeps models loaded, takes chunks, writes shards, settles them in Redis.

Crash safety comes from the queue (an unsettled chunk is redelivered after the visibility timeout);
this loop adds the lease heartbeat, a poison limit, retries through Redis outages, and a graceful
SIGTERM: stop taking chunks, finish the current one within `grace_s`, else hand it back at once.
"""

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
import torch

from model_store import ModelCache, ModelStore
from service.batch import cleanup
from service.batch.queue import ACTIVE, BatchQueue, Delivery
from service.batch.render import encode, shard_data
from service.batch.store import ResultStore
from service.settings import Settings

log = logging.getLogger("cgn.batch.worker")
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)


class Stop(Exception):
    """Raised between forward passes to abandon the current chunk (cancelled job or forced shutdown)."""


@dataclass
class Metrics:
    started_at: float = field(default_factory=time.time)
    chunks_done: int = 0
    samples_done: int = 0
    chunks_failed: int = 0  # attempts that raised; the chunk goes back to the queue
    chunks_poisoned: int = 0  # chunks given up after max_deliveries
    chunks_redelivered: int = 0  # chunks taken over from another (dead or released) delivery
    chunks_released: int = 0
    chunks_cancelled: int = 0
    redis_errors: int = 0
    busy_s: float = 0.0
    current: str | None = None

    def snapshot(self) -> dict[str, Any]:
        out = asdict(self)
        out["samples_per_s"] = round(self.samples_done / self.busy_s, 2) if self.busy_s else 0.0
        return out


class Worker:
    """Takes chunks from the queue and writes their shards; its knobs are the CGN_BATCH_* settings."""

    def __init__(self, queue: BatchQueue, models: ModelStore, settings: Settings, name: str | None = None):
        if queue.config.visibility_timeout_s < 2 * queue.config.heartbeat_s:
            raise ValueError("batch visibility timeout must be at least twice the heartbeat interval")
        self.queue, self.models, self.device = queue, models, settings.device
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.batch_size, self.grace_s = settings.batch_gen_batch_size, settings.batch_worker_grace_s
        self.sweep_every_s, self.max_models = settings.batch_sweep_s, settings.batch_worker_models
        self.metrics = Metrics()
        self._models = ModelCache(models, self.device, self.max_models)
        self._stores: dict[str, ResultStore] = {}
        self._current: Delivery | None = None
        self._stop_at: float | None = None  # when SIGTERM came
        self._release_now = False
        self._done = threading.Event()
        self._last_sweep = 0.0

    # ---- control --------------------------------------------------------------------------------
    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        if self._stop_at is None:
            self._stop_at = time.monotonic()
            log.info("worker %s: signal %d, finishing the current chunk (grace %.0fs)", self.name, signum, self.grace_s)
        else:
            self._release_now = True
            log.info("worker %s: second signal, handing the current chunk back", self.name)

    def stop(self) -> None:
        self._stop_at = self._stop_at or time.monotonic()

    @property
    def stopping(self) -> bool:
        return self._stop_at is not None

    # ---- main loop ------------------------------------------------------------------------------
    def run(self, idle_exit_s: float | None = None) -> None:
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        backoff, idle_since = 0.1, time.monotonic()
        log.info("worker %s: up on %s", self.name, self.device)
        try:
            while not self.stopping:
                try:
                    self._maybe_sweep()
                    d = self.queue.take(self.name, block_ms=500)
                    backoff = 0.1
                except REDIS_DOWN as exc:
                    self.metrics.redis_errors += 1
                    log.warning("worker %s: redis unavailable (%s); retrying in %.1fs", self.name, exc, backoff)
                    time.sleep(backoff)
                    backoff = min(2.0, backoff * 2)
                    continue
                if d is None:
                    if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                        break
                    continue
                self._handle(d)
                idle_since = time.monotonic()
        finally:
            self._done.set()
            beat.join(timeout=5)
            with contextlib.suppress(*REDIS_DOWN):
                self.queue.deregister(self.name)
            log.info("worker %s: stopped %s", self.name, self.metrics.snapshot())

    def _handle(self, d: Delivery) -> None:
        self._current = d
        self.metrics.current = f"{d.job_id}/{d.chunk}"
        if d.deliveries > 1:
            self.metrics.chunks_redelivered += 1
        t0 = time.monotonic()
        try:
            self._process(d)
        except Stop as why:
            self._abandon(d, str(why))
        except REDIS_DOWN as exc:
            # the lease lapses by itself; another worker (or this one) redoes the chunk later
            self.metrics.redis_errors += 1
            log.warning("worker %s: redis lost during %s: %s", self.name, self.metrics.current, exc)
        except Exception as exc:  # a bad chunk must not kill the worker: record, hand back, go on
            self.metrics.chunks_failed += 1
            log.error("worker %s: chunk %s failed: %s", self.name, self.metrics.current, exc)
            message = f"{type(exc).__name__}: {exc}"
            try:
                self.queue.record_error(d.job_id, d.chunk, self.name, message, d.deliveries)
                self.queue.release(self.name, d, count_attempt=True)
            except REDIS_DOWN:
                pass
            log.debug("%s", traceback.format_exc())
            time.sleep(0.2)
        finally:
            self.metrics.busy_s += time.monotonic() - t0
            self._current = None
            self.metrics.current = None

    def _abandon(self, d: Delivery, why: str) -> None:
        try:
            if why == "cancelled":
                self.metrics.chunks_cancelled += 1
                self.queue.drop(d)
            else:
                self.metrics.chunks_released += 1
                self.queue.release(self.name, d)
        except REDIS_DOWN:
            pass
        log.info("worker %s: chunk %s/%d abandoned (%s)", self.name, d.job_id, d.chunk, why)

    def _process(self, d: Delivery) -> None:
        got = self.queue.spec(d.job_id)
        if got is None:
            self.queue.drop(d)  # the job was deleted
            return
        spec, explicit = got
        start, stop = spec.chunk_range(d.chunk)
        if d.deliveries > self.queue.config.max_deliveries:
            msg = f"shard {d.chunk} given up after {d.deliveries - 1} deliveries (poison chunk)"
            self.queue.record_error(d.job_id, d.chunk, self.name, msg, d.deliveries)
            self.queue.settle(d, stop - start, ok=False)
            self.metrics.chunks_poisoned += 1
            return
        if self.queue.start(d.job_id) not in ACTIVE:
            self.queue.drop(d)
            return
        store = self._store(spec.results)
        relpath = f"{d.job_id}/{spec.shard_name(d.chunk)}"
        if d.deliveries == 1 or not store.exists(relpath):  # a redelivery may find the shard already written
            model = self._model(spec.model)
            shard = shard_data(model, spec, start, stop, explicit, self.batch_size, lambda: self._between(d))
            store.put(relpath, encode(spec, shard))
        self._settle(d, stop - start)
        self.metrics.chunks_done += 1
        self.metrics.samples_done += stop - start

    def _between(self, d: Delivery) -> None:
        if self._release_now or (self._stop_at is not None and time.monotonic() - self._stop_at > self.grace_s):
            raise Stop("shutdown")
        try:
            if self.queue.state(d.job_id) not in ACTIVE:
                raise Stop("cancelled")
        except REDIS_DOWN:
            pass  # keep generating; settling waits for Redis

    def _settle(self, d: Delivery, size: int) -> None:
        """Record completion, riding out a Redis restart; if Redis stays away the chunk is redone later."""
        deadline = time.monotonic() + max(60.0, 2 * self.queue.config.visibility_timeout_s)
        backoff = 0.1
        while True:
            try:
                self.queue.settle(d, size, ok=True)
                return
            except REDIS_DOWN:
                self.metrics.redis_errors += 1
                if time.monotonic() > deadline or self._release_now:
                    raise
                time.sleep(backoff)
                backoff = min(2.0, backoff * 2)

    def _model(self, name: str):
        return self._models.get(name).model

    def _store(self, url: str) -> ResultStore:
        if url not in self._stores:
            self._stores[url] = ResultStore(url)
        return self._stores[url]

    def _maybe_sweep(self) -> None:
        if time.monotonic() - self._last_sweep < self.sweep_every_s:
            return
        self._last_sweep = time.monotonic()
        try:
            cleanup.sweep(self.queue)
        except REDIS_DOWN:
            raise
        except Exception:  # a store that refuses a delete must not stop generation
            log.exception("worker %s: TTL sweep failed", self.name)

    def _heartbeat_loop(self) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "device": self.device}
        while True:
            try:
                d = self._current
                if d is not None:
                    self.queue.touch(self.name, d)
                state = "stopping" if self.stopping else ("busy" if d else "idle")
                self.queue.heartbeat(self.name, {**info, **self.metrics.snapshot(), "state": state})
            except REDIS_DOWN:
                pass
            except Exception:  # never let the heartbeat thread die silently
                log.exception("worker %s: heartbeat failed", self.name)
            if self._done.wait(self.queue.config.heartbeat_s):
                return


def configure_torch(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def serve_metrics(worker: Worker, port: int) -> None:
    """Prometheus text on http://0.0.0.0:port/metrics, read from the worker's live counters."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Collector:
        def collect(self):
            m = worker.metrics.snapshot()
            for key in ("chunks_done", "samples_done", "chunks_failed", "chunks_poisoned", "chunks_redelivered"):
                yield CounterMetricFamily(f"cgn_worker_{key}", key.replace("_", " "), value=m[key])
            yield CounterMetricFamily("cgn_worker_busy_seconds", "seconds spent on chunks", value=m["busy_s"])
            yield GaugeMetricFamily("cgn_worker_samples_per_second", "per busy second", value=m["samples_per_s"])
            yield GaugeMetricFamily("cgn_worker_busy", "1 while a chunk is in hand", value=int(bool(m["current"])))

    registry = CollectorRegistry()
    registry.register(Collector())
    start_http_server(port, registry=registry)
