"""POST /counterfactual, /mechanisms, /samples against a real `cgn serve` on the random-weight mnist-test model."""

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from cgn.sampling import plan

pytestmark = pytest.mark.slow


def png_pixels(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    return np.asarray(img)


def cf_json(url: str, body: dict) -> dict:
    r = httpx.post(f"{url}/counterfactual", json=body, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


def decoded(body: dict, output: str) -> np.ndarray:
    return png_pixels(base64.b64decode(body["outputs"][output]))


def test_counterfactual_returns_png_by_default_with_curl_form_content_type(url):
    # curl -d sends application/x-www-form-urlencoded: the body is still read as JSON
    r = httpx.post(
        f"{url}/counterfactual",
        content=b'{"shape": "seven", "texture": 2, "bg": "moon", "seed": 5}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (32, 32) and img.mode == "RGB"
    assert r.headers["x-cgn-model"] == "mnist-test"
    assert json.loads(r.headers["x-cgn-labels"]) == {"shape": "7", "texture": "color-2", "background": "moon"}
    assert r.headers["x-request-id"]


def test_user_example_on_mnist_only_deployment_says_how_to_install_imagenet(url):
    r = httpx.post(f"{url}/counterfactual", json={"shape": "cow", "texture": "elephant", "bg": "moon"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "unknown_name" and err["field"] == "shape" and err["word"] == "cow"
    assert "cgn models pull imagenet" in err["message"] and "imagenet-cgn" in err["message"]


def test_same_request_same_bytes_and_seed_changes_them(url):
    body = {"shape": 3, "texture": 4, "bg": 5, "seed": 11}
    a = httpx.post(f"{url}/counterfactual", json=body).content
    b = httpx.post(f"{url}/counterfactual", json=body).content
    c = httpx.post(f"{url}/counterfactual", json=body | {"seed": 12}).content
    assert a == b and a != c


def test_outputs_compose_and_counterfactual_keeps_the_shape_noise(url):
    outs = ["composite", "mask", "foreground", "background"]
    one = cf_json(url, {"shape": 1, "texture": 2, "bg": 3, "seed": 9, "outputs": outs})
    m = decoded(one, "mask").astype(float)[..., None] / 255
    f, b = decoded(one, "foreground").astype(float), decoded(one, "background").astype(float)
    x = decoded(one, "composite").astype(float)
    assert np.abs(m * f + (1 - m) * b - x).max() <= 2.0  # x = m f + (1 - m) b, up to uint8 rounding
    assert one["labels"]["shape"] == {"id": 1, "name": "1", "via": "id", "asset": None}
    assert one["seeds"] == {"shape": 9, "texture": 9, "background": 9}
    # the paper's counterfactual: same noise u, other texture/background labels -> the same mask
    other = cf_json(url, {"shape": 1, "texture": 7, "bg": 0, "seed": 9, "outputs": outs})
    assert np.array_equal(decoded(one, "mask"), decoded(other, "mask"))
    assert not np.array_equal(decoded(one, "foreground"), decoded(other, "foreground"))
    # per-mechanism seeds override the shared one
    own = cf_json(url, {"shape": 1, "texture": 2, "bg": 3, "seed": 9, "seeds": {"shape": 10}, "outputs": outs})
    assert own["seeds"]["shape"] == 10
    assert not np.array_equal(decoded(one, "mask"), decoded(own, "mask"))
    assert np.array_equal(decoded(one, "foreground"), decoded(own, "foreground"))


def test_formats_jpeg_npy_json_agree(url):
    body = {"shape": 2, "texture": 2, "bg": 2, "seed": 1}
    png = png_pixels(httpx.post(f"{url}/counterfactual", json=body).content)
    npy = httpx.post(f"{url}/counterfactual", json=body | {"format": "npy"})
    assert npy.headers["content-type"] == "application/x-npy"
    arr = np.load(io.BytesIO(npy.content))
    assert arr.dtype == np.uint8 and arr.shape == (3, 32, 32)
    assert np.array_equal(arr.transpose(1, 2, 0), png)
    jpg = httpx.post(f"{url}/counterfactual", json=body, headers={"Accept": "image/jpeg"})
    assert jpg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpg.content)).format == "JPEG"
    assert np.abs(np.asarray(Image.open(io.BytesIO(jpg.content))).astype(int) - png).mean() < 12
    assert np.array_equal(decoded(cf_json(url, body), "composite"), png)


def test_omitted_labels_are_drawn_from_the_seed(url):
    a, b = cf_json(url, {"seed": 3}), cf_json(url, {"seed": 3})
    assert a["labels"] == b["labels"] and all(v["via"] == "drawn" for v in a["labels"].values())


def test_asset_intervention_plain_word_and_explicit_agree(url):
    word = cf_json(url, {"shape": 4, "texture": 1, "bg": "moon", "outputs": ["composite", "background"]})
    explicit = cf_json(url, {"shape": 4, "texture": 1, "bg": {"asset": "moon"}, "outputs": ["composite", "background"]})
    assert word["outputs"] == explicit["outputs"]
    info = word["labels"]["background"]
    assert info["via"] == "asset" and info["asset"]["resized_to"] == 32 and info["asset"]["width"] == 512
    moon = Image.open(io.BytesIO(httpx.get(f"{url}/assets/moon").content)).convert("RGB")
    expected = np.asarray(moon.resize((32, 32), Image.Resampling.BILINEAR))
    assert np.abs(decoded(word, "background").astype(int) - expected).max() <= 1
    # a mask asset is read as grey levels
    masked = cf_json(url, {"shape": {"asset": "moon"}, "texture": 1, "bg": 2, "outputs": ["mask"]})
    grey = np.asarray(moon.convert("L").resize((32, 32), Image.Resampling.BILINEAR))
    assert np.abs(decoded(masked, "mask").astype(int) - grey).max() <= 1


MECHANISM_OUTPUTS = [
    ("shape", "mask", "shape"),
    ("texture", "foreground", "texture"),
    ("background", "background", "bg"),
]


@pytest.mark.parametrize(("mechanism", "output", "field"), MECHANISM_OUTPUTS)
def test_mechanism_endpoint_matches_the_counterfactual_output(url, mechanism, output, field):
    r = httpx.post(f"{url}/mechanisms/{mechanism}", json={"label": 6, "seed": 77})
    assert r.status_code == 200, r.text
    img = png_pixels(r.content)
    body = cf_json(url, {field: 6, "seed": 77, "outputs": [output]})
    assert np.array_equal(img, decoded(body, output))
    assert img.shape == ((32, 32) if mechanism == "shape" else (32, 32, 3))


def test_samples_payload_matches_plan_and_counterfactual(url):
    from cgn_client import decode_samples

    r = httpx.post(f"{url}/samples", json={"n": 12, "seed": 4, "start": 3, "cfs_per_shape": 3})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-cgn-samples"
    arrays, meta = decode_samples(r.content)
    expected = plan(4, 3, 15, 10, "uniform", (None, None, None), 3)
    assert np.array_equal(arrays["labels"], expected.labels) and np.array_equal(arrays["seeds"], expected.seeds)
    assert arrays["composite"].shape == (12, 3, 32, 32) and arrays["composite"].dtype == np.uint8
    assert meta["model"] == "mnist-test" and meta["start"] == 3
    for i in (0, 5, 11):  # sample i of the payload == the same labels and seeds through /counterfactual
        lab, sd = arrays["labels"][i].tolist(), arrays["seeds"][i].tolist()
        seeds = dict(zip(("shape", "texture", "background"), sd, strict=True))
        body = cf_json(url, {"shape": lab[0], "texture": lab[1], "bg": lab[2], "seeds": seeds, "format": "npy"})
        npy = np.load(io.BytesIO(base64.b64decode(body["outputs"]["composite"])))
        assert np.array_equal(npy, arrays["composite"][i])
    fixed = decode_samples(httpx.post(f"{url}/samples", json={"n": 5, "shape": "seven", "bg": 1}).content)[0]
    assert (fixed["labels"][:, 0] == 7).all() and (fixed["labels"][:, 2] == 1).all()


def test_models_and_classes(url):
    listing = httpx.get(f"{url}/models").json()
    by_name = {m["name"]: m for m in listing["models"]}
    assert by_name["mnist-test"]["installed"] and by_name["mnist-test"]["image_size"] == 32
    assert by_name["mnist-test"]["mechanisms"]["texture"]["classes"] == 10
    assert by_name["imagenet-cgn"]["installed"] is False
    assert by_name["imagenet-cgn"]["install"] == "cgn models pull imagenet"
    assert {"name": "moon"}.items() <= next(a for a in listing["assets"] if a["name"] == "moon").items()
    one = httpx.get(f"{url}/models/mnist-test").json()
    assert one["architecture"] == "mnist-cgn" and one["default"] is True
    found = httpx.get(f"{url}/models/mnist-test/classes", params={"q": "seven"}).json()
    assert found["mechanisms"]["shape"]["resolved"] == {"id": 7, "name": "7", "via": "alias"}
    near = httpx.get(f"{url}/models/mnist-test/classes", params={"q": "sevn", "mechanism": "shape"}).json()
    assert near["mechanisms"]["shape"]["resolved"] is None and "seven" in near["mechanisms"]["shape"]["suggestions"]
    assert list(near["mechanisms"]) == ["shape"]
    everything = httpx.get(f"{url}/models/mnist-test/classes").json()
    assert everything["mechanisms"]["texture"]["classes"][3] == {"id": 3, "name": "color-3"}


def test_health_ready_metrics_and_request_ids(url):
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz").json()
    assert ready["status"] == "ready" and "mnist-test" in ready["loaded"]
    r = httpx.post(f"{url}/counterfactual", json={"shape": 1}, headers={"X-Request-ID": "trace-me-42"})
    assert r.headers["x-request-id"] == "trace-me-42"
    text = httpx.get(f"{url}/metrics").text
    for name in (
        "cgn_requests_total",
        "cgn_request_seconds_bucket",
        "cgn_microbatch_size_bucket",
        "cgn_queue_depth",
        "cgn_images_generated_total",
    ):
        assert name in text
    assert 'route="/counterfactual",status="200"' in text
