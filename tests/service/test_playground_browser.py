"""The playground at / in a real browser: Debian's Chromium driven by Playwright, against a real deployment.

The deployment is what `docker compose up` runs, on free ports: a redis-server, `cgn serve` with an API key
and one `cgn worker`. The page must talk to it only through the public API, so every picture it shows is
checked byte for byte against the same request sent here with httpx.

Chromium logs each 4xx answer of a fetch as a console error ("Failed to load resource: ... 422"); the
tests that provoke one on purpose (the key prompt's 401, an unknown name's 422, an upload's 413/422) allow
exactly those statuses. Any other console error, and every uncaught page error, fails the test.
"""

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from servers import REPO, ServerProcess, free_port, root_conftest, stop_processes

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("CGN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "Chromium is not installed: the browser tests drive the system Chromium "
        "(apt-get install chromium; `bash scripts/install.sh dev` does it where apt is available)",
        allow_module_level=True,
    )

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402 - only where Chromium exists

KEY = "playground-test-key"
expect.set_options(timeout=30_000)  # a shared 2-core CI box: first requests load a model
EXPECTED_STATUS = re.compile(r"Failed to load resource: the server responded with a status of (\d{3})")


class Deployment:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.redis = root_conftest().RedisServer(free_port(), tmp / "redis")
        self.redis.dir.mkdir()
        (tmp / "models").mkdir()
        env = {
            "CGN_REDIS_URL": self.redis.url,
            "CGN_RESULTS_DIR": str(tmp / "results"),
            "CGN_ASSETS_DIR": str(tmp / "assets"),
            "CGN_MODEL_STORE": str(tmp / "models"),  # the built-in MNIST CGNs only
            "CGN_DEFAULT_MODEL": "mnist-double-colored",  # the test picks mnist-wildlife in the page
            "CGN_MODELS": "mnist-wildlife",
            "CGN_API_KEYS": KEY,
            "CGN_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "CGN_MAX_BODY_BYTES": str(256 * 1024),
            "CGN_BATCH_SHARD_SIZE": "50",
        }
        self.server = ServerProcess(env, tmp / "server.log")
        self.worker: subprocess.Popen | None = None

    def start(self) -> "Deployment":
        self.redis.start()
        log = open(self.tmp / "worker.log", "ab")  # noqa: SIM115 - lives as long as the worker
        cmd = [sys.executable, "-m", "cgn_cli.main", "worker", "--threads", "1"]
        self.worker = subprocess.Popen(cmd, cwd=REPO, env=self.server.env, stdout=log, stderr=log)
        try:
            self.server.start()
        except BaseException:
            self.stop()  # no orphaned worker or redis-server when the API does not come up
            raise
        self.http = httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
        return self

    def stop(self) -> None:
        stop_processes(self.worker, grace=3)
        self.server.stop()
        self.redis.kill()

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = Deployment(tmp_path_factory.mktemp("playground")).start()
    yield d
    d.stop()


class Console:
    """Console errors and uncaught page errors of every page of the browser."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        return page

    def check(self, allowed: set[int] = frozenset()) -> None:
        """No errors since the last check except 'Failed to load resource' for the allowed statuses."""
        errors, self.errors = self.errors, []
        unexpected = [e for e in errors if not ((m := EXPECTED_STATUS.search(e)) and int(m.group(1)) in allowed)]
        assert not unexpected, f"console errors: {unexpected}"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture(scope="module")
def console() -> Console:
    return Console()


@pytest.fixture(scope="module")
def page(browser, deployment: Deployment, console: Console) -> Iterator[Page]:
    """One tab, logged in with the API key by the key prompt (as a user does, once)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = console.watch(context.new_page())
    page.set_default_timeout(30_000)
    page.goto(deployment.url)
    page.wait_for_selector("#key-dialog[open]")
    expect(page.locator("#model-select")).to_be_disabled()  # nothing works without the key
    page.fill("#key-input", "not-the-key")
    page.press("#key-input", "Enter")
    expect(page.locator("#key-message")).to_have_text("invalid API key")  # the service's message
    page.fill("#key-input", KEY)
    page.press("#key-input", "Enter")
    expect(page.locator("#result")).to_have_attribute("data-state", "ready")
    console.check(allowed={401})
    yield page
    context.close()


def pick(page: Page, mechanism: str, text: str) -> None:
    """Type into a class picker, wait for the service's suggestions, take the first with Enter."""
    field = page.locator(f"#{mechanism}-class")
    field.fill(text)
    expect(field).to_have_attribute("aria-activedescendant", re.compile("."))  # the answer to this text
    field.press("Enter")


def image_bytes(page: Page, selector: str) -> bytes:
    src = page.locator(selector).get_attribute("src")
    assert src.startswith("data:image/png;base64,"), src[:40]
    return base64.b64decode(src.split(",", 1)[1])


def shown_request(page: Page) -> dict:
    return json.loads(page.locator("#request-json").inner_text())


def wait_request(page: Page, pattern: str, state: str = "ready") -> None:
    expect(page.locator("#result")).to_have_attribute("data-request", re.compile(pattern))
    expect(page.locator("#result")).to_have_attribute("data-state", state)


def png(size=(48, 40), color=(200, 80, 40)) -> bytes:
    img = Image.new("RGB", size, color)
    img.paste((30, 60, 200), (0, 0, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


WILDLIFE_3_7_1 = {"model": "mnist-wildlife", "shape": 3, "texture": 7, "bg": 1, "seed": 0}


def set_wildlife_3_7_1(page: Page) -> None:
    page.select_option("#model-select", "mnist-wildlife")
    expect(page.locator("#model-info")).to_contain_text("Wildlife")
    pick(page, "shape", "three")  # a name: the service resolves it (an alias of class 3)
    pick(page, "texture", "7")
    pick(page, "background", "1")
    page.fill("#seed", "0")
    page.press("#seed", "Enter")
    wait_request(page, r'"shape": 3,\s+"texture": 7,\s+"bg": 1,\s+"seed": 0')


def test_composite_is_byte_identical_to_post_counterfactual(page: Page, deployment: Deployment, console, tmp_path):
    set_wildlife_3_7_1(page)
    request = shown_request(page)
    assert request == {**WILDLIFE_3_7_1, "outputs": ["composite", "mask", "foreground", "background"]}
    composite = image_bytes(page, "#outputs img[data-output=composite]")
    direct = deployment.http.post("/counterfactual", json=WILDLIFE_3_7_1)
    assert direct.status_code == 200 and direct.headers["content-type"] == "image/png"
    assert composite == direct.content
    assert deployment.http.post("/counterfactual", json=request).content == composite  # the exact JSON shown
    for output in ("mask", "foreground", "background"):  # every output, each downloadable as PNG
        data = image_bytes(page, f"#outputs img[data-output={output}]")
        assert Image.open(io.BytesIO(data)).size == (32, 32)
        link = page.locator(f"#outputs figure.{output} a[download]")
        assert link.get_attribute("download").endswith(f"{output}.png")
    rendering = page.locator("#outputs img[data-output=composite]").evaluate("e => getComputedStyle(e).imageRendering")
    assert rendering == "pixelated"
    assert page.locator("#outputs img[data-output=composite]").bounding_box()["width"] >= 150
    with page.expect_download() as download:
        page.locator("#outputs figure.composite a[download]").click()
    assert Path(download.value.path()).read_bytes() == composite

    # the curl and SDK snippets are equivalent requests
    env = {**os.environ, "CGN_API_KEY": KEY}
    page.click("#tab-curl")
    curl = page.locator("#request-curl").inner_text()
    assert "$CGN_API_KEY" in curl and KEY not in curl
    if shutil.which("curl"):
        subprocess.run(["bash", "-euo", "pipefail", "-c", curl], cwd=tmp_path, env=env, check=True, timeout=60)
        assert (tmp_path / "composite.png").read_bytes() == composite
    page.click("#tab-sdk")
    sdk = page.locator("#request-sdk").inner_text()
    run = subprocess.run([sys.executable, "-c", sdk], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert Image.open(tmp_path / "composite.png").tobytes() == Image.open(io.BytesIO(composite)).tobytes()
    page.click("#tab-json")
    console.check()


def test_seeds_past_two_to_the_53_are_sent_exactly(page: Page, deployment: Deployment, console):
    """A JS number would round 2^63 - 1; the page sends its digits, and the SDK snippet shows them."""
    set_wildlife_3_7_1(page)
    top = 2**63 - 1
    page.fill("#texture-seed", str(top))
    page.press("#texture-seed", "Enter")
    wait_request(page, rf'"texture": {top}')
    request = shown_request(page)
    assert request["seeds"] == {"texture": top}
    composite = image_bytes(page, "#outputs img[data-output=composite]")
    assert deployment.http.post("/counterfactual", json=request).content == composite
    rounded = deployment.http.post("/counterfactual", json={**request, "seeds": {"texture": 2**63 - 1024}})
    assert rounded.content != composite  # the seed the page would have sent as a JS number differs
    page.click("#tab-sdk")
    assert f'seeds={{"texture": {top}}}' in page.locator("#request-sdk").inner_text()
    page.click("#tab-json")
    page.fill("#texture-seed", "")  # the page is shared with the next tests
    page.press("#texture-seed", "Enter")
    wait_request(page, r'"seed": 0,\s+"outputs"')
    console.check()


def test_counterfactual_grid_keeps_the_mask_across_its_row(page: Page, deployment: Deployment, console):
    set_wildlife_3_7_1(page)
    page.select_option("#grid-mechanism", "texture")
    page.click("#grid-build")
    expect(page.locator("#grid")).to_have_attribute("data-state", "ready")
    rows = {o: page.locator(f"#grid-table tr[data-output={o}] img") for o in ("mask", "foreground", "composite")}
    assert rows["mask"].count() == 10  # all texture classes of the model
    masks = [rows["mask"].nth(i).get_attribute("src") for i in range(10)]
    assert len(set(masks)) == 1, "the shape's mask changed while only the texture class varied"
    textures = [rows["foreground"].nth(i).get_attribute("src") for i in range(10)]
    assert len(set(textures)) == 10
    src = rows["composite"].nth(7).get_attribute("src")  # texture 7: the composite of the first test
    assert (
        base64.b64decode(src.split(",", 1)[1]) == deployment.http.post("/counterfactual", json=WILDLIFE_3_7_1).content
    )
    console.check()


def test_interpolation_strip(page: Page, deployment: Deployment, console):
    set_wildlife_3_7_1(page)
    page.select_option("#interp-mechanism", "texture")
    page.fill("#interp-from", "2")
    page.fill("#interp-to", "7")
    page.fill("#interp-steps", "5")
    page.click("#interp-run")
    expect(page.locator("#interpolation")).to_have_attribute("data-state", "ready")
    composites = page.locator("#interp-table tr[data-output=composite] img")
    assert composites.count() == 5
    srcs = [composites.nth(i).get_attribute("src") for i in range(5)]
    assert len(set(srcs)) == 5
    # the ends are the plain classes: the composites of texture 2 and texture 7
    for src, texture in ((srcs[0], 2), (srcs[-1], 7)):
        direct = deployment.http.post("/counterfactual", json={**WILDLIFE_3_7_1, "texture": texture}).content
        assert base64.b64decode(src.split(",", 1)[1]) == direct
    console.check()


def test_upload_an_image_as_background(page: Page, deployment: Deployment, console):
    set_wildlife_3_7_1(page)
    page.set_input_files("#bg-upload", files=[{"name": "My Sunset.png", "mimeType": "image/png", "buffer": png()}])
    expect(page.locator("#bg-asset")).to_have_value("my-sunset")
    wait_request(page, r'"bg": \{\s+"asset": "my-sunset"\s+\}')
    composite = image_bytes(page, "#outputs img[data-output=composite]")
    body = {**WILDLIFE_3_7_1, "bg": {"asset": "my-sunset"}}
    assert composite == deployment.http.post("/counterfactual", json=body).content
    expect(page.locator("#outputs figure.background figcaption")).to_contain_text("my-sunset")
    console.check()

    # upload errors show the service's own message
    for name, data in (("notes.txt", b"not an image"), ("big.png", png((400, 400)) + os.urandom(300 * 1024))):
        page.set_input_files("#bg-upload", files=[{"name": name, "mimeType": "image/png", "buffer": data}])
        expect(page.locator("#upload-error")).to_be_visible()
        direct = deployment.http.post("/assets", data={"name": "x"}, files={"file": (name, data, "image/png")})
        assert direct.status_code in (413, 422)
        expect(page.locator("#upload-error")).to_have_text(direct.json()["error"]["message"])
    console.check(allowed={413, 422})
    page.select_option("#bg-asset", "")


def test_unknown_class_name_shows_the_service_message(page: Page, deployment: Deployment, console):
    set_wildlife_3_7_1(page)
    field = page.locator("#shape-class")
    field.fill("cow")
    expect(page.locator("#shape-class-list")).to_contain_text('No shape class of mnist-wildlife matches "cow"')
    field.press("Enter")
    wait_request(page, r'"shape": "cow"', state="error")
    direct = deployment.http.post("/counterfactual", json=shown_request(page))
    assert direct.status_code == 422 and direct.json()["error"]["type"] == "unknown_name"
    expect(page.locator("#result-error")).to_have_text(direct.json()["error"]["message"])
    expect(page.locator("#result-error")).to_contain_text("cgn models pull imagenet")
    console.check(allowed={422})


def test_batch_job_runs_to_completion(page: Page, deployment: Deployment, console):
    page.select_option("#model-select", "mnist-wildlife")
    page.fill("#batch-n", "200")
    page.fill("#batch-seed", "0")
    page.select_option("#batch-format", "npz")
    page.click("#batch-submit")
    seen, deadline = set(), time.monotonic() + 90
    while time.monotonic() < deadline:  # watch it live: the page polls GET /batches/{id}
        state = page.locator("#batch").get_attribute("data-state")
        seen.add(state)
        if state in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.05)
    assert state == "completed", (seen, deployment.tmp)
    bar = page.locator("#job-progress")
    assert bar.get_attribute("aria-valuenow") == "100"
    assert bar.locator(".bar").evaluate("e => e.style.width") == "100%"
    expect(page.locator("#job-progress-text")).to_have_text("200 / 200 samples (100 %)")
    expect(page.locator("#job-state")).to_have_text("completed")
    job_id = page.locator("#job-id").inner_text()
    status = deployment.http.get(f"/batches/{job_id}").json()
    assert status["state"] == "completed" and status["model"] == "mnist-wildlife" and status["n"] == 200
    shards = page.locator("#job-shards button")
    assert shards.count() == status["num_shards"] == 4
    with page.expect_download() as download:
        shards.nth(0).click()
    assert Path(download.value.path()).read_bytes() == deployment.http.get(f"/batches/{job_id}/shards/0").content
    with page.expect_download() as download:
        page.click("#job-labels")
    labels = Path(download.value.path()).read_text()
    assert labels == deployment.http.get(f"/batches/{job_id}/labels.csv").text
    assert len(labels.strip().splitlines()) == 201  # a header and a row per sample
    expect(page.locator("#job-errors-box")).to_be_hidden()
    console.check()


def test_phone_width_keyboard_and_remembered_key(browser, deployment: Deployment, console):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = console.watch(context.new_page())
    page.goto(deployment.url)
    page.fill("#key-input", KEY)  # a new tab asks once
    page.press("#key-input", "Enter")
    expect(page.locator("#result")).to_have_attribute("data-state", "ready")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone"
    # keyboard only: search a class by a word, arrow to it, Enter
    page.focus("#shape-class")
    page.keyboard.type("fiv")
    expect(page.locator("#shape-class-list li[role=option]").first).to_contain_text("5")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    wait_request(page, r'"shape": 5')
    page.reload()  # the key is kept for the tab: no second prompt
    expect(page.locator("#result")).to_have_attribute("data-state", "ready")
    expect(page.locator("#key-dialog")).not_to_have_attribute("open", "")
    context.close()
    console.check(allowed={401})


def test_imagenet_model_search_and_truncation(browser, imagenet_url: str, console):
    """An open deployment (no keys) with an ImageNet CGN: 'cow' finds ox, and the truncation slider shows."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = console.watch(context.new_page())
    page.goto(f"{imagenet_url}/?model=imagenet-cgn")
    expect(page.locator("#result")).to_have_attribute("data-state", "ready")
    expect(page.locator("#key-dialog")).not_to_have_attribute("open", "")
    expect(page.locator("#truncation-box")).to_be_visible()
    expect(page.locator("#grid-count-box")).to_be_visible()  # 1000 classes: N random ones
    field = page.locator("#shape-class")
    field.fill("cow")
    expect(page.locator("#shape-class-list li[role=option]").first).to_contain_text("ox")
    field.press("Enter")
    page.focus("#truncation")  # a range input: the keyboard moves it by its step (0.05)
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#truncation-value")).to_have_text("0.7")
    wait_request(page, r'"shape": 345,[\s\S]*"truncation": 0.7')
    assert Image.open(io.BytesIO(image_bytes(page, "#outputs img[data-output=composite]"))).size == (64, 64)
    context.close()
    console.check()
