"""`cgn train mnist` exports what it trained, and a polish run records the weights it started from."""

import json
import os
import subprocess
import sys
from pathlib import Path


def _train(tmp_path: Path, name: str, *options: str) -> dict:
    cmd = [sys.executable, "-m", "cgn_cli.main", "train", "mnist", "--dataset", "double-colored", "--batch-size", "4"]
    cmd += ["--threads", "1", "--run-dir", str(tmp_path / "runs" / name), "--store", str(tmp_path / name), *options]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / name / "mnist-double-colored" / "manifest.json").read_text())


def test_polish_run_records_the_base_weights_and_how_they_were_trained(tmp_path: Path):
    base = _train(tmp_path, "base", "--steps", "1", "--shape-warmup", "0")
    weights = tmp_path / "base" / "mnist-double-colored" / "model.safetensors"
    polish = ["--init-from", str(weights), "--polish", "--contrast-prior", "1"]
    polished = _train(tmp_path, "polished", "--steps", "2", *polish)

    training = polished["training"]
    assert training["config"]["polish"] and training["config"]["contrast_prior"] == 1.0
    assert "--polish" in training["command"] and training["steps"] == 2
    assert training["base"]["sha256"] == base["sha256"] != polished["sha256"]
    assert training["base"]["training"] == base["training"] and "base" not in base["training"]


def _cgn_train_mnist(tmp_path: Path, env: dict[str, str], *options: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cgn_cli.main", "train", "mnist", "--dataset", "double-colored", "--batch-size", "4"]
    cmd += ["--threads", "1", "--run-dir", str(tmp_path / "run"), *options]
    env = {k: v for k, v in os.environ.items() if k != "CGN_MODEL_STORE"} | env
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)  # no .env there


def _builtin_files() -> dict[str, int]:
    from model_store.store import BUILTIN_DIR

    return {str(p): p.stat().st_mtime_ns for p in BUILTIN_DIR.rglob("*")}


def test_without_store_the_model_goes_to_the_configured_store_not_the_builtins(tmp_path: Path):
    before = _builtin_files()
    done = _cgn_train_mnist(tmp_path, {"CGN_MODEL_STORE": str(tmp_path / "store")}, "--steps", "1")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "store" / "mnist-double-colored" / "model.safetensors").is_file()
    assert _builtin_files() == before


def test_without_any_store_it_refuses_before_training(tmp_path: Path):
    done = _cgn_train_mnist(tmp_path, {}, "--steps", "1")
    assert done.returncode == 2 and "pass --store DIR or set CGN_MODEL_STORE" in done.stderr, done.stderr
    assert not (tmp_path / "run").exists()
