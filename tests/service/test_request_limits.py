"""Hostile or broken requests never become 500s, never hold a connection forever, never slow anyone else."""

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from servers import ThreadServer, service_settings

pytestmark = pytest.mark.slow


def _stalled_request(url: str, path: str, declared: int, sent: bytes) -> socket.socket:
    """A client that announces `declared` body bytes, sends `sent` and then nothing."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def _read_response(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    return data


def test_a_stalled_body_gets_408_and_the_connection_is_freed(thread_server):
    srv = thread_server(body_timeout_s=1.0)
    sock = _stalled_request(srv.url, "/counterfactual", 200, b'{"shape": 3,')
    start = time.monotonic()
    reply = _read_response(sock, timeout=10)
    waited = time.monotonic() - start
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:300]
    assert b'"request_timeout"' in reply and b"x-request-id" in reply.lower()
    assert 0.9 <= waited < 5, waited
    assert httpx.get(f"{srv.url}/healthz").status_code == 200


def test_a_stalled_body_does_not_make_lone_requests_wait_for_company(thread_server):
    """The owner waits up to CGN_MAX_WAIT_MS for work that is on its way; a body that never comes is not."""
    srv = thread_server(max_wait_ms=800, body_timeout_s=30)
    body = {"shape": 3, "seed": 1}
    httpx.post(f"{srv.url}/counterfactual", json=body, timeout=30)  # warm
    idle = []
    for _ in range(3):
        t = time.perf_counter()
        assert httpx.post(f"{srv.url}/counterfactual", json=body, timeout=30).status_code == 200
        idle.append(time.perf_counter() - t)
    sock = _stalled_request(srv.url, "/counterfactual", 100, b'{"shape"')
    try:
        time.sleep(0.2)
        stalled = []
        for _ in range(3):
            t = time.perf_counter()
            assert httpx.post(f"{srv.url}/counterfactual", json=body, timeout=30).status_code == 200
            stalled.append(time.perf_counter() - t)
    finally:
        sock.close()
    assert min(stalled) < 0.5, f"lone requests waited for a stalled body: {stalled} (idle {idle})"


def test_a_bug_is_a_500_with_the_error_body_counted_and_carrying_its_request_id(random_store: Path, tmp_path, caplog):
    srv = ThreadServer(service_settings(random_store, tmp_path))

    def broken() -> dict:
        raise RuntimeError("a bug in a handler")

    srv.app.add_api_route("/broken", broken)  # a real route of a real server that fails
    srv.start()
    try:
        r = httpx.get(f"{srv.url}/broken", headers={"X-Request-ID": "bug-1"})
        assert r.status_code == 500
        assert r.headers["x-request-id"] == "bug-1"
        err = r.json()["error"]
        assert err["type"] == "internal" and err["request_id"] == "bug-1" and "bug" in err["message"]
        counted = 'cgn_requests_total{method="GET",route="/broken",status="500"} 1.0'
        deadline = time.monotonic() + 5  # counted right after the response went out
        while counted not in httpx.get(f"{srv.url}/metrics").text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert counted in httpx.get(f"{srv.url}/metrics").text
        logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], RuntimeError)]
        assert len(logged) == 1 and "bug-1" in logged[0].getMessage()  # once, with its request id
        assert httpx.get(f"{srv.url}/healthz").status_code == 200  # and it keeps serving
    finally:
        srv.stop()


def test_non_latin1_words_never_break_headers(imagenet_url):
    """A word the default model does not know makes a note header; a Kelvin sign in it must not be a 500."""
    for word in ("blac\u212a (zero)", "\u00e9l\u00e9phant", "\U0001f418"):
        r = httpx.post(f"{imagenet_url}/counterfactual", json={"bg": word}, timeout=120)
        assert r.status_code < 500, r.text
        for value in r.headers.values():
            value.encode("latin-1")


def test_concurrent_stalled_bodies_are_all_released(thread_server):
    srv = thread_server(body_timeout_s=0.5)
    socks = [_stalled_request(srv.url, "/samples", 50, b"{") for _ in range(20)]
    replies: list[bytes] = []

    def read(s: socket.socket) -> None:
        replies.append(_read_response(s, timeout=10))

    threads = [threading.Thread(target=read, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in socks:
        s.close()
    assert len(replies) == 20 and all(r.startswith(b"HTTP/1.1 408") for r in replies), [r[:40] for r in replies]
