"""The user's example on a deployment with a (random, tiny) ImageNet CGN installed: ox / elephant / moon."""

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

USER_EXAMPLE = {"shape": "cow", "texture": "elephant", "bg": "moon"}


def test_user_example_resolves_ox_elephant_moon(imagenet_url):
    r = httpx.post(f"{imagenet_url}/counterfactual", json=USER_EXAMPLE, timeout=120)
    assert r.status_code == 200, r.text
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "PNG" and img.size == (64, 64) and img.mode == "RGB"
    assert r.headers["x-cgn-model"] == "imagenet-cgn"
    assert "mnist-test" in r.headers["x-cgn-note"]  # says why another model than the default served it
    labels = json.loads(r.headers["x-cgn-labels"])
    assert labels["shape"] == "ox" and "elephant" in labels["texture"] and labels["background"] == "moon"

    body = httpx.post(
        f"{imagenet_url}/counterfactual", json=USER_EXAMPLE, headers={"Accept": "application/json"}, timeout=120
    ).json()
    assert body["model"] == "imagenet-cgn" and body["image_size"] == 64
    assert body["labels"]["shape"] == {"id": 345, "name": "ox", "via": "hypernym", "asset": None}
    assert body["labels"]["texture"]["id"] in (385, 386, 101)  # Indian / African elephant, tusker
    assert body["labels"]["background"]["asset"]["resized_to"] == 64
    assert base64.b64decode(body["outputs"]["composite"]) == r.content  # same bytes, PNG or JSON


def test_named_model_and_truncation(imagenet_url):
    base = USER_EXAMPLE | {"model": "imagenet-cgn", "seed": 3}
    a = httpx.post(f"{imagenet_url}/counterfactual", json=base | {"truncation": 0.4}, timeout=120)
    b = httpx.post(f"{imagenet_url}/counterfactual", json=base | {"truncation": 0.4}, timeout=120)
    c = httpx.post(f"{imagenet_url}/counterfactual", json=base | {"truncation": 0.9}, timeout=120)
    assert a.status_code == b.status_code == c.status_code == 200
    assert a.content == b.content and a.content != c.content
    err = httpx.post(f"{imagenet_url}/counterfactual", json=base | {"shape": "cowz"}).json()["error"]
    assert err["type"] == "unknown_name" and err["model"] == "imagenet-cgn"
    classes = httpx.get(f"{imagenet_url}/models/imagenet-cgn/classes", params={"q": "cow"}).json()
    assert classes["mechanisms"]["shape"]["resolved"]["name"] == "ox"
    mask = httpx.post(f"{imagenet_url}/mechanisms/shape", json={"model": "imagenet-cgn", "label": "ox"}, timeout=120)
    assert mask.status_code == 200 and np.asarray(Image.open(io.BytesIO(mask.content))).shape == (64, 64)
