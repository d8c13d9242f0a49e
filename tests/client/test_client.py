"""The SDK against a real server: twins agree, errors are typed, retries honour Retry-After, batches prefetch."""

import asyncio
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from cgn_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncCGNClient,
    AuthenticationError,
    CGNClient,
    ConflictError,
    InvalidRequestError,
    ModelNotInstalledError,
    NotFoundError,
    OverloadedError,
    UnknownNameError,
    asset,
    parse_retry_after,
)
from PIL import Image

pytestmark = pytest.mark.slow
KEY = "sdk-key"


@pytest.fixture(scope="module")
def client(api):
    with CGNClient(api.url, api_key=KEY) as c:
        yield c


def test_counterfactual_images_and_labels(client):
    cf = client.counterfactual(shape="seven", texture=3, bg="moon", seed=5, outputs=["composite", "mask"])
    assert isinstance(cf.image, Image.Image) and cf.image.size == (32, 32) and cf.image.mode == "RGB"
    assert cf.images["mask"].mode == "L"
    assert cf.model == "mnist-test" and cf.seeds == {"shape": 5, "texture": 5, "background": 5}
    assert cf.labels["shape"]["id"] == 7 and cf.labels["texture"]["name"] == "color-3"
    assert cf.labels["background"]["asset"]["name"] == "moon"
    same = client.counterfactual(shape=7, texture=3, bg=asset("moon"), seed=5)
    assert np.array_equal(np.asarray(same.image), np.asarray(cf.image))
    npy = client.counterfactual(shape=7, texture=3, bg="moon", seed=5, format="npy")
    assert np.array_equal(np.asarray(npy.image), np.asarray(cf.image))


def test_async_twin_gives_the_same_results(client, api):
    async def run():
        async with AsyncCGNClient(api.url, api_key=KEY) as ac:
            cf = await ac.counterfactual(shape=1, texture=2, bg=3, seed=4)
            batch = await ac.sample_batch(6, seed=9)
            mech = await ac.mechanism("texture", 4, seed=2)
            models = await ac.models()
            assert await ac.models.retrieve("mnist-test") == await ac.model("mnist-test")
            assert (await ac.models.classes("seven"))["mechanisms"]["shape"]["resolved"]["id"] == 7
            batches = [b async for b in ac.batches(3, num_batches=2, seed=9)]
            with pytest.raises(UnknownNameError):
                await ac.counterfactual(shape="sevn")
            return cf, batch, mech, models, batches

    cf, batch, mech, models, batches = asyncio.run(run())
    assert np.array_equal(
        np.asarray(cf.image), np.asarray(client.counterfactual(shape=1, texture=2, bg=3, seed=4).image)
    )
    ref = client.sample_batch(6, seed=9)
    assert np.array_equal(batch.images, ref.images) and np.array_equal(batch.labels, ref.labels)
    assert np.array_equal(np.asarray(mech), np.asarray(client.mechanism("texture", 4, seed=2)))
    assert [m["name"] for m in models] == [m["name"] for m in client.models()]
    assert np.array_equal(np.concatenate([b.images for b in batches]), ref.images)


def test_sample_batch_numpy_and_torch(client):
    import torch

    b = client.sample_batch(10, seed=3, cfs_per_shape=5)
    assert b.images.shape == (10, 3, 32, 32) and b.images.dtype == np.uint8 and len(b) == 10
    assert (b.shape_labels[:5] == b.shape_labels[0]).all() and (b.seeds[:5, 0] == b.seeds[0, 0]).all()
    t = client.sample_batch(10, seed=3, cfs_per_shape=5, as_torch=True)
    assert t.images.dtype == torch.uint8 and torch.equal(t.images, torch.from_numpy(b.images.copy()))
    assert t.labels.dtype == torch.int64
    fixed = client.sample_batch(4, seed=1, shape="three", outputs=["composite", "mask"])
    assert (fixed.shape_labels == 3).all() and fixed.outputs["mask"].shape == (4, 1, 32, 32)


def test_prefetching_batches_are_the_stream(client):
    whole = client.sample_batch(12, seed=21)
    got = list(client.batches(4, num_batches=3, prefetch=2, seed=21))
    assert [b.start for b in got] == [0, 4, 8]
    assert np.array_equal(np.concatenate([b.images for b in got]), whole.images)
    assert np.array_equal(np.concatenate([b.labels for b in got]), whole.labels)
    endless = client.batches(2, seed=21)
    first = next(endless)
    endless.close()  # stops the prefetch thread
    assert np.array_equal(first.images, whole.images[:2])


def test_models_classes_and_assets(client, tmp_path):
    names = {m["name"]: m for m in client.models()}
    assert names["mnist-test"]["installed"] and client.model("mnist-test")["image_size"] == 32
    found = client.classes("seven")
    assert found["mechanisms"]["shape"]["resolved"]["id"] == 7
    grey = Image.new("RGB", (20, 10), (10, 200, 30))
    info = client.upload_asset("grass", grey, description="green")
    assert info["width"] == 20 and info["height"] == 10
    cf = client.counterfactual(shape=1, texture="grass", bg=2, outputs=["foreground"])
    assert np.asarray(cf.image)[0, 0].tolist() == [10, 200, 30]
    path = tmp_path / "sky.png"
    Image.new("RGB", (8, 8), (0, 0, 255)).save(path)
    assert client.upload_asset("sky", path)["name"] == "sky"
    assert client.health() == {"status": "ok"} and client.ready()["status"] == "ready"


def test_namespaces_models_assets_batches(client, api):
    assert client.models() == client.models.list() and client.models.default() == "mnist-test"
    assert client.models.retrieve("mnist-test") == client.model("mnist-test")
    assert client.models.classes("three") == client.classes("three", model="mnist-test")
    info = client.assets.upload("dot", Image.new("RGB", (6, 4), (250, 0, 0)), "a red dot")
    assert info["name"] == "dot" and "dot" in {a["name"] for a in client.assets.list()}
    assert client.assets.image("dot").size == (info["width"], info["height"])
    assert client.assets.delete("dot") == {"name": "dot", "deleted": True}
    assert "dot" not in {a["name"] for a in client.assets.list()}
    with pytest.raises(NotFoundError):
        client.assets.delete("dot")
    with pytest.raises(ConflictError):
        client.assets.delete("moon")
    # client.batches is the job API, and called it is the prefetching /samples iterator
    assert callable(client.batches) and callable(client.batches.submit) and callable(client.batches.get)
    with pytest.raises(TypeError):  # a bad option fails at the call, not later in the prefetch thread
        client.batches(2, colour=3)
    with CGNClient(api.url, api_key=KEY, max_retries=0) as c, pytest.raises(OverloadedError):
        c.batches.submit(4)  # this server has no Redis: 503 (no retries asked)


def test_typed_errors_carry_the_server_message(client, api):
    with pytest.raises(UnknownNameError) as e:
        client.counterfactual(shape="sevn")
    assert e.value.status_code == 422 and e.value.field == "shape" and "seven" in e.value.suggestions
    assert "'sevn'" in e.value.message and e.value.request_id
    with pytest.raises(InvalidRequestError) as e:
        client.counterfactual(shape=1, seed=-1)
    assert e.value.field == "seed"
    with pytest.raises(InvalidRequestError, match="at most 1024"):
        client.sample_batch(5000)
    with pytest.raises(ModelNotInstalledError) as e:
        client.counterfactual(model="imagenet-cgn", shape="ox")
    assert e.value.install == "cgn models pull imagenet"
    with pytest.raises(NotFoundError):
        client.model("nope")
    with pytest.raises(AuthenticationError, match="API key"), CGNClient(api.url) as anonymous:
        anonymous.models()


def test_retries_honour_retry_after_on_503(busy_api):
    bodies = [("composite",), ("mask",), ("foreground",), ("background",), ("premask",), ("composite", "mask")]
    with CGNClient(busy_api.url, max_retries=0) as impatient, ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda o: _try(impatient, o), bodies))
    assert any(isinstance(x, OverloadedError) for x in outcomes), "the queue never filled"
    started = time.monotonic()
    with CGNClient(busy_api.url, max_retries=6) as patient, ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda o: patient.counterfactual(shape=1, outputs=list(o)), bodies))
    assert all(r.model == "mnist-test" for r in results)
    assert time.monotonic() - started >= 1.0  # at least one request slept Retry-After: 1
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None


def _try(client, outputs):
    try:
        return client.counterfactual(shape=1, outputs=list(outputs))
    except OverloadedError as exc:
        return exc


def test_connection_errors_are_retried_then_raised():
    from servers import free_port

    started = time.monotonic()
    with (
        CGNClient(f"http://127.0.0.1:{free_port()}", max_retries=3, backoff=0.1) as c,
        pytest.raises(APIConnectionError),
    ):
        c.health()
    assert time.monotonic() - started >= 0.1 * (1 + 2 + 4) * 0.75  # three backoffs slept


def test_timeouts_raise_api_timeout_error(api):
    with CGNClient(api.url, api_key=KEY, timeout=0.0005, max_retries=0) as c, pytest.raises(APITimeoutError):
        c.sample_batch(512)


def test_client_installs_alone_and_imports_nothing_of_the_server(tmp_path):
    client_dir = Path(__file__).parents[2] / "client"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(client_dir),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("cgn_client-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert all(n.startswith(("cgn_client/", "cgn_client-")) for n in names), names
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        f"import sys; sys.path.insert(0, {str(target)!r}); import cgn_client; "
        "assert cgn_client.__file__.startswith(sys.path[0]), cgn_client.__file__; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('service', 'cgn', 'model_store', 'torch')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
