"""The one retry policy of the SDK: which failures are retried, how long to wait, when to give up.

Pure (no I/O, no sleeping): the sync and async transports ask it what to do and do the sleeping.
"""

import email.utils
import random
import time
from dataclasses import dataclass

import httpx

# The server refused the request before doing anything (rate limit, full queue, not ready): always safe.
RETRY_STATUSES = frozenset({429, 503})
# A proxy in front of the server failed; the request may have run: retried for idempotent requests only.
RETRY_STATUSES_IDEMPOTENT = frozenset({502, 504})
# Transport errors raised before any byte of the request left: safe for every request.
UNSENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def parse_retry_after(value: str | None) -> float | None:
    """A Retry-After header (delay seconds or an HTTP date) in seconds from now; None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter, honouring the server's Retry-After.

    Retried: 429 and 503 (any request); 502, 504, timeouts and connection errors (idempotent requests; a
    request that never left, e.g. connection refused, is retried whatever its method). At most
    `max_retries` retries; the delay before retry k (0-based) is the server's Retry-After capped at
    `max_retry_after`, else `min(backoff * 2**k, max_backoff)` times a jitter factor in [1 - jitter, 1].

    A wait riding out an outage (see `Attempts`) keeps retrying past `max_retries`; those extra retries
    wait the server's Retry-After, else at most `max_outage_backoff` seconds, so that the wait notices
    soon that the API is back.
    """

    max_retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    jitter: float = 0.25
    max_outage_backoff: float = 2.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if min(self.backoff, self.max_backoff, self.max_retry_after, self.max_outage_backoff) < 0:
            raise ValueError("backoff, max_backoff, max_retry_after and max_outage_backoff must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")

    def retries_status(self, status_code: int, idempotent: bool) -> bool:
        return status_code in RETRY_STATUSES or (idempotent and status_code in RETRY_STATUSES_IDEMPOTENT)

    def retries_error(self, exc: Exception, idempotent: bool) -> bool:
        return isinstance(exc, httpx.TransportError) and (idempotent or isinstance(exc, UNSENT_ERRORS))

    def delay(self, retry: int, retry_after: str | None = None, outage: bool = False) -> float:
        """Seconds to wait before retry number `retry` (0-based), given the response's Retry-After header;
        `outage`: a retry past max_retries of a request riding out an outage."""
        after = parse_retry_after(retry_after)
        if after is not None:
            return min(after, self.max_retry_after)
        cap = min(self.max_backoff, self.max_outage_backoff) if outage else self.max_backoff
        return min(self.backoff * 2 ** min(retry, 60), cap) * (1 - self.jitter * random.random())
