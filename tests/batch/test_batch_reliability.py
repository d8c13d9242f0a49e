"""The batch API under stress and misuse: a huge explicit label table, idempotency keys, dead workers, the job view.

Real processes throughout: a redis-server on a free port, `cgn serve` and `cgn worker` (tests/batch/conftest.py).
"""

import json
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def compact(body) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _healthz_latencies(url: str, busy: threading.Event) -> list[float]:
    """Seconds each GET /healthz took while `busy` is set (one keep-alive connection, a poll every 20 ms)."""
    took = []
    with httpx.Client(base_url=url, timeout=30) as http:
        http.get("/healthz")
        while busy.is_set():
            t = time.perf_counter()
            assert http.get("/healthz").status_code == 200
            took.append(time.perf_counter() - t)
            time.sleep(0.02)
    return took


def _post_while_polling(url: str, body: bytes) -> tuple[httpx.Response, list[float], float]:
    busy, out = threading.Event(), {}
    busy.set()

    def post() -> None:
        t = time.perf_counter()
        try:
            out["response"] = httpx.post(
                f"{url}/batches", content=body, headers={"Content-Type": "application/json"}, timeout=180
            )
        finally:
            out["seconds"] = time.perf_counter() - t
            busy.clear()

    thread = threading.Thread(target=post)
    poller_out: list[float] = []
    poller = threading.Thread(target=lambda: poller_out.extend(_healthz_latencies(url, busy)))
    poller.start()
    time.sleep(0.2)  # the poller is connected and polling
    thread.start()
    thread.join()
    poller.join()
    return out["response"], poller_out, out["seconds"]


def test_a_huge_explicit_label_table_is_parsed_off_the_event_loop(make_stack):
    """900k explicit rows (7.2 MB of JSON): the event loop keeps answering /healthz within 200 ms meanwhile
    (one poll may meet a pause of the machine or of the polling process itself, never 500 ms; parsed on the
    loop, /healthz waited over 2 s)."""
    stack = make_stack()
    stack.start_api()
    stack.client()
    n = 900_000
    rng = np.random.default_rng(0)
    table = rng.integers(0, 10, (n, 3))
    rows: list[list] = table.tolist()
    for i in range(0, n, 1000):  # some rows by name: names and ids resolve alike
        s, t, b = table[i]
        rows[i] = [str(s), f"color-{t}", f"bg-{b}"]
    body = compact({"labels": rows, "seed": 4, "shard_size": 1000})
    assert 7_000_000 < len(body) < 8 * 1024 * 1024

    r, latencies, seconds = _post_while_polling(stack.url, body)
    print(f"submit of {len(body)} bytes: {seconds:.2f} s; /healthz at most {max(latencies) * 1000:.0f} ms")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["n"] == n and job["num_shards"] == 900 and job["spec"]["explicit_labels"]
    spec, explicit = stack.queue.spec(job["id"])
    assert spec.n == n and np.array_equal(explicit, table)
    assert len(latencies) >= 5, f"too few polls during a {seconds:.2f} s submit"
    slow = [round(t, 3) for t in latencies if t >= 0.2]
    assert len(slow) <= 1 and max(latencies) < 0.5, f"/healthz took {slow} s during a {seconds:.2f} s submit"

    # a bad row deep inside a huge body is named exactly, with the usual error body
    bad = rows.copy()
    bad[850_000] = [1, 2]
    r = httpx.post(f"{stack.url}/batches", content=compact({"labels": bad}), timeout=180)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_input" and err["field"] == "labels.850000", err
    assert err["details"] and err["details"][0]["field"] == "labels.850000"
    bad = rows.copy()
    bad[850_001] = [1, "no-such-colour", 2]
    bad[850_002] = [1, "no-such-colour", "nor-this"]
    r = httpx.post(f"{stack.url}/batches", content=compact({"labels": bad}), timeout=180)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["type"] == "unknown_name" and err["field"] == "labels.850001.1", err
    assert err["message"].startswith("labels[850001][1] (texture): ")
    r = httpx.post(f"{stack.url}/batches", content=body[:-1000], timeout=180)  # cut off: not JSON
    assert r.status_code == 422 and r.json()["error"]["type"] == "malformed_json", r.text
    r = httpx.post(f"{stack.url}/batches", content=compact({"labels": rows, "colour": 3}), timeout=180)
    assert r.status_code == 422 and r.json()["error"]["field"] == "colour", r.text
    # small bodies: the same errors as every other route
    r = httpx.post(f"{stack.url}/batches", json={"n": 10, "labels": [[1, 2, 3]] * 5 + [[1, 2]]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "labels.5", r.text
    r = httpx.post(f"{stack.url}/batches", content=b"")
    assert r.status_code == 422 and r.json()["error"]["field"] == "body", r.text
    r = httpx.post(f"{stack.url}/batches", json=[1, 2])
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_input", r.text


def test_idempotency_keys_are_checked_against_the_body_scoped_per_api_key_and_forgotten_on_delete(make_stack):
    stack = make_stack(api_keys="key-a,key-b")
    stack.start_api()
    stack.client()
    url = f"{stack.url}/batches"

    def post(body: dict, key: str, api_key: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": key}
        return httpx.post(url, json=body, headers=headers, timeout=30)

    first = post({"n": 10, "shape": "three", "seed": 1}, "order-1", "key-a")
    assert first.status_code == 202, first.text
    job_id = first.json()["id"]
    again = post({"n": 10, "shape": 3, "seed": 1}, "order-1", "key-a")  # the same job, named by id
    assert again.status_code == 202 and again.json()["id"] == job_id

    other = post({"n": 11, "seed": 1}, "order-1", "key-a")  # another body under a used key
    assert other.status_code == 409, other.text
    err = other.json()["error"]
    assert err["type"] == "conflict" and err["field"] == "Idempotency-Key", err
    assert "different" in err["message"]

    scoped = post({"n": 11, "seed": 1}, "order-1", "key-b")  # another API key: another key space
    assert scoped.status_code == 202, scoped.text
    assert scoped.json()["id"] != job_id
    assert post({"n": 10, "shape": 3, "seed": 1}, "order-1", "key-b").status_code == 409

    auth = {"Authorization": "Bearer key-a"}
    assert httpx.delete(f"{url}/{job_id}", headers=auth).json()["state"] == "deleted"
    reused = post({"n": 10, "shape": 3, "seed": 1}, "order-1", "key-a")  # the deleted job's key is free again
    assert reused.status_code == 202, reused.text
    assert reused.json()["id"] != job_id
    assert httpx.get(f"{url}/{reused.json()['id']}", headers=auth).status_code == 200
    assert post({"n": 10, "shape": 3, "seed": 1}, "order-1", "key-a").json()["id"] == reused.json()["id"]


def test_job_status_shows_no_server_path_and_offsets_are_bounded(stack):
    stack.start_api()
    stack.client()
    r = httpx.post(f"{stack.url}/batches", json={"n": 5, "shard_size": 5})
    assert r.status_code == 202, r.text
    status = httpx.get(f"{stack.url}/batches/{r.json()['id']}").json()
    assert "results" not in status and str(stack.results) not in json.dumps(status)
    assert "results" not in r.json()
    doc = httpx.get(f"{stack.url}/openapi.json").json()
    assert "results" not in doc["components"]["schemas"]["BatchJob"]["properties"]

    huge = httpx.get(f"{stack.url}/batches", params={"offset": "99999999999999999999"})
    assert huge.status_code == 422 and huge.json()["error"]["field"] == "offset", huge.text
    assert httpx.get(f"{stack.url}/batches", params={"offset": str(2**62 + 1)}).status_code == 422
    edge = httpx.get(f"{stack.url}/batches", params={"offset": str(2**62)})
    assert edge.status_code == 200, edge.text
    assert edge.json()["jobs"] == [] and edge.json()["total"] == 1


def test_a_sigkilled_worker_reads_lost_and_then_leaves_the_worker_list(make_stack):
    stack = make_stack(batch_worker_expiry_s=4)
    stack.start_api()
    victim = stack.start_worker("--batch-size", "1")
    stack.client()
    stack.submit(5000, seed=1, shard_size=5000)  # one long chunk: the worker stays busy
    url = f"{stack.url}/batches/workers"

    def workers() -> list[dict]:
        return httpx.get(url, timeout=10).json()["workers"]

    stack.wait_for(lambda: any(w["state"] == "busy" and w["alive"] for w in workers()), 120, "a busy worker")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    lost = stack.wait_for(lambda: [w for w in workers() if w["state"] == "lost"], 20, "the dead worker to read lost")
    assert len(lost) == 1 and lost[0]["alive"] is False and lost[0]["last_state"] == "busy"
    assert time.monotonic() - killed_at < 10
    stack.wait_for(lambda: workers() == [], 30, "the dead worker to leave the list")


REDIS_COMMAND = re.compile(r"redis-server\b[^\n`]*")


def test_every_documented_redis_command_keeps_an_fsynced_append_only_file():
    """docs/batch.md's guarantees need `--appendonly yes --appendfsync always`; the commands people copy say so."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in doc.read_text().splitlines():
            for command in REDIS_COMMAND.findall(line):
                if "--" not in command:  # prose that names the program, not a command line
                    continue
                found.append((doc.name, command))
                assert "--appendonly yes" in command and "--appendfsync always" in command, (doc.name, command)
    assert any(name == "README.md" for name, _ in found), found
