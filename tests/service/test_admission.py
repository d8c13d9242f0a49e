"""Under load the service bounds the wait: large requests take turns with small ones, and work that would
wait longer than CGN_MAX_QUEUE_DELAY_MS is refused at once with 503 + Retry-After."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytestmark = pytest.mark.slow

CF = {"shape": 3, "texture": 7, "bg": 1, "seed": 0}


def _timed(url: str, path: str, body: dict) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    r = httpx.post(f"{url}{path}", json=body, timeout=120)
    return r, time.perf_counter() - start


def test_a_small_request_behind_a_large_one_waits_for_a_chunk_not_for_all_of_it(thread_server):
    srv = thread_server(max_samples=1024, max_batch_size=32, max_wait_ms=1)
    _timed(srv.url, "/samples", {"n": 64, "seed": 1})  # warm
    idle = min(_timed(srv.url, "/counterfactual", CF)[1] for _ in range(5))
    large: dict = {}

    def run_large() -> None:
        large["r"], large["s"] = _timed(srv.url, "/samples", {"n": 1024, "seed": 2})
        large["done"] = time.perf_counter()

    t = threading.Thread(target=run_large)
    t.start()
    time.sleep(0.05)  # the large request is running its chunks
    r, behind = _timed(srv.url, "/counterfactual", CF)
    answered = time.perf_counter()
    t.join()
    assert r.status_code == 200 and large["r"].status_code == 200
    assert answered < large["done"], "the small request waited for the whole large one"
    assert behind < large["s"] / 3, f"small request took {behind:.3f} s behind a {large['s']:.3f} s one"
    assert behind < max(10 * idle, 0.25), (behind, idle)


def test_work_that_would_wait_too_long_is_refused_at_once_and_the_service_recovers(thread_server):
    # max_batch_size sets the floor of admission (twice a batch inside), kept low so the test is short
    srv = thread_server(max_samples=64, max_batch_size=8, max_queue_delay_ms=100, max_wait_ms=1, retry_after_s=1)
    body = {"n": 64, "seed": 3}
    _timed(srv.url, "/samples", body)  # warm

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(lambda _: _timed(srv.url, "/samples", body), range(48)))
    codes = [r.status_code for r, _ in results]
    assert set(codes) <= {200, 503}, codes
    refused = [r for r, _ in results if r.status_code == 503]
    assert refused and len(refused) < len(results), codes
    for r in refused:
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["type"] == "overloaded"
    assert _timed(srv.url, "/counterfactual", CF)[0].status_code == 200  # and it serves again
