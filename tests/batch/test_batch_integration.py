"""The batch queue end to end: a redis-server on a free port, the API and workers as real processes.

Every test ends by comparing the job's shards with an uninterrupted in-process reference run
(Stack.check): byte-identical shards, each sample key exactly once, exact sample count.
"""

import asyncio
import csv
import io
import signal
import time

import httpx
import numpy as np
import pytest
from cgn_client import AsyncCGNClient, InvalidRequestError, NotFoundError, OverloadedError, UnknownNameError
from cgn_client.batch import BatchJobError, batch_job

pytestmark = pytest.mark.slow


def test_happy_path_two_workers_npz_and_webdataset(stack, tmp_path, conforms):
    stack.start_worker()
    stack.start_worker()
    stack.start_api()
    client = stack.client()
    job = client.submit_batch(40, seed=7, shard_size=8, cfs_per_shape=2, outputs=["composite", "mask"])
    assert job.info["state"] in ("queued", "running") and job.info["num_shards"] == 5
    wds = client.submit_batch(12, seed=3, shard_size=5, format="wds", texture="color-4")
    status = job.wait(progress=True, timeout=120)
    assert status["done"] == 40 and len(status["shards"]) == 5
    stack.check(job.id)
    stack.check(wds.id)
    assert wds.wait(timeout=60)["state"] == "completed"

    # downloads over HTTP are the stored bytes; the labels table agrees with the shards
    paths = job.download(tmp_path / "dl")
    assert [p.name for p in paths] == [f"shard-{k:06d}.npz" for k in range(5)]
    results = stack.results / job.id
    assert all(p.read_bytes() == (results / p.name).read_bytes() for p in paths)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "dl" / "labels.csv").read_text())))
    assert [int(r["index"]) for r in rows] == list(range(40))
    ds = job.dataset(tmp_path / "dl")
    assert len(ds) == 40
    image, shape, texture, background = ds[13]
    assert tuple(image.shape) == (3, 32, 32) and 0 <= float(image.min()) <= float(image.max()) <= 1
    assert (shape, texture, background) == tuple(int(rows[13][m]) for m in ("shape", "texture", "background"))
    assert rows[12]["shape_seed"] == rows[13]["shape_seed"]  # cfs_per_shape=2 shares shape noise
    arrays = next(iter(job.iter_shards())).arrays()
    assert arrays["mask"].shape == (8, 1, 32, 32) and arrays["composite"].dtype == np.uint8

    tars = [sh.arrays() for sh in wds.iter_shards()]
    assert sorted(np.concatenate([a["keys"] for a in tars]).tolist()) == list(range(12))
    assert all((a["labels"][:, 1] == 4).all() for a in tars)  # texture fixed by name

    doc = httpx.get(f"{stack.url}/openapi.json").json()  # every JSON body is what the document says
    for template, path in [("/batches", "/batches"), ("/batches/{job_id}", f"/batches/{job.id}")]:
        conforms(doc, template, "GET", httpx.get(f"{stack.url}{path}"))
    conforms(doc, "/batches", "POST", httpx.post(f"{stack.url}/batches", json={"n": 2}))
    conforms(doc, "/batches", "POST", httpx.post(f"{stack.url}/batches", json={"n": 0}))
    conforms(doc, "/batches/{job_id}", "GET", httpx.get(f"{stack.url}/batches/nope"))
    listed = httpx.get(f"{stack.url}/batches").json()
    assert {j["id"] for j in listed["jobs"]} >= {job.id, wds.id} and listed["total"] == 3

    def workers_report_all_samples():
        r = httpx.get(f"{stack.url}/batches/workers")
        conforms(doc, "/batches/workers", "GET", r)
        info = r.json()
        alive = [w for w in info["workers"] if w["alive"]]
        return len(alive) == 2 and sum(w["samples_done"] for w in alive) == 54 and info["queued_samples"] == 0

    stack.wait_for(workers_report_all_samples, timeout=30, what="per-worker metrics to add up")

    async def with_the_async_client():
        async with AsyncCGNClient(stack.url) as ac:
            j = await ac.submit_batch(6, seed=8, shard_size=4, format="wds")
            done = await j.wait(timeout=120)
            return j.id, done, [sh async for sh in j.iter_shards()]

    job_id, done, shards = asyncio.run(with_the_async_client())
    assert done["done"] == 6 and sorted(sh.index for sh in shards) == [0, 1]
    stack.check(job_id)


def test_worker_sigkill_mid_chunk_is_redelivered(stack):
    victim = stack.start_worker("--batch-size", "2")
    job = stack.submit(96, seed=11, shard_size=32)
    stack.wait_for(lambda: stack.pending() > 0, what="the worker to take a chunk")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert len(stack.holders()) == 1 and stack.queue.status(job)["done"] == 0  # killed mid-chunk, nothing settled
    stack.start_worker()
    status = stack.wait_state(job)
    assert status["state"] == "completed" and status["done"] == 96 and status["num_shards"] == 3
    stack.check(job)
    assert stack.pending() == 0 and stack.queue.r.xlen(stack.queue.stream) == 0


def test_redis_killed_and_restarted_mid_job(stack):
    stack.start_worker("--batch-size", "4")
    stack.start_worker("--batch-size", "4")
    stack.start_api()
    job = stack.client().submit_batch(160, seed=5, shard_size=16, format="wds")
    stack.wait_for(lambda: stack.queue.status(job.id)["done"] >= 16, what="a first shard")
    stack.redis.kill()
    time.sleep(1.0)
    stack.redis.start()  # same port, same dir: the append-only file brings the stream and job back
    status = job.wait(timeout=120)
    assert status["done"] == 160
    stack.check(job.id)


def test_api_restarted_mid_job_keeps_status(stack):
    stack.start_api()
    stack.start_worker("--batch-size", "4")
    client = stack.client()
    job = client.submit_batch(96, seed=9, shard_size=16)
    stack.wait_for(lambda: stack.queue.status(job.id)["done"] >= 16, what="a first shard")
    stack.kill_api()
    done_before = stack.queue.status(job.id)["done"]
    stack.start_api()
    again = batch_job(stack.client(), job.id)  # a new client process would do just this
    assert again.info["done"] >= done_before and again.info["n"] == 96
    assert again.wait(timeout=120)["done"] == 96
    stack.check(job.id)


def test_cancel_stops_work_and_keeps_what_was_written(stack, conforms):
    stack.start_api()
    stack.start_worker("--batch-size", "4")
    client = stack.client()
    job = client.submit_batch(400, seed=2, shard_size=16)
    stack.wait_for(lambda: stack.queue.status(job.id)["done"] >= 16, what="a first shard")
    assert job.cancel()["state"] == "cancelled"
    # the worker drops the rest of the job's chunks (and abandons the one in hand)
    stack.wait_for(lambda: stack.queue.r.xlen(stack.queue.stream) == 0 and stack.pending() == 0, what="drain")
    settled = stack.queue.status(job.id)["done"]
    time.sleep(1.0)
    status = stack.check(job.id)
    assert status["state"] == "cancelled" and status["done"] == settled < 400
    assert stack.queue.queued_samples() == 0
    with pytest.raises(BatchJobError):
        job.wait(timeout=5)
    doc = httpx.get(f"{stack.url}/openapi.json").json()
    conforms(doc, "/batches/{job_id}/cancel", "POST", httpx.post(f"{stack.url}/batches/{job.id}/cancel"))
    # the worker is free for the next job
    nxt = client.submit_batch(20, seed=2, shard_size=16)
    assert nxt.wait(timeout=60)["done"] == 20
    stack.check(nxt.id)
    # delete removes records and files
    job.delete()
    with pytest.raises(NotFoundError):
        job.status()
    assert not (stack.results / job.id).exists()
    conforms(doc, "/batches/{job_id}", "DELETE", httpx.delete(f"{stack.url}/batches/{nxt.id}"))
    assert httpx.get(f"{stack.url}/batches/{nxt.id}/labels.csv").status_code == 404  # deleted means gone


def test_bad_requests_get_4xx_with_a_message(make_stack):
    stack = make_stack(batch_max_n=500, batch_max_shards=20, batch_max_queued_samples=600)
    stack.start_api()
    client = stack.client()
    url = f"{stack.url}/batches"

    def refused(body, status, field=None, words=()):
        r = httpx.post(url, json=body) if not isinstance(body, bytes) else httpx.post(url, content=body)
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert err["message"]
        if field is not None:
            assert err.get("field") == field, err
        for w in words:
            assert w in err["message"], err
        return r

    refused({"n": 501}, 422, "n", ["500"])
    refused({"n": 0}, 422, "n")
    refused({}, 422, "n", ["required"])
    refused({"n": 10, "format": "zip"}, 422, "format", ["npz", "wds"])
    refused({"n": 10, "outputs": ["depth"]}, 422, "outputs.0")
    refused({"n": 10, "seed": -1}, 422, "seed")
    refused({"n": 10, "seed": "x"}, 422, "seed")
    refused({"n": 100, "shard_size": 1}, 422, "shard_size", ["20"])
    refused({"n": 10, "model": "no-such-model"}, 404, "model", ["no-such-model"])
    refused({"n": 10, "colour": 3}, 422, "colour")
    refused({"n": 10, "labels": [[1, 2]]}, 422)
    refused({"labels": [[1, 2, 3], [1, 99, 3]]}, 422, "labels.1.1", ["texture"])
    refused({"n": 3, "labels": [[1, 2, 3]]}, 422, "n", ["match"])
    refused({"n": 10, "truncation": 0.4}, 422, "truncation", ["mnist-test", "takes no truncation"])
    refused({"n": 10, "truncation": 1.5}, 422, "truncation")
    refused(b"{not json", 422, "body", ["JSON"])
    with pytest.raises(UnknownNameError) as exc:
        client.submit_batch(10, shape="seventeen")
    assert exc.value.field == "shape" and exc.value.suggestions
    with pytest.raises(InvalidRequestError):
        client.submit_batch(10, cfs_per_shape=0)
    with pytest.raises(InvalidRequestError) as exc:
        client.submit_batch(10, truncation=0.4)  # the SDK sends it; an MNIST model refuses it
    assert exc.value.field == "truncation"
    for path in ("/batches/nope", "/batches/nope/shards/0", "/batches/nope/labels.csv"):
        r = httpx.get(stack.url + path)
        assert r.status_code == 404 and "nope" in r.json()["error"]["message"]

    # accepted jobs fill the bounded queue; then 503 with Retry-After until workers catch up
    job = client.submit_batch(500, seed=1, shard_size=25)
    extra = client.submit_batch(60, labels=[[1, "color-2", 3]] * 60, seed=4, shard_size=30)
    r = refused({"n": 100}, 503, None, ["limit is 600"])
    assert int(r.headers["Retry-After"]) >= 1
    with pytest.raises(OverloadedError):
        client.submit_batch(100, retries=0)
    r = httpx.get(f"{url}/{job.id}/shards/20")
    assert r.status_code == 404 and "[0, 19]" in r.json()["error"]["message"]
    r = httpx.get(f"{url}/{job.id}/shards/3")
    assert r.status_code == 409 and "not written yet" in r.json()["error"]["message"]
    job.cancel()
    stack.start_worker()
    assert extra.wait(timeout=120)["done"] == 60
    status = stack.check(extra.id)
    assert status["state"] == "completed"
    labels = np.concatenate([sh.arrays()["labels"] for sh in extra.iter_shards()])
    assert (labels == [1, 2, 3]).all()
    assert httpx.get(f"{stack.url}/healthz").status_code == 200


def test_sigterm_releases_or_finishes_the_chunk_in_hand(make_stack):
    stack = make_stack(batch_visibility_timeout_s=60)  # only a release can make a chunk come back quickly
    job = stack.submit(96, seed=13, shard_size=32)
    quick = stack.start_worker("--batch-size", "2", "--grace", "0")
    holder = stack.wait_for(lambda: stack.holders(), what="a chunk in hand")
    quick.send_signal(signal.SIGTERM)
    assert quick.wait(timeout=60) == 0
    assert stack.queue.status(job)["done"] == 0  # grace 0: handed back, not finished
    patient = stack.start_worker("--batch-size", "2")
    stack.wait_for(lambda: stack.holders() not in ([], holder), what="the released chunk to be taken again")
    patient.send_signal(signal.SIGTERM)
    assert patient.wait(timeout=120) == 0
    status = stack.queue.status(job)
    assert status["done"] == 32 and status["done_shards"] == [0]  # finished the chunk in hand, took no other
    stack.start_worker()
    assert stack.wait_state(job)["done"] == 96
    stack.check(job)


def test_poison_chunk_fails_the_job_after_max_deliveries(make_stack):
    stack = make_stack(batch_max_deliveries=2)
    job = stack.submit(8, seed=1, shard_size=4)
    (stack.model_root / "mnist-test" / "model.safetensors").write_bytes(b"corrupted")  # every load now fails
    stack.start_worker()
    status = stack.wait_state(job)
    assert status["state"] == "failed" and status["failed"] == 8 and status["done"] == 0
    assert sorted(status["failed_shards"]) == [0, 1]
    messages = [e["message"] for e in status["errors"]]
    assert any("sha256" in m for m in messages) and any("poison" in m for m in messages)
    assert stack.queue.queued_samples() == 0
