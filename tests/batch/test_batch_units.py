"""Pieces of the batch queue in-process, against a real redis-server: specs, shards, leases, settling, TTL."""

import csv
import io
import json
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from cgn.pipeline import counterfactuals, to_uint8
from cgn.sampling import plan
from model_store import ModelStore
from service.batch.cleanup import forget_dead_workers, sweep
from service.batch.labels import csv_rows
from service.batch.queue import BatchQueue, QueueConfig, QueueFull
from service.batch.render import render, shard_data
from service.batch.shards import read_shard
from service.batch.spec import BatchSpec
from service.batch.store import ResultStore

VOCAB = {m: [f"{m}-{i}" for i in range(10)] for m in ("shape", "texture", "background")}


def spec_of(**kw) -> BatchSpec:
    base = {"model": "mnist-test", "n": 20, "seed": 3, "shard_size": 7, "vocabulary": VOCAB}
    return BatchSpec(**{**base, **kw})


@pytest.fixture
def model(model_root):
    return ModelStore(model_root).load("mnist-test").model


@pytest.fixture
def queue(redis_server):
    return BatchQueue.from_url(redis_server.url, QueueConfig(visibility_timeout_s=0.5, heartbeat_s=0.1, ttl_s=60))


def test_spec_refuses_bad_values_naming_the_field():
    for kw, field in [({"n": 0}, "n"), ({"format": "zip"}, "format"), ({"policy": "x"}, "policy")]:
        with pytest.raises(ValueError, match=field):
            spec_of(**kw)
    with pytest.raises(ValueError, match="outputs"):
        spec_of(outputs=("depth",))
    s = spec_of()
    assert s.num_chunks == 3 and s.chunk_range(2) == (14, 20)
    assert BatchSpec.from_json(s.to_json()) == s
    with pytest.raises(IndexError):
        s.chunk_range(3)
    with pytest.raises(ValueError, match=r"truncation: must be in \(0, 1\], got 0"):
        spec_of(truncation=0.0)
    legacy = {k: v for k, v in json.loads(spec_of(truncation=0.4).to_json()).items() if k != "truncation"}
    assert BatchSpec.from_json(json.dumps(legacy)).truncation is None  # specs queued before the field


def test_shards_match_one_big_batch_of_the_core_and_are_byte_stable(model):
    spec = spec_of(outputs=("composite", "mask"))
    p = plan(spec.seed, 0, spec.n, 10)
    raw = counterfactuals(model, torch.from_numpy(p.labels), torch.from_numpy(p.seeds), ("composite", "mask"))
    for fmt in ("npz", "wds"):
        s = spec_of(outputs=("composite", "mask"), format=fmt)
        shards = [render(model, s, k, batch_size=3) for k in range(s.num_chunks)]
        assert shards == [render(model, s, k, batch_size=64) for k in range(s.num_chunks)]  # batching-independent
        back = [read_shard(b, fmt) for b in shards]
        assert np.concatenate([b.keys for b in back]).tolist() == list(range(spec.n))
        assert (np.concatenate([b.labels for b in back]) == p.labels).all()
        assert (np.concatenate([b.seeds for b in back]) == p.seeds).all()
        for out in ("composite", "mask"):
            assert (np.concatenate([b.images[out] for b in back]) == to_uint8(raw[out]).numpy()).all()


def test_explicit_labels_keep_seeds_from_the_job_seed(model):
    table = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    s = spec_of(n=3, explicit=True)
    shard = shard_data(model, s, 0, 3, table)
    assert (shard.labels == table).all() and (shard.seeds == plan(3, 0, 3, 10).seeds).all()
    with pytest.raises(ValueError, match="explicit"):
        shard_data(model, s, 0, 3, None)


def test_labels_table_lists_every_sample_with_names():
    s = spec_of(n=25, fixed=(None, 4, None))
    rows = list(csv.DictReader(io.StringIO("".join(csv_rows(s, block=10)))))
    p = plan(3, 0, 25, 10, fixed=(None, 4, None))
    assert len(rows) == 25 and [r["key"] for r in rows[:2]] == ["000000000", "000000001"]
    assert all(r["texture"] == "4" and r["texture_name"] == "texture-4" for r in rows)
    assert [int(r["shape_seed"]) for r in rows] == p.seeds[:, 0].tolist()


def test_a_chunk_settled_twice_counts_once(queue):
    job = queue.submit(spec_of(n=10, shard_size=5))
    a = queue.take("a")
    b = queue.take("b")
    assert {a.chunk, b.chunk} == {0, 1} and a.deliveries == b.deliveries == 1
    assert queue.start(job) == "running"
    assert queue.settle(a, 5, ok=True) == "running"
    assert queue.settle(a, 5, ok=True) == "duplicate"
    assert queue.queued_samples() == 5
    assert queue.settle(b, 5, ok=True) == "completed"
    status = queue.status(job)
    assert status["done"] == 10 and status["done_shards"] == [0, 1] and queue.queued_samples() == 0
    assert queue.r.xlen(queue.stream) == 0 and queue.take("a", block_ms=10) is None


def test_lease_heartbeat_holds_a_chunk_and_an_idle_one_is_redelivered(queue):
    queue.submit(spec_of(n=5, shard_size=5))
    held = queue.take("a")
    for _ in range(8):  # 0.8 s > visibility 0.5 s, but touched every 0.1 s
        time.sleep(0.1)
        assert queue.touch("a", held)
    assert queue.take("b", block_ms=10) is None
    time.sleep(0.6)
    again = queue.take("b", block_ms=10)
    assert again.entry_id == held.entry_id and again.deliveries == 2
    assert not queue.touch("a", held)  # a's lease is gone: it must not steal it back
    queue.release("b", again)  # a shutdown hands it back at once, without counting a delivery
    third = queue.take("c", block_ms=10)
    assert third.entry_id == held.entry_id and third.deliveries == 2


def test_bounded_queue_and_cancel_return_capacity(redis_server):
    q = BatchQueue.from_url(redis_server.url, QueueConfig(max_queued_samples=30))
    job = q.submit(spec_of(n=20))
    with pytest.raises(QueueFull, match="limit is 30"):
        q.submit(spec_of(n=11))
    assert q.cancel(job) == "cancelled" and q.queued_samples() == 0
    assert q.cancel(job) == "cancelled" and q.queued_samples() == 0  # idempotent
    d = q.take("w", block_ms=10)
    assert q.settle(d, 7, ok=True) == "cancelled" and q.queued_samples() == 0
    assert q.cancel("nope") is None


def test_sweep_removes_expired_jobs_and_their_shards(redis_server, tmp_path):
    q = BatchQueue.from_url(redis_server.url, QueueConfig(ttl_s=5))
    results = str(tmp_path / "results")
    old, young = q.submit(spec_of(n=5, shard_size=5, results=results)), q.submit(spec_of(n=5, results=results))
    store = ResultStore(results)
    for job in (old, young):
        store.put(f"{job}/shard-000000.npz", b"x")
    d = q.take("w", block_ms=10)
    assert d.job_id == old
    q.settle(d, 5, ok=True)
    assert sweep(q, now=time.time() + 1) == []
    q.r.zadd(q.expiry, {old: time.time() - 1})
    assert sweep(q) == [old]
    assert q.status(old) is None and not (tmp_path / "results" / old).exists()
    assert q.status(young) is not None and (tmp_path / "results" / young).exists()
    assert old not in q.list_jobs()


def test_dead_workers_are_forgotten_unless_they_hold_a_chunk(redis_server):
    q = BatchQueue.from_url(redis_server.url)
    q.submit(spec_of(n=14))
    q.settle(q.take("idle", block_ms=10), 7, ok=True)
    q.take("holder", block_ms=10)
    q.heartbeat("idle", {"pid": 1})
    time.sleep(0.01)
    forget_dead_workers(q, silent_s=0.0)
    assert q.workers() == []
    names = [c["name"].decode() for c in q.r.xinfo_consumers(q.stream, q.config.group)]
    assert names == ["holder"]


def test_result_store_writes_atomically_under_fsspec_urls(tmp_path):
    for url in (str(tmp_path / "r"), f"file://{tmp_path}/f", "memory://cgn-test/r"):
        store = ResultStore(url)
        store.put("job/shard-000000.npz", b"abc")
        assert store.get("job/shard-000000.npz") == b"abc" and store.size("job/shard-000000.npz") == 3
        assert b"".join(store.iter_bytes("job/shard-000000.npz", block=2)) == b"abc"
        store.remove_tree("job")
        assert not store.exists("job/shard-000000.npz")
    assert not list((tmp_path / "r").glob("**/*.tmp"))


@pytest.mark.parametrize("device", ["cuda:1", "gpu7"])
def test_worker_cli_refuses_a_device_it_cannot_use(device, capsys):
    from cgn_cli.main import main

    if device.startswith("cuda") and torch.cuda.device_count() > 1:
        pytest.skip("this machine has that device")
    assert main(["worker", "--device", device, "--redis-url", "redis://127.0.0.1:1/0"]) == 2
    assert f"--device {device}" in capsys.readouterr().err.replace("'", "")


def test_a_retried_submit_with_the_same_idempotency_key_queues_once(queue):
    first = queue.submit(spec_of(n=10), idempotency_key="abc")
    assert queue.submit(spec_of(n=10), idempotency_key="abc") == first
    assert queue.submit(spec_of(n=10), idempotency_key="other") != first
    assert queue.queued_samples() == 20 and queue.count() == 2


def test_a_batch_job_renders_at_its_truncation_as_the_sync_path_does():
    """ImageNet: shard bytes at the spec's truncation t equal the runner's at t (what /counterfactual
    serves with truncation t) and differ at another t; the model's own truncation is untouched."""
    from cgn.imagenet import model as imagenet
    from cgn.pipeline import generate as run_sync

    model = imagenet.ImagenetCGN(imagenet.ImagenetCGNConfig.tiny()).init_random_(0).eval()
    vocab = {m: [str(i) for i in range(1000)] for m in ("shape", "texture", "background")}
    spec = BatchSpec(model="imagenet-cgn", n=3, seed=2, shard_size=3, truncation=0.4, vocabulary=vocab)
    shard = shard_data(model, spec, 0, 3)
    p = plan(spec.seed, 0, 3, (1000, 1000, 1000))
    sync = run_sync(model, p.labels, p.seeds, ("composite",), truncation=0.4)
    assert (shard.images["composite"] == sync["composite"]).all()
    other = shard_data(model, replace(spec, truncation=0.9), 0, 3)
    assert (other.images["composite"] != shard.images["composite"]).any()
    assert model.config.truncation == 0.5
