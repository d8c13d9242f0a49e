"""Screenshots of the playground (served at / by `cgn serve`) for the README: docs/images/playground-*.png.

Starts what a deployment runs, on free ports in a temporary directory: redis-server, `cgn serve` with an API
key, and one `cgn worker`; then drives Debian's Chromium with Playwright (no browser download) through each
state and saves a PNG per state.

    python scripts/playground_screenshots.py                     # writes docs/images/playground-*.png
    python scripts/playground_screenshots.py --out /tmp/shots --chromium /usr/bin/chromium
    python scripts/playground_screenshots.py --serve             # just run the stack and print its URL

Needs: redis-server, chromium, the `playwright` Python package (`pip install -e ".[dev]"`).
"""

import argparse
import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
KEY = "playground-demo-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, httpx.TransportError):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up in {timeout} s")


@contextlib.contextmanager
def stack(tmp: Path, api_key: str | None = KEY) -> Iterator[str]:
    """redis-server, `cgn serve` and one `cgn worker`; yields the service URL."""
    redis_port, port = free_port(), free_port()
    (tmp / "redis").mkdir()
    procs = []
    env = {
        **os.environ,
        "CGN_HOST": "127.0.0.1",
        "CGN_PORT": str(port),
        "CGN_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CGN_RESULTS_DIR": str(tmp / "results"),
        "CGN_ASSETS_DIR": str(tmp / "assets"),
        "CGN_MODEL_STORE": str(tmp / "models"),
        "CGN_API_KEYS": api_key or "",
        "CGN_THREADS": "1",
        "CGN_BATCH_SHARD_SIZE": "50",
        "OMP_NUM_THREADS": "1",
    }
    try:
        redis = [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"]
        procs.append(subprocess.Popen([*redis, "--dir", str(tmp / "redis"), "--save", ""], stdout=subprocess.DEVNULL))
        log = open(tmp / "stack.log", "ab")  # noqa: SIM115 - lives as long as the processes
        for cmd in (["serve"], ["worker"]):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "cgn_cli.main", *cmd], cwd=REPO, env=env, stdout=log, stderr=log
                )
            )
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/readyz", timeout=1).status_code == 200, 120, "cgn serve")
        yield url
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def sample_image() -> bytes:
    """A small 'own image' to upload as a background: a sunset gradient with a sun."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:96, 0:96] / 95.0
    rgb = np.stack([0.95 - 0.5 * y, 0.45 + 0.2 * (1 - y), 0.3 + 0.6 * y], -1)
    sun = ((x - 0.7) ** 2 + (y - 0.35) ** 2) < 0.02
    rgb[sun] = [1.0, 0.85, 0.3]
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).astype("uint8")).save(buf, "PNG")
    return buf.getvalue()


def pick(page, mechanism: str, text: str) -> None:
    """Type into a class picker and take the first suggestion with Enter, as a keyboard user does."""
    from playwright.sync_api import expect

    field = page.locator(f"#{mechanism}-class")
    field.fill(text)
    expect(field).to_have_attribute("aria-activedescendant", re.compile("."))  # the answer to this text
    field.press("Enter")


def shoot(url: str, out: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def save(target, name: str) -> None:
        path = out / f"playground-{name}.png"
        target.screenshot(path=str(path))
        saved.append(path)
        print(f"{path}  {path.stat().st_size // 1024} KB")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_selector("#key-dialog[open]")
        save(page, "api-key")
        page.fill("#key-input", KEY)
        page.press("#key-input", "Enter")
        page.wait_for_selector("#result[data-state=ready]")
        page.select_option("#model-select", "mnist-wildlife")
        pick(page, "shape", "3")
        pick(page, "texture", "7")
        pick(page, "background", "1")
        page.fill("#seed", "0")
        expect(page.locator("#result")).to_have_attribute("data-request", re.compile(r'"bg": 1'))
        page.wait_for_selector("#result[data-state=ready]")
        page.evaluate("document.activeElement.blur()")
        save(page.locator("#mechanisms"), "mechanisms")
        save(page.locator("#result"), "result")

        page.locator("#texture-class").fill("stri")
        page.wait_for_selector("#texture-class-list li[role=option]:has-text('diagonal stripes')")
        page.keyboard.press("ArrowDown")
        save(page.locator("#mechanisms"), "search")
        page.keyboard.press("Escape")
        page.locator("#texture-class").fill("")
        page.locator("#texture-class").press("Enter")

        page.locator("#shape-class").fill("cow")
        page.locator("#shape-class").press("Enter")
        page.wait_for_selector("#result[data-state=error]")
        save(page.locator("#result-error"), "unknown-name")
        pick(page, "shape", "3")
        pick(page, "texture", "7")
        page.wait_for_selector("#result[data-state=ready]")

        page.click("#grid-build")
        page.wait_for_selector("#grid[data-state=ready]")
        save(page.locator("#grid"), "grid")

        page.select_option("#interp-mechanism", "shape")
        page.locator("#interp-from").fill("3")
        page.locator("#interp-to").fill("8")
        page.fill("#interp-steps", "10")
        page.click("#interp-run")
        page.wait_for_selector("#interpolation[data-state=ready]")
        save(page.locator("#interpolation"), "interpolation")

        page.set_input_files(
            "#bg-upload", files=[{"name": "sunset.png", "mimeType": "image/png", "buffer": sample_image()}]
        )
        expect(page.locator("#bg-asset")).to_have_value("sunset")
        expect(page.locator("#result")).to_have_attribute("data-request", re.compile("sunset"))
        page.wait_for_selector("#result[data-state=ready]")
        save(page.locator("#result"), "upload")

        page.fill("#batch-n", "200")
        page.click("#batch-submit")
        page.wait_for_selector("#batch[data-state=completed]", timeout=120_000)
        save(page.locator("#batch"), "batch")

        page.select_option("#model-select", "imagenet-cgn")
        page.wait_for_selector("#model-install:not([hidden])")
        save(page.locator("#model"), "not-installed")

        phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
        phone.goto(url)  # the key is kept per tab: this tab asks again
        phone.wait_for_selector("#key-dialog[open]")
        phone.fill("#key-input", KEY)
        phone.press("#key-input", "Enter")
        phone.wait_for_selector("#result[data-state=ready]")
        pick(phone, "shape", "seven")
        phone.wait_for_selector("#result[data-state=ready]")
        phone.locator("#outputs").scroll_into_view_if_needed()
        save(phone, "phone")
        browser.close()
        if errors:
            raise RuntimeError(f"page errors: {errors}")
    return saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    p.add_argument("--serve", action="store_true", help="only run the stack (Ctrl-C stops it)")
    p.add_argument("--no-key", action="store_true", help="run the stack without API keys")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the stack's processes on `kill` too
    with (
        tempfile.TemporaryDirectory(prefix="cgn-playground-") as tmp,
        stack(Path(tmp), None if args.no_key else KEY) as url,
    ):
        if args.serve:
            print(f"{url}  (API key: {'none' if args.no_key else KEY})", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
            return 0
        shoot(url, args.out, args.chromium)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
