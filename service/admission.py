"""Admission control for generation requests: bound the time an admitted request spends inside the server,
and make the refused ones come back later rather than at once.

A queue-depth limit alone lets latency grow with the crowd: under 1,024 clients every request waits behind
hundreds, wherever it waits (the event loop, the runner). By Little's law, requests in the server = rate x
time in the server, so holding at most rate x CGN_MAX_QUEUE_DELAY_MS requests inside bounds their time,
whatever the cause. The rate is measured (completions per second). A refused request gets 503 before its
body is read, with a Retry-After that grows with the ratio of refusals to completions and shrinks when they stop,
so clients that honour it (the SDK does) spread their retries instead of hammering the event loop.
Everything here runs on the event loop: no locks.
"""

import math
import random
import time


class Admission:
    WINDOW_S = 1.0  # rates are counted per window
    MAX_RETRY_AFTER_S = 30

    def __init__(self, max_delay_s: float, min_inflight: int, base_retry_after_s: int):
        self.max_delay_s = max_delay_s
        self.min_inflight = min_inflight
        self.base_retry_after = max(1, base_retry_after_s)
        self.retry_after = self.base_retry_after
        self.inflight = 0
        self.rate = 0.0  # completions per second, smoothed over windows
        self._window_start = time.monotonic()
        self._completed = self._refused = 0
        self._rng = random.Random(0)

    @property
    def limit(self) -> int:
        """Requests allowed inside at once: the measured rate times half the delay they may take (the mean
        time inside is then half the bound, and the tail stays under it), at least a floor."""
        return max(self.min_inflight, math.ceil(self.rate * self.max_delay_s / 2))

    def try_enter(self) -> int | None:
        """None when admitted (call `leave` when answered), else the Retry-After seconds to send: spread over
        half to one and a half times the current value, so the refused do not all come back in one wave."""
        self._tick()
        if self.inflight >= self.limit:
            self._refused += 1
            # at least the time the service needs to answer everyone refused so far in this window
            wait = max(self.retry_after, math.ceil(self._refused / max(self.rate, 1.0)))
            return self._rng.randint(max(1, wait // 2), max(1, wait * 3 // 2))
        self.inflight += 1
        return None

    def leave(self) -> None:
        self.inflight -= 1
        self._completed += 1

    def _tick(self) -> None:
        now = time.monotonic()
        elapsed = now - self._window_start
        if elapsed < self.WINDOW_S:
            return
        rate = self._completed / elapsed
        self.rate = rate if self.rate == 0 else 0.7 * self.rate + 0.3 * rate
        if self._refused > self._completed:  # more coming back than getting through: spread them out
            spread = math.ceil(self.retry_after * self._refused / max(self._completed, 1))
            self.retry_after = min(max(spread, 2 * self.retry_after), self.MAX_RETRY_AFTER_S)
        elif self._refused == 0:
            self.retry_after = max(self.retry_after // 2, self.base_retry_after)
        self._window_start, self._completed, self._refused = now, 0, 0
