"""POST /interpolate against a real `cgn serve`: strips whose ends are the plain classes, clear 422s."""

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow


def post(url: str, body: dict, accept: str = "application/json") -> httpx.Response:
    return httpx.post(f"{url}/interpolate", json=body, headers={"Accept": accept}, timeout=60)


def pixels(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_texture_strip_ends_on_the_plain_classes_and_is_deterministic(url):
    body = {"mechanism": "texture", "from": 2, "to": "color-7", "steps": 5, "shape": "three", "bg": 1, "seed": 4}
    r = post(url, body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["model"] == "mnist-test" and data["mechanism"] == "texture" and data["steps"] == 5
    assert data["t"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert data["from"] == {"id": 2, "name": "color-2", "via": "id"}
    assert data["to"] == {"id": 7, "name": "color-7", "via": "name"}
    assert data["labels"]["shape"]["id"] == 3 and data["labels"]["background"]["id"] == 1
    assert set(data["outputs"]) == {"composite", "foreground"} and len(data["outputs"]["composite"]) == 5
    assert post(url, body).json()["outputs"] == data["outputs"]  # same request, same bytes
    for i, texture in ((0, 2), (-1, 7)):  # the ends: what /counterfactual and /mechanisms give for the classes
        cf = httpx.post(f"{url}/counterfactual", json={"shape": 3, "texture": texture, "bg": 1, "seed": 4})
        assert base64.b64decode(data["outputs"]["composite"][i]) == cf.content
        mech = httpx.post(f"{url}/mechanisms/texture", json={"label": texture, "seed": 4})
        assert base64.b64decode(data["outputs"]["foreground"][i]) == mech.content
    middle = [pixels(b) for b in data["outputs"]["foreground"]]
    assert all(not np.array_equal(middle[i], middle[i + 1]) for i in range(4))


def test_shape_strip_with_an_asset_background_and_per_mechanism_seeds(url):
    body = {"mechanism": "shape", "from": "one", "to": 7, "steps": 3, "texture": 5, "bg": "moon", "seeds": {"shape": 9}}
    data = post(url, {**body, "outputs": ["mask", "background", "composite"]}).json()
    assert data["labels"]["background"]["via"] == "asset" and data["seeds"] == {
        "shape": 9,
        "texture": 0,
        "background": 0,
    }
    masks = [pixels(b) for b in data["outputs"]["mask"]]
    assert masks[0].ndim == 2 and len({m.tobytes() for m in masks}) == 3
    assert len(set(data["outputs"]["background"])) == 1  # the moon, unchanged along the strip
    cf = httpx.post(
        f"{url}/counterfactual", json={"shape": 7, "texture": 5, "bg": "moon", "seed": 0, "seeds": {"shape": 9}}
    )
    assert base64.b64decode(data["outputs"]["composite"][-1]) == cf.content


def test_accept_png_gives_one_strip_image(url):
    body = {"mechanism": "background", "from": 0, "to": 9, "steps": 6, "outputs": ["composite", "mask", "background"]}
    r = post(url, body, accept="image/png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    strip = Image.open(io.BytesIO(r.content))
    assert strip.size == (6 * 32, 3 * 32) and strip.mode == "RGB"
    data = post(url, body).json()
    cells = np.asarray(strip)
    for row, output in enumerate(body["outputs"]):
        for i in (0, 5):
            cell = pixels(data["outputs"][output][i])
            cell = np.repeat(cell[..., None], 3, axis=-1) if cell.ndim == 2 else cell
            assert np.array_equal(cells[row * 32 : (row + 1) * 32, i * 32 : (i + 1) * 32], cell)
    jpeg = post(url, {**body, "format": "jpeg"}, accept="image/jpeg")
    assert jpeg.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"mechanism": "texture", "from": 1, "to": 2, "steps": 17}, "steps", "less than or equal to 16"),
        ({"mechanism": "texture", "from": 1, "to": 2, "steps": 1}, "steps", "greater than or equal to 2"),
        ({"mechanism": "colour", "from": 1, "to": 2}, "mechanism", "'shape', 'texture' or 'background'"),
        ({"mechanism": "texture", "to": 2}, "from", "Field required"),
        ({"mechanism": "texture", "from": "zebra", "to": 2}, "from", "'zebra' is no class of model 'mnist-test'"),
        ({"mechanism": "texture", "from": 1, "to": 10}, "to", "class id must be in [0, 9]"),
        ({"mechanism": "texture", "from": 1, "to": 2, "texture": 3}, "texture", "leave `texture` out"),
        ({"mechanism": "background", "from": 1, "to": 2, "bg": "moon"}, "bg", "leave `bg` out"),
        ({"mechanism": "shape", "from": 1, "to": 2, "bg": "nowhere"}, "bg", "'nowhere' is no class"),
        ({"mechanism": "shape", "from": 1, "to": 2, "truncation": 0.5}, "truncation", "takes no truncation"),
        ({"mechanism": "shape", "from": 1, "to": 2, "outputs": ["premask"]}, "outputs.0", "composite"),
        ({"mechanism": "shape", "from": 1, "to": 2, "model": "nope"}, "model", "unknown model"),
    ],
)
def test_bad_requests_name_the_field(url, body, field, words):
    r = post(url, body)
    assert r.status_code in (404, 422), r.text
    err = r.json()["error"]
    assert err["field"] == field and err["message"].startswith(f"{field}: ") and words in err["message"], err


def test_imagenet_strip_with_truncation(imagenet_url):
    body = {"model": "imagenet-cgn", "mechanism": "texture", "from": "cow", "to": "zebra", "steps": 3, "shape": "cow"}
    r = post(imagenet_url, {**body, "truncation": 0.7, "bg": "moon"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["from"]["name"] == "ox" and data["image_size"] == 64
    assert pixels(data["outputs"]["composite"][0]).shape == (64, 64, 3)
    again = post(imagenet_url, {**body, "truncation": 0.7, "bg": "moon"}).json()
    assert again["outputs"] == data["outputs"]
    other = post(imagenet_url, {**body, "truncation": 0.3, "bg": "moon"}).json()
    assert other["outputs"]["foreground"] != data["outputs"]["foreground"]
