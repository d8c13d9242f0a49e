"""The model owner: one thread per process and device runs every forward pass, in dynamic micro-batches.

Handlers never touch a model. They submit `Work` (labels and seeds of n samples plus what makes a
batch: model, outputs, interventions, truncation) and await its future. The owner thread takes the
oldest work, waits up to `max_wait_ms` for more work with the same `BatchKey`, runs them as one
batch and hands each request its rows. Samples are batch-independent in the core (per-sample
generators, eval mode, batch-of-1 padding), so a request gets the same bytes alone or in company.

The wait is adaptive: the HTTP layer tells the runner of each generation request whose body has arrived
(`incoming`), and the owner waits for company only while such requests are inside the server (being
parsed, or being answered: under load their clients come right back). A lone client never waits, a client
still sending its body is nobody's company, and concurrent ones fill the batch.

Forward passes go through `cgn.pipeline.generate` with the key's truncation as an argument, as the
batch worker's do, so a sample of a batch job has the same bytes as the same sample served here.
"""

import concurrent.futures
import contextlib
import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from cgn.pipeline import generate
from model_store import LoadedModel, ModelStore
from model_store.cache import ModelCache
from service.settings import Settings

log = logging.getLogger("cgn.service.runner")


def model_store(settings: Settings) -> ModelStore:
    """The store every service process reads: CGN_MODEL_STORE plus the built-ins."""
    return ModelStore(settings.model_store)


@dataclass(frozen=True)
class BatchKey:
    """Work with equal keys may share a forward pass."""

    model: str
    outputs: tuple[str, ...]
    interventions: tuple[tuple[str, str], ...] = ()  # (mask|foreground|background, asset digest)
    truncation: float | None = None
    kind: str = "sample"  # "sample": rows of generate(); anything else: work that brings its own `task`


@dataclass(eq=False)  # identity: the queue holds each work once
class Work:
    key: BatchKey
    labels: np.ndarray  # (n, 3) int64
    seeds: np.ndarray  # (n, 3) int64
    overrides: dict[str, torch.Tensor] = field(default_factory=dict)
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    # a computation of its own on the model (an interpolation) at the key's truncation, run on the owner thread
    task: Callable[[torch.nn.Module, float | None], dict[str, np.ndarray]] | None = None
    enqueued: float = field(default_factory=time.monotonic)
    done: int = 0  # rows generated so far: a large request runs a chunk at a time, between other requests
    parts: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def left(self) -> int:
        return self.n - self.done


@dataclass(eq=False)
class Slice:
    """Rows [start, stop) of one work in a micro-batch."""

    work: Work
    start: int
    stop: int


GATHER_POLL_S = 0.002  # while gathering a micro-batch the owner looks at the queue this often
INTERACTIVE_WINDOW_S = 1.0  # a small request this recent makes large ones run in short chunks


class QueueFull(RuntimeError):
    """No room: the queue is at its limit or the expected wait is over CGN_MAX_QUEUE_DELAY_MS."""

    def __init__(self, message: str, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _Request:
    """One generation request inside the HTTP layer: counted once its body is in, until it submits."""

    arrived = False
    submitted = False


_current: contextvars.ContextVar[_Request | None] = contextvars.ContextVar("cgn_request", default=None)


class Runner:
    """Owns the loaded models of one device and the thread that runs them."""

    def __init__(self, settings: Settings, on_batch: Callable[[str, int, int], None] | None = None):
        self.settings = settings
        self.max_batch = settings.max_batch_size
        self.max_wait = settings.max_wait_ms / 1000
        self.max_queue = settings.max_queue
        self.max_delay = settings.max_queue_delay_ms / 1000
        self.chunk_rows = min(settings.chunk_rows, self.max_batch)
        self._on_batch = on_batch  # (model, rows in the batch, queue depth after taking it)
        self._queue: deque[Work] = deque()
        self._cond = threading.Condition()
        # the models loaded at start-up never push each other out
        size = max(settings.model_cache_size, len(settings.preload()))
        self._models = ModelCache(model_store(settings), settings.device, size)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._unsubmitted = 0  # requests whose body is in and whose work is not submitted (or dropped) yet
        self._inflight = 0  # requests whose body is in and that are not answered yet
        self._idle = False  # the owner sleeps on an empty queue: only then does submit wake it
        self._queued_rows = 0  # rows not generated yet, over the queue and the batch running
        self._last_small = float("-inf")  # when the last request of at most a batch came in

    # --- models -------------------------------------------------------------------------------
    def loaded(self, name: str) -> LoadedModel | None:
        return self._models.peek(name)

    def names(self) -> list[str]:
        return self._models.names()

    def load(self, name: str) -> LoadedModel:
        """Blocking; call from a worker thread. Loads once per process (while in the cache)."""
        return self._models.get(name)

    # --- queue --------------------------------------------------------------------------------
    def depth(self) -> int:
        return len(self._queue)

    @contextlib.contextmanager
    def incoming(self) -> Iterator[Callable[[], None]]:
        """Around a request that will probably submit work; call the yielded `arrived()` once its body is in:
        from then on the owner may wait for its work."""
        request = _Request()

        def arrived() -> None:
            if not request.arrived:
                with self._cond:
                    request.arrived = True
                    self._unsubmitted += 1
                    self._inflight += 1

        previous = _current.set(request)
        try:
            yield arrived
        finally:
            _current.reset(previous)
            if request.arrived:
                with self._cond:
                    self._inflight -= 1
                    if not request.submitted:
                        self._unsubmitted -= 1

    def queue_delay(self) -> float:
        """How long the oldest waiting work has waited: the delay a request arriving now can expect."""
        oldest = self._queue[0] if self._queue else None  # read without the lock: a hint, not a promise
        return time.monotonic() - oldest.enqueued if oldest is not None else 0.0

    def submit(self, work: Work) -> concurrent.futures.Future:
        request = _current.get()
        with self._cond:
            if request is not None and request.arrived and not request.submitted:
                request.submitted = True
                self._unsubmitted -= 1
            if self._stopping:
                raise QueueFull("the runner is shutting down")
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"{len(self._queue)} requests are waiting for the model (limit {self.max_queue})")
            delay = self.queue_delay()
            if delay > 4 * self.max_delay:  # admission (service/admission.py) keeps it far below; a safety net
                raise QueueFull(f"work waits {delay:.2f} s for the model (limit {4 * self.max_delay:g} s)", delay)
            self._queue.append(work)
            self._queued_rows += work.n
            if work.n <= self.max_batch:
                self._last_small = time.monotonic()
            if self._idle:  # waking a gathering owner per request would cost a GIL hand-over each time
                self._cond.notify()
        return work.future

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"cgn-runner-{self.settings.device}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        for work in self._queue:
            if not work.future.done():
                work.future.set_exception(QueueFull("the runner stopped"))
        self._queue.clear()

    def _take(self) -> list[Slice] | None:
        """The oldest work (a chunk of CGN_CHUNK_ROWS rows, if it is larger than a batch) plus compatible work
        arriving within max_wait, up to max_batch rows. An unfinished large work goes to the back of the queue,
        so a request that arrives behind a large one waits for one chunk, not for all of it."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._idle = True
                self._cond.wait()
                self._idle = False
            if self._stopping:
                return None
            first = self._queue.popleft()
            # a large request runs in short chunks while small ones are about, so whoever arrives behind it
            # waits for one short chunk; with nobody else about, it runs in full batches (bulk throughput)
            interactive = time.monotonic() - self._last_small < INTERACTIVE_WINDOW_S
            chunk = self.chunk_rows if first.n > self.max_batch and interactive else self.max_batch
            take = first.left if first.task is not None else min(first.left, chunk)
            batch, rows = [Slice(first, first.done, first.done + take)], take
            if first.done + take < first.n:
                first.enqueued = time.monotonic()  # its turn again after the others: its wait starts anew
                self._queue.append(first)
            deadline = time.monotonic() + self.max_wait
            while rows < self.max_batch:
                for work in list(self._queue):
                    if work is not first and work.key == first.key and rows + work.left <= self.max_batch:
                        self._queue.remove(work)
                        batch.append(Slice(work, work.done, work.n))
                        rows += work.left
                remaining = deadline - time.monotonic()
                if rows >= self.max_batch or remaining <= 0 or not self._company_expected(len(batch)):
                    break  # full, waited long enough, or nobody else is on the way
                self._cond.wait(min(remaining, GATHER_POLL_S))
            return batch

    def _company_expected(self, taken: int) -> bool:
        """Requests are being parsed, or other clients are being answered (under load they come right back)."""
        return self._unsubmitted > 0 or self._inflight > taken + len(self._queue)

    def _loop(self) -> None:
        if self.settings.threads:
            torch.set_num_threads(self.settings.threads)
        while True:
            batch = self._take()
            if batch is None:
                return
            # a work's first slice starts it, or finds it cancelled
            live = [s for s in batch if s.start > 0 or s.work.future.set_running_or_notify_cancel()]
            error: BaseException | None = None
            try:
                results = self._run(live) if live else []
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests
                error, results = exc, []
            with self._cond:
                self._queued_rows -= sum(s.stop - s.start for s in batch)
            for s in batch:
                if s not in live:
                    self._drop(s, None)
                elif error is not None:
                    self._drop(s, error)
            for s, part in zip(live, results, strict=False):
                self._deliver(s, part)

    def _deliver(self, s: Slice, part: dict[str, np.ndarray]) -> None:
        work = s.work
        for k, v in part.items():
            work.parts.setdefault(k, []).append(v)
        work.done = s.stop
        if work.done == work.n:
            work.future.set_result({k: np.concatenate(v) if len(v) > 1 else v[0] for k, v in work.parts.items()})

    def _drop(self, s: Slice, error: BaseException | None) -> None:
        """A cancelled or failed work leaves the queue with the rows it had left."""
        with self._cond:
            if s.work in self._queue:
                self._queue.remove(s.work)
                self._queued_rows -= s.work.n - s.stop
        if error is not None and not s.work.future.done():
            s.work.future.set_exception(error)

    def _run(self, batch: list[Slice]) -> list[dict[str, np.ndarray]]:
        """One forward pass over the slices (same key); each slice gets its rows back."""
        key = batch[0].work.key
        loaded = self.load(key.model)
        if self._on_batch:
            self._on_batch(key.model, sum(s.stop - s.start for s in batch), len(self._queue))
        if key.kind != "sample":  # each work runs its own task (same kind, same truncation)
            return [s.work.task(loaded.model, key.truncation) for s in batch]
        labels = np.concatenate([s.work.labels[s.start : s.stop] for s in batch])
        seeds = np.concatenate([s.work.seeds[s.start : s.stop] for s in batch])
        out = generate(
            loaded.model, labels, seeds, key.outputs, truncation=key.truncation, overrides=batch[0].work.overrides
        )
        results, offset = [], 0
        for s in batch:
            n = s.stop - s.start
            results.append({k: v[offset : offset + n] for k, v in out.items()})
            offset += n
        return results
