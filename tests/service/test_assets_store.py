"""Uploaded assets: stored compactly, decoded the same in every process, bounded, and never decoded on the loop."""

import io
import json
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from service.assets import AssetQuotaExceeded, AssetStore, check_upload

sys.path.insert(0, str(Path(__file__).parent))
from servers import ServerProcess, server_env  # noqa: E402

LIMITS = {"max_side": 4096, "max_pixels": 16 * 1024 * 1024}


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(side: int, seed: int = 0) -> Image.Image:
    """A smooth picture with grain: what a camera JPEG looks like to a codec."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    smooth = np.stack([x * 230, y * 230, (x + y) * 110], axis=-1)
    grain = np.tile(rng.integers(0, 24, (256, 256, 3), dtype=np.uint8), (side // 256 + 1, side // 256 + 1, 1))
    return Image.fromarray((smooth + grain[:side, :side]).clip(0, 255).astype(np.uint8))


def reference(data: bytes, size: int, as_mask: bool) -> np.ndarray:
    """What an asset stands in with: the decoded upload, RGB (grey for a mask), resized bilinear."""
    img = Image.open(io.BytesIO(data))
    img = img.convert("RGBA").convert("RGB") if img.mode in ("P", "LA", "RGBA", "PA") else img.convert("RGB")
    img = img.convert("L") if as_mask else img
    arr = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    return arr[None] if as_mask else arr.transpose(2, 0, 1)


def test_uploads_keep_their_encoding_and_decode_alike_in_every_store(tmp_path):
    pic = photo(300)
    rgba = Image.fromarray(np.dstack([np.asarray(pic), np.full((300, 300), 128, np.uint8)]), "RGBA")
    uploads = {
        "jpeg": (encoded(pic, "JPEG", quality=90), "image/jpeg"),
        "png": (encoded(rgba, "PNG"), "image/png"),
        "webp": (encoded(pic, "WEBP", quality=80), "image/webp"),
        "bmp": (encoded(pic, "BMP"), "image/png"),
        "gif": (encoded(pic.convert("P"), "GIF"), "image/png"),
    }
    store = AssetStore(tmp_path / "assets")
    for name, (data, media_type) in uploads.items():
        asset = store.put(name, check_upload(data, **LIMITS), f"a {name}")
        assert asset.media_type == media_type and (asset.width, asset.height) == (300, 300)
        stored = store.data(asset)
        assert asset.size == len(stored) <= 2 * len(data), (name, len(stored), len(data))
        if media_type != "image/png" or name == "png":
            assert stored == data  # kept as uploaded
        again = AssetStore(tmp_path / "assets")  # another process, or after a restart
        for size, mask in ((32, False), (32, True), (256, False)):
            got = again.tensor(again.get(name), size, mask)[0].numpy()
            assert np.array_equal(got, reference(data, size, mask)), (name, size, mask)
            assert np.array_equal(got, store.tensor(asset, size, mask)[0].numpy())
    assert store.names() == sorted(["moon", *uploads])
    # a replacement of another format leaves one file
    store.put("jpeg", check_upload(uploads["png"][0], **LIMITS))
    assert sorted(p.name for p in (tmp_path / "assets").glob("jpeg.*")) == ["jpeg.json", "jpeg.png"]
    assert store.data(store.get("jpeg")) == uploads["png"][0]


def test_assets_stored_by_earlier_versions_still_serve(tmp_path):
    """name.png (the pixels as RGB PNG) + name.json without media type or size."""
    assets = tmp_path / "assets"
    assets.mkdir()
    data = encoded(photo(64), "PNG")
    (assets / "old.png").write_bytes(data)
    meta = {"name": "old", "width": 64, "height": 64, "digest": "d" * 64, "builtin": False, "description": ""}
    (assets / "old.json").write_text(json.dumps(meta))
    store = AssetStore(assets)
    asset = store.get("old")
    assert asset.media_type == "image/png" and store.data(asset) == data and "old" in store.names()
    assert np.array_equal(store.tensor(asset, 32, False)[0].numpy(), reference(data, 32, False))


def test_quotas_count_uploads_and_their_bytes(tmp_path):
    small = check_upload(encoded(photo(64), "PNG"), **LIMITS)
    store = AssetStore(tmp_path / "assets", max_assets=2, max_bytes=3 * len(small.data))
    store.put("one", small)
    store.put("two", small)
    with pytest.raises(AssetQuotaExceeded) as exc:
        store.put("three", small)
    assert exc.value.setting == "CGN_MAX_ASSETS" and exc.value.limit == 2 and exc.value.field == "name"
    store.put("two", small)  # a replacement is no new asset
    big = check_upload(encoded(photo(256, seed=1), "PNG"), **LIMITS)
    with pytest.raises(AssetQuotaExceeded) as exc:
        store.put("two", big)
    assert exc.value.setting == "CGN_MAX_ASSET_BYTES" and exc.value.field == "file"
    assert "CGN_MAX_ASSET_BYTES" in str(exc.value)
    assert store.names() == ["moon", "one", "two"] and store.data(store.get("two")) == small.data
    assert store.delete("one").name == "one" and store.delete("one") is None and store.delete("moon") is None
    store.put("three", small)  # a deleted asset frees its place
    assert store.names() == ["moon", "three", "two"]


def _max_healthz_latency_during(url: str, work) -> tuple[object, float]:
    busy, took = threading.Event(), []
    busy.set()

    def poll() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while busy.is_set():
                t = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                took.append(time.perf_counter() - t)
                time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.2)
    try:
        result = work()
    finally:
        busy.clear()
        poller.join()
    return result, max(took)


@pytest.mark.slow
def test_a_large_upload_is_stored_compactly_bounded_and_decoded_off_the_loop(random_store, tmp_path):
    big = encoded(photo(4096), "JPEG", quality=85)  # 16 Mpx: a few MB as JPEG, 30 MB as PNG
    assert 1_000_000 < len(big) < 6_000_000
    max_bytes = len(big) + 1_000_000  # the big one and a few small ones, not two big ones
    env = server_env(random_store, tmp_path, models="", threads=1, max_assets=3, max_asset_bytes=max_bytes)
    server = ServerProcess(env, tmp_path / "server.log").start()
    try:
        url = server.url

        def upload(name: str, data: bytes) -> httpx.Response:
            return httpx.post(f"{url}/assets", data={"name": name}, files={"file": ("f", data)}, timeout=120)

        r = upload("big", big)
        assert r.status_code == 201, r.text
        info = r.json()
        assert info["media_type"] == "image/jpeg" and info["bytes"] == len(big) and info["width"] == 4096
        stored = sum(p.stat().st_size for p in (tmp_path / "assets").iterdir())
        assert stored <= 2 * len(big), f"{len(big)} uploaded bytes take {stored} on disk"
        served = httpx.get(f"{url}/assets/big", timeout=30)
        assert served.content == big and served.headers["content-type"] == "image/jpeg"

        body = {"shape": 1, "texture": 2, "bg": "big", "outputs": ["composite", "background"]}
        first, latency = _max_healthz_latency_during(
            url, lambda: httpx.post(f"{url}/counterfactual", json=body, timeout=120)
        )
        assert first.status_code == 200, first.text
        assert latency < 0.2, f"/healthz took {latency:.3f} s while the asset was first decoded"

        # quotas: bytes, then the number of uploads
        r = upload("again", big)
        assert r.status_code == 413, r.text
        err = r.json()["error"]
        assert err["type"] == "payload_too_large" and err["setting"] == "CGN_MAX_ASSET_BYTES", err
        assert err["limit"] == max_bytes and "CGN_MAX_ASSET_BYTES" in err["message"]
        small = encoded(photo(32), "PNG")
        assert upload("one", small).status_code == 201
        assert upload("two", small).status_code == 201
        r = upload("three", small)
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["type"] == "conflict" and err["setting"] == "CGN_MAX_ASSETS" and err["limit"] == 3, err
        assert upload("two", encoded(photo(48), "PNG")).status_code == 201  # replacing one is fine
    finally:
        server.stop()

    again = ServerProcess(env, tmp_path / "server.log").start()  # a restart reads the stored files
    try:
        second = httpx.post(f"{again.url}/counterfactual", json=body, timeout=120)
        assert second.status_code == 200 and second.content == first.content
    finally:
        again.stop()
