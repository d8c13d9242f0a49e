"""`cgn sample` writes a PNG grid of counterfactuals with mask, foreground and background rows."""

import subprocess
import sys
from pathlib import Path

from PIL import Image


def test_cgn_sample_writes_a_grid(model_root: Path, tmp_path: Path):
    out = tmp_path / "grid.png"
    cmd = [sys.executable, "-m", "cgn_cli.main", "sample", "--store", str(model_root), "--model", "mnist-test"]
    cmd += ["--shape", "three", "--texture", "7", "--background", "bg-1", "--seed", "0", "-n", "4", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "shape=3 texture=color-7 background=bg-1" in done.stdout
    image = Image.open(out)
    assert image.format == "PNG"
    # 4 rows (composite, mask, foreground, background) of 4 columns of 36 px tiles, scaled x3
    assert image.size == (4 * 36 * 3, 4 * 36 * 3)


def test_cgn_sample_refuses_an_unknown_name(model_root: Path, tmp_path: Path):
    cmd = [sys.executable, "-m", "cgn_cli.main", "sample", "--store", str(model_root), "--model", "mnist-test"]
    cmd += ["--shape", "thre", "--texture", "0", "--background", "0", "--out", str(tmp_path / "x.png")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "shape: unknown class name 'thre'; closest: three" in done.stderr
    assert not (tmp_path / "x.png").exists()
