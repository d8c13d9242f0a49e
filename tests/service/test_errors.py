"""Every bad input gets a 4xx JSON error naming the problem, and the service keeps serving."""

import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow


def error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["message"] and err["type"] and err["request_id"] == r.headers["x-request-id"]
    return err


BAD_COUNTERFACTUALS = [
    # (body, status, field, words the message must contain)
    ({"shape": "thre"}, 422, "shape", ["'thre'", "closest: three"]),
    ({"texture": "plaid-velvet"}, 422, "texture", ["'plaid-velvet'", "mnist-test"]),  # no class of any model
    ({"shape": 10}, 422, "shape", ["[0, 9]"]),
    ({"shape": -1}, 422, "shape", ["[0, 9]"]),
    ({"seed": -1}, 422, "seed", ["greater than or equal to 0"]),
    ({"seed": 2**63}, 422, "seed", ["less than or equal to 9223372036854775807"]),
    ({"seed": 1.5}, 422, "seed", ["integer"]),
    ({"seed": "7"}, 422, "seed", ["integer"]),
    ({"seeds": {"shape": -3}}, 422, "seeds.shape", ["greater than or equal"]),
    ({"shape": [1]}, 422, "shape", ["class id", '{"asset": NAME}']),
    ({"shape": True}, 422, "shape", ["class id"]),
    ({"bg": {"asset": "mars-nope"}}, 422, "bg.asset", ["unknown asset 'mars-nope'"]),
    ({"bg": {"image": "moon"}}, 422, "bg", ["asset"]),
    ({"outputs": ["composite", "depth"]}, 422, "outputs.1", ["composite", "premask"]),
    ({"outputs": []}, 422, "outputs", ["at least 1"]),
    ({"format": "gif"}, 422, "format", ["png", "jpeg", "npy"]),
    ({"truncation": 0.5}, 422, "truncation", ["takes no truncation"]),
    ({"truncation": 3}, 422, "truncation", ["less than or equal to 1"]),
    ({"model": "no-such-model"}, 404, "model", ["unknown model 'no-such-model'"]),
    ({"model": "imagenet-cgn"}, 404, "model", ["not installed", "cgn models pull imagenet"]),
    ({"colour": "red"}, 422, "colour", ["Extra inputs are not permitted"]),
]


@pytest.mark.parametrize(("body", "status", "field", "words"), BAD_COUNTERFACTUALS)
def test_bad_counterfactual_inputs(url, body, status, field, words):
    err = error(httpx.post(f"{url}/counterfactual", json=body), status)
    assert err["field"] == field
    for w in words:
        assert w in err["message"] or w in str(err.get("allowed")), err


def test_unknown_name_carries_suggestions(url):
    err = error(httpx.post(f"{url}/counterfactual", json={"shape": "sevn"}), 422)
    assert err["type"] == "unknown_name" and "seven" in err["suggestions"]


@pytest.mark.parametrize(
    ("content", "words"),
    [(b'{"shape": 3,', "malformed JSON"), (b"not json at all", "malformed JSON"), (b"[1, 2]", "body"), (b"", "body")],
)
def test_malformed_json(url, content, words):
    r = httpx.post(f"{url}/counterfactual", content=content, headers={"Content-Type": "application/json"})
    assert words in error(r, 422)["message"]


def test_samples_limits_and_types(url):
    err = error(httpx.post(f"{url}/samples", json={"n": 257}), 422)
    assert err["field"] == "n" and "at most 256" in err["message"] and err["allowed"] == "1..256"
    assert error(httpx.post(f"{url}/samples", json={"n": 0}), 422)["field"] == "n"
    assert error(httpx.post(f"{url}/samples", json={"n": "8"}), 422)["field"] == "n"
    assert error(httpx.post(f"{url}/samples", json={}), 422)["field"] == "n"
    assert error(httpx.post(f"{url}/samples", json={"n": 2, "policy": "zipf"}), 422)["field"] == "policy"
    assert error(httpx.post(f"{url}/samples", json={"n": 2, "shape": "eleven"}), 422)["field"] == "shape"
    assert error(httpx.post(f"{url}/samples", json={"n": 2, "cfs_per_shape": 0}), 422)["field"] == "cfs_per_shape"


def test_mechanism_errors(url):
    err = error(httpx.post(f"{url}/mechanisms/colour", json={"label": 1}), 422)
    assert err["field"] == "mechanism" and "shape" in err["allowed"]
    assert error(httpx.post(f"{url}/mechanisms/shape", json={}), 422)["field"] == "label"
    assert "closest" in error(httpx.post(f"{url}/mechanisms/shape", json={"label": "sevn"}), 422)["message"]


def test_not_found_and_method(url):
    assert error(httpx.get(f"{url}/models/nope"), 404)["field"] == "name"
    assert error(httpx.get(f"{url}/nowhere"), 404)["type"] == "not_found"
    assert error(httpx.get(f"{url}/counterfactual"), 405)["type"] == "method_not_allowed"
    assert error(httpx.get(f"{url}/assets/nope"), 404)["field"] == "name"


def test_oversized_body_is_413(url):
    big = b'{"shape": "' + b"x" * (300 * 1024) + b'"}'
    err = error(httpx.post(f"{url}/counterfactual", content=big, headers={"Content-Type": "application/json"}), 413)
    assert err["field"] == "body" and "larger than" in err["message"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"shape": "'
        for _ in range(40):
            yield b"x" * 10_000
        yield b'"}'

    r = httpx.post(f"{url}/counterfactual", content=chunks(), headers={"Content-Type": "application/json"})
    err = error(r, 413)
    assert err["type"] == "payload_too_large"


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height pixels, with a tiny (truncated) zlib stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 100_000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def upload(url: str, name: str, data: bytes, **extra) -> httpx.Response:
    return httpx.post(f"{url}/assets", data={"name": name, **extra}, files={"file": ("f", data, "image/png")})


def test_asset_upload_validation(url):
    err = error(upload(url, "notimg", b"GIF89a but not really an image"), 422)
    assert err["field"] == "file" and "not a readable image" in err["message"]
    err = error(upload(url, "bomb", png_bomb(60_000, 60_000)), 422)
    assert err["field"] == "file" and "decompression bomb" in err["message"]
    err = error(upload(url, "bomb", png_bomb(2000, 2000)), 422)  # small file, 4 Mpx canvas: refused before decoding
    assert "4000000 pixels; the limit is 1000000" in err["message"]
    err = error(upload(url, "wide", png_bomb(5000, 10)), 422)
    assert "each side must be in [1, 4096]" in err["message"]
    assert error(upload(url, "empty", b""), 422)["field"] == "file"
    assert error(upload(url, "Bad Name!", png_bytes(Image.new("RGB", (4, 4)))), 422)["field"] == "name"
    assert error(upload(url, "moon", png_bytes(Image.new("RGB", (4, 4)))), 409)["field"] == "name"
    noise = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    err = error(upload(url, "huge", png_bytes(Image.fromarray(noise))), 413)  # > CGN_MAX_BODY_BYTES (256 KiB)
    assert err["type"] == "payload_too_large"
    err = error(httpx.post(f"{url}/assets", data={"name": "nofile"}), 422)
    assert err["field"] == "file"


def test_uploaded_asset_is_an_intervention(url):
    stripes = np.zeros((64, 48, 3), np.uint8)
    stripes[::4] = (255, 0, 0)
    r = upload(url, "stripes", png_bytes(Image.fromarray(stripes)), description="red stripes")
    assert r.status_code == 201, r.text
    assert r.json()["width"] == 48 and r.json()["height"] == 64
    body = {"shape": 1, "texture": "stripes", "bg": 2, "outputs": ["foreground"]}
    out = httpx.post(f"{url}/counterfactual", json=body, headers={"Accept": "application/json"}).json()
    assert out["labels"]["texture"]["asset"]["name"] == "stripes"
    assert any(a["name"] == "stripes" for a in httpx.get(f"{url}/assets").json()["assets"])


def test_a_deleted_asset_is_gone_and_built_ins_stay(url):
    dot = png_bytes(Image.new("RGB", (8, 8), (0, 0, 250)))
    assert upload(url, "bluedot", dot).status_code == 201
    body = {"shape": 1, "texture": 2, "bg": {"asset": "bluedot"}, "outputs": ["background"]}
    assert httpx.post(f"{url}/counterfactual", json=body).status_code == 200
    r = httpx.delete(f"{url}/assets/bluedot")
    assert r.status_code == 200 and r.json() == {"name": "bluedot", "deleted": True}
    assert "bluedot" not in {a["name"] for a in httpx.get(f"{url}/assets").json()["assets"]}
    assert error(httpx.get(f"{url}/assets/bluedot"), 404)["field"] == "name"
    assert error(httpx.delete(f"{url}/assets/bluedot"), 404)["field"] == "name"
    assert error(httpx.post(f"{url}/counterfactual", json=body), 422)["field"].startswith("bg")
    err = error(httpx.delete(f"{url}/assets/moon"), 409)
    assert err["field"] == "name" and "built-in" in err["message"]
    assert httpx.get(f"{url}/assets/moon").status_code == 200
    assert upload(url, "bluedot", dot).status_code == 201  # the name is free again


@pytest.fixture(scope="module")
def auth_url(thread_server) -> str:
    return thread_server(api_keys=["k-one", "k-two"]).url


def test_api_keys(auth_url):
    assert error(httpx.post(f"{auth_url}/counterfactual", json={"shape": 1}), 401)["type"] == "unauthorized"
    r = httpx.get(f"{auth_url}/models", headers={"Authorization": "Bearer wrong"})
    assert "invalid API key" in error(r, 401)["message"]
    assert r.headers["www-authenticate"] == "Bearer"
    assert error(httpx.post(f"{auth_url}/samples", json={"n": 1}), 401)
    assert error(httpx.post(f"{auth_url}/assets", data={"name": "x"}), 401)
    for key in ("k-one", "k-two"):
        r = httpx.post(f"{auth_url}/counterfactual", json={"shape": 1}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    for open_path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{auth_url}{open_path}").status_code == 200


def test_full_queue_is_503_with_retry_after_and_service_recovers(thread_server):
    # one waiting request at most; the first micro-batch waits 300 ms for company, so others pile up
    srv = thread_server(max_queue=1, max_wait_ms=300, retry_after_s=2)
    bodies = [{"shape": 1, "outputs": [o]} for o in ("composite", "mask", "foreground", "background", "premask")]
    with ThreadPoolExecutor(8) as pool:
        rs = list(pool.map(lambda b: httpx.post(f"{srv.url}/counterfactual", json=b, timeout=30), bodies * 2))
    busy = [r for r in rs if r.status_code == 503]
    assert busy and all(r.status_code in (200, 503) for r in rs)
    err = error(busy[0], 503)
    assert err["type"] == "overloaded" and busy[0].headers["retry-after"] == "2"
    assert httpx.post(f"{srv.url}/counterfactual", json={"shape": 1}, timeout=30).status_code == 200
