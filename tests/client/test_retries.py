"""The one retry policy, seen from the wire: a scripted stdlib HTTP server stands in for an overloaded remote.

Both twins run the same attempts: the same requests, the same waits.
"""

import asyncio
import email.utils
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from cgn_client import (
    APIConnectionError,
    AsyncCGNClient,
    Call,
    CGNClient,
    InternalServerError,
    OverloadedError,
    RateLimitError,
    RetryPolicy,
    parse_retry_after,
)

OK = (200, {}, {"status": "ok"})
DROP = "drop"  # read the request, close the connection without an answer


class Scripted(http.server.ThreadingHTTPServer):
    """Answers request i with script[i] (the last entry once the script runs out); records what came."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script: list = [OK]
        self.seen: list[tuple[float, str, str, dict[str, str]]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def play(self, *script) -> "Scripted":
        self.script, self.seen = list(script), []
        return self

    def gaps(self) -> list[float]:
        return [b[0] - a[0] for a, b in zip(self.seen, self.seen[1:], strict=False)]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Scripted

    def log_message(self, *args) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        with self.server.lock:
            i = len(self.server.seen)
            self.server.seen.append((time.monotonic(), self.command, self.path, dict(self.headers)))
            step = self.server.script[min(i, len(self.server.script) - 1)]
        if step == DROP:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, headers, body = step
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer


@pytest.fixture(scope="module")
def remote() -> Iterator[Scripted]:
    srv = Scripted()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def busy(retry_after: str | None, status: int = 503) -> tuple:
    err = {"error": {"type": "overloaded", "message": "busy"}}
    return (status, {"Retry-After": retry_after} if retry_after is not None else {}, err)


def sync_health(url: str, **options) -> dict:
    with CGNClient(url, **options) as c:
        return c.health()


def async_health(url: str, **options) -> dict:
    async def go() -> dict:
        async with AsyncCGNClient(url, **options) as c:
            return await c.health()

    return asyncio.run(go())


TWINS = pytest.mark.parametrize("health", [sync_health, async_health], ids=["sync", "async"])


@TWINS
def test_503_and_429_wait_the_servers_retry_after(remote, health):
    remote.play(busy("0.4"), busy("0.4", 429), OK)
    assert health(remote.url, max_retries=2) == {"status": "ok"}
    assert len(remote.seen) == 3
    assert all(0.4 <= g < 2.0 for g in remote.gaps()), remote.gaps()


@TWINS
def test_retry_after_is_capped_and_retries_are_bounded(remote, health):
    remote.play(busy("3600"))
    started = time.monotonic()
    with pytest.raises(OverloadedError) as e:
        health(remote.url, max_retries=3, max_retry_after=0.2)
    assert len(remote.seen) == 4 and e.value.status_code == 503  # 1 try + max_retries, then the typed error
    assert 0.6 <= time.monotonic() - started < 3.0  # three waits of the 0.2 s cap, not an hour
    remote.play(busy(None, 429))
    with pytest.raises(RateLimitError):
        health(remote.url, max_retries=0)
    assert len(remote.seen) == 1


@TWINS
def test_backoff_is_exponential_with_jitter_without_retry_after(remote, health):
    remote.play(busy(None), busy(None), busy(None), OK)
    assert health(remote.url, max_retries=3, backoff=0.1) == {"status": "ok"}
    g = remote.gaps()
    # 0.1, 0.2, 0.4 s, each times a jitter in [0.75, 1]
    assert g[0] >= 0.075 and g[1] >= 0.15 and g[2] >= 0.3, g
    assert g[2] < 2.0, g


@TWINS
def test_http_date_retry_after(remote, health):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: waits 1 to 2 s
    remote.play(busy(when), OK)
    assert health(remote.url) == {"status": "ok"}
    assert 0.9 <= remote.gaps()[0] < 3.5


def test_the_twins_send_the_same_attempts(remote):
    script = (busy("0.3"), busy(None), DROP, busy("0.2", 429), OK)
    timings = {}
    for health in (sync_health, async_health):
        remote.play(*script)
        assert health(remote.url, max_retries=4, backoff=0.1) == {"status": "ok"}
        timings[health.__name__] = remote.gaps()
        assert [s[1:3] for s in remote.seen] == [("GET", "/healthz")] * 5
    sync, asyn = timings["sync_health"], timings["async_health"]
    for a, b, low in zip(sync, asyn, (0.3, 0.15, 0.3, 0.2), strict=True):  # RA, 0.2*j, 0.4*j, RA (j >= 0.75)
        assert a >= low and b >= low, timings
    assert all(abs(a - b) < 0.5 for a, b in zip(sync, asyn, strict=True)), timings


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_only_idempotent_requests_are_replayed_after_an_unknown_outcome(remote, twin):
    def send(call: Call, **options):
        if twin == "sync":
            with CGNClient(remote.url, backoff=0.01, **options) as c:
                return c.request(call)

        async def go():
            async with AsyncCGNClient(remote.url, backoff=0.01, **options) as c:
                return await c.request(call)

        return asyncio.run(go())

    post = Call("POST", "/things", lambda r: r.json(), json={"x": 1})  # not idempotent (by method)
    replayable = Call("POST", "/things", lambda r: r.json(), json={"x": 1}, idempotent=True)
    # the server refused before doing anything: retried whatever the request
    remote.play(busy("0"), OK)
    assert send(post) == {"status": "ok"} and len(remote.seen) == 2
    # a dropped connection or a 502: the request may have run; replayed only when idempotent
    for step, error in ((DROP, APIConnectionError), (busy(None, 502), InternalServerError)):
        remote.play(step, OK)
        with pytest.raises(error):
            send(post)
        assert len(remote.seen) == 1
        remote.play(step, OK)
        assert send(replayable) == {"status": "ok"} and len(remote.seen) == 2
        remote.play(step, OK)
        assert send(Call("GET", "/healthz", lambda r: r.json())) == {"status": "ok"} and len(remote.seen) == 2


def test_outage_timeout_extends_retries_for_a_while_and_no_longer():
    """A closed port: max_retries alone gives up at once; with outage_timeout the same call keeps trying
    that long (what a batch job's wait does), then raises."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    call = Call("GET", "/healthz", lambda r: r.json())
    with CGNClient(f"http://127.0.0.1:{port}", max_retries=0) as c:
        started = time.monotonic()
        with pytest.raises(APIConnectionError):
            c.request(call)
        assert time.monotonic() - started < 0.5
        started = time.monotonic()
        with pytest.raises(APIConnectionError, match="outage_timeout=1.5"):
            c.request(call, outage_timeout=1.5)
        assert 1.5 <= time.monotonic() - started < 4.0


def test_policy_numbers():
    p = RetryPolicy()
    assert (p.max_retries, p.backoff, p.max_backoff, p.max_retry_after, p.max_outage_backoff) == (
        2,
        0.5,
        8.0,
        60.0,
        2.0,
    )
    assert all(p.retries_status(s, idempotent=False) for s in (429, 503))
    assert all(p.retries_status(s, idempotent=True) for s in (429, 502, 503, 504))
    assert not any(p.retries_status(s, idempotent=False) for s in (500, 502, 504))
    assert not any(p.retries_status(s, idempotent=True) for s in (400, 401, 404, 409, 422, 500))
    delays = [p.delay(k) for k in range(6)]
    assert all(0.75 * d <= got <= d for got, d in zip(delays, (0.5, 1, 2, 4, 8, 8), strict=True)), delays
    assert p.delay(10, outage=True) <= 2.0 and p.delay(0, "5") == 5.0 and p.delay(0, "999") == 60.0
    assert parse_retry_after("2") == 2.0 and parse_retry_after("-3") == 0.0 and parse_retry_after("soon") is None
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    with CGNClient("http://x", max_retries=5, backoff=0.1) as c:
        assert c.retry_policy == RetryPolicy(max_retries=5, backoff=0.1) and c.max_retries == 5
    assert AsyncCGNClient("http://x", max_retries=5, backoff=0.1).retry_policy == c.retry_policy


def test_batch_helpers_take_a_plain_httpx_client(remote):
    """cgn_client.batch's functions accept an httpx client (base_url, headers) where they take a CGNClient."""
    from cgn_client.batch import list_batches

    remote.play((200, {}, {"jobs": [{"id": "j1"}], "total": 1}))
    with httpx.Client(base_url=remote.url, headers={"Authorization": "Bearer k"}) as raw:
        assert list_batches(raw, limit=5) == [{"id": "j1"}]
        assert not raw.is_closed
    (_, method, path, headers) = remote.seen[0]
    assert (method, path, headers["Authorization"]) == ("GET", "/batches?limit=5&offset=0", "Bearer k")
