"""The README's curl and SDK quick starts run as written (URL pointed at a test server)."""

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow
README = Path(__file__).parents[2] / "README.md"


def section_block(title: str, lang: str) -> str:
    text = README.read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{lang}\n(.*?)```", section, re.S)
    assert blocks, f"README section {title!r} has no {lang} block"
    return blocks[0]


def test_readme_curl_examples(imagenet_url, tmp_path):
    script = section_block("Quick start: HTTP", "bash").replace("http://localhost:8000", imagenet_url)
    assert script.count("curl") == 3
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, check=True, timeout=120)
    cf = Image.open(tmp_path / "cf.png")
    assert cf.format == "PNG" and cf.size == (32, 32)
    cow = Image.open(tmp_path / "cow.png")  # routed to the ImageNet CGN
    assert cow.format == "PNG" and cow.size == (64, 64)
    body = json.loads((tmp_path / "cf.json").read_text())
    assert set(body["outputs"]) == {"composite", "mask"} and body["labels"]["shape"]["id"] == 7


def test_readme_sdk_example(imagenet_url, tmp_path):
    code = section_block("Quick start: SDK", "python").replace("http://localhost:8000", imagenet_url)
    assert len([line for line in code.splitlines() if line.strip()]) <= 6  # the import and five lines
    code += "\nassert batch.images.shape == (256, 3, 32, 32) and batch.labels.shape == (256, 3)\n"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["mnist-test", "7"]
    img = Image.open(io.BytesIO((tmp_path / "seven-on-the-moon.png").read_bytes()))
    assert img.size == (32, 32)
