"""cgn-train-classifier against real servers: the /samples stream, a batch job's shards, and the tiny Table 1."""

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from cgn_classifier import data
from cgn_classifier.cli import main
from cgn_client import CGNClient
from cgn_client.batch import batch_job
from PIL import Image
from servers import REPO, load_by_path

pytestmark = pytest.mark.slow


def _argv(real_npz: Path, out: Path, *extra: str) -> list[str]:
    return ["--data", str(real_npz), "--out", str(out), "--epochs", "1", "--quiet", *extra]


def test_job_streams_counterfactuals_through_the_sdk_and_writes_a_report(api, real_npz, tmp_path):
    cache = tmp_path / "cf.npz"
    service = ["--url", api.url, "--model", "mnist-test", "--cf-n", "200", "--cfs-per-shape", "10"]
    argv = _argv(real_npz, tmp_path / "r1.json", *service, "--pull-batch-size", "64", "--cf-cache", str(cache))
    assert main([*argv, "--seed", "3"]) == 0
    r = json.loads((tmp_path / "r1.json").read_text())
    assert r["dataset"] == "colored"
    assert r["service"]["url"] == api.url and r["service"]["model"] == "mnist-test"
    assert r["service"]["source"] == "stream" and r["service"]["n"] == 200 and r["service"]["prefetch"] == 2
    assert (r["data"]["real_train"], r["data"]["generated"], r["data"]["test"]) == (300, 200, 200)
    assert r["config"]["cfs_per_shape"] == 10 and r["training"]["optimizer"] == "adam" and r["wall_time_s"] > 0
    assert (r["training"]["weight_decay"], r["training"]["gamma"], r["training"]["seed"]) == (0.05, 0.7, 3)
    (epoch,) = r["epochs"]
    for key in ("train_acc", "test_acc", "test_acc_vs_digit"):
        assert set(epoch[key]) == {"shape", "texture", "background"}
        assert all(0 <= v <= 1 for v in epoch[key].values())
    assert r["table1"] == {"train_acc": epoch["train_acc"]["shape"], "test_acc": epoch["test_acc"]["shape"]}

    # what was trained on: 10 counterfactuals per shape, exactly the SDK's samples 0..199 of stream 0
    cf = data.Counterfactuals.load(cache)
    assert cf.images.shape == (200, 3, 32, 32) and cf.images.dtype == np.uint8
    shapes = cf.labels[:, 0].reshape(20, 10)
    assert (shapes == shapes[:, :1]).all()
    assert any(len(set(row)) > 1 for row in cf.labels[:, 1].reshape(20, 10))
    with CGNClient(api.url) as client:
        direct = client.sample_batch(64, start=128, model="mnist-test", cfs_per_shape=10)
    assert np.array_equal(cf.images[128:192], direct.images) and np.array_equal(cf.labels[128:192], direct.labels)

    # the cache is reused, and the same seed on the same data gives the same run
    assert main([*argv, "--seed", "3", "--out", str(tmp_path / "r2.json")]) == 0
    r2 = json.loads((tmp_path / "r2.json").read_text())
    assert r2["service"]["cache"] == str(cache)
    assert r2["epochs"][0]["train_acc"] == epoch["train_acc"] and r2["epochs"][0]["test_acc"] == epoch["test_acc"]


def test_non_counterfactual_policy_gives_every_mechanism_one_label(api):
    with CGNClient(api.url) as client:
        same = data.stream(client, data.Request(40, "mnist-test", 1, "same", 1), batch_size=16)
    assert len(same) == 40 and (same.labels == same.labels[:, :1]).all()
    assert len(set(same.labels[:, 0])) > 1


def test_job_trains_on_a_batch_jobs_shards(redis_server, model_root, tmp_path, real_npz):
    batch = load_by_path("_batch_conftest", REPO / "tests" / "batch" / "conftest.py")
    stack = batch.Stack(redis_server, model_root, tmp_path)
    try:
        stack.start_api()
        stack.start_worker()
        client = stack.client()
        service = ["--url", stack.url, "--model", "mnist-test", "--cf-n", "120", "--cf-seed", "5"]
        argv = _argv(real_npz, tmp_path / "batch.json", *service, "--source", "batch", "--shard-size", "50")
        assert main(argv) == 0
        r = json.loads((tmp_path / "batch.json").read_text())
        assert r["service"]["source"] == "batch" and r["service"]["model"] == "mnist-test"
        assert r["service"]["seed"] == 5 and r["service"]["cfs"] == 10 and r["data"]["generated"] == 120
        job = batch_job(client, r["service"]["job_id"])
        assert job.info["state"] == "completed" and len(job.info["shards"]) == 3

        # the shards hold exactly the samples the /samples stream gives for the same seed
        from_job = data.from_batch_job(client, job_id=job.id)
        streamed = data.stream(client, data.Request(120, "mnist-test", 5, "uniform", 10), batch_size=50)
        assert np.array_equal(from_job.images, streamed.images) and np.array_equal(from_job.labels, streamed.labels)

        # downloaded shard files train the same model as the job's shards read over HTTP
        job.download(tmp_path / "shards", labels=False)
        files = _argv(real_npz, tmp_path / "files.json", "--source", "shards", "--shards", str(tmp_path / "shards"))
        assert main(files) == 0
        r3 = json.loads((tmp_path / "files.json").read_text())
        assert r3["data"]["generated"] == 120
        assert r3["epochs"][0]["train_acc"] == r["epochs"][0]["train_acc"]
        client.close()
    finally:
        stack.close()


def test_tiny_table1_benchmark(random_store, tmp_path):
    table1 = load_by_path("_table1", REPO / "benchmarks" / "table1.py")
    with pytest.raises(SystemExit):  # a model that is not installed is named before anything starts
        table1.main(
            ["--model-store", str(random_store), "--model-template", "absent-{dataset}", "--work", str(tmp_path)]
        )
    argv = ["--model-store", str(random_store), "--model-template", "mnist-test", "--datasets", "colored"]
    argv += ["--seeds", "0,1", "--real-n", "200", "--test-n", "100", "--cf-n", "40,colored=100", "--epochs", "1"]
    argv += ["--work", str(tmp_path / "work"), "--grids", str(tmp_path / "grids"), "--pull-batch-size", "100"]
    argv += ["--oracle", "--cfs-per-shape", "10"]
    assert table1.main(argv) == 0
    out = json.loads((tmp_path / "work" / "results.json").read_text())
    cells = out["results"]["colored"]
    assert list(cells) == ["Original", "Original + GAN", "Original + CGN", "Original + true CFs (diagnostic)"]
    for cell in cells.values():
        for key in ("train", "test"):
            assert len(cell[key]["runs"]) == 2 and 0 <= cell[key]["mean"] <= 100 and cell[key]["std"] >= 0
        assert set(cell["heads_test"]) == {"shape", "texture", "background"}
    # generated once per config and dataset, reused by the second seed
    assert set(out["pulls"]) == {"colored/Original + GAN", "colored/Original + CGN"}
    gan = data.Counterfactuals.load(tmp_path / "work" / "generated" / "mnist-test-same-cfs1-n100.npz")
    cgn = data.Counterfactuals.load(tmp_path / "work" / "generated" / "mnist-test-uniform-cfs10-n100.npz")
    assert (gan.labels == gan.labels[:, :1]).all()
    assert (cgn.labels[:, 0].reshape(10, 10) == cgn.labels[::10, :1]).all()
    table = (tmp_path / "work" / "table1.md").read_text()
    assert "| Original + CGN |" in table and "(95.1)" in table and "(35.9)" in table
    oracle = data.Counterfactuals.load(tmp_path / "work" / "generated" / "oracle-colored-cfs10-n100.npz")
    assert (oracle.labels[:, 0].reshape(10, 10) == oracle.labels[::10, :1]).all() and oracle.images.shape[0] == 100
    assert Image.open(tmp_path / "grids" / "table1-counterfactuals-colored.png").size == (640, 640)
    with pytest.raises(httpx.TransportError):  # the benchmark's service is gone
        httpx.get(json.loads((tmp_path / "work" / "reports" / "colored-cgn-seed0.json").read_text())["service"]["url"])


def test_table1_budget_per_dataset():
    table1 = load_by_path("_table1", REPO / "benchmarks" / "table1.py")
    assert table1.per_dataset("50000,double-colored=100000", "--cf-n") == {
        "colored": 50000,
        "double-colored": 100000,
        "wildlife": 50000,
    }
    assert table1.per_dataset("4", "--epochs") == dict.fromkeys(table1.DATASETS, 4)
    for spec, words in [
        ("4,fashion=2", ["--epochs", "'fashion'", "colored, double-colored, wildlife"]),
        ("4,colored=x", ["--epochs", "'x'"]),
        ("colored=4", ["--epochs", "double-colored, wildlife"]),
        ("-1", ["--epochs", ">= 0"]),
    ]:
        with pytest.raises(ValueError) as e:
            table1.per_dataset(spec, "--epochs")
        assert all(w in str(e.value) for w in words), (spec, str(e.value))
