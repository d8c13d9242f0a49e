"""The model store refuses what it must not load, and writes models atomically."""

import json
from pathlib import Path

import pytest
import torch

from model_store import ManifestError, ModelStore
from model_store.manifest import MANIFEST_FILE
from model_store.store import load_dir
from tests.conftest import random_mnist_model


def test_saved_model_loads_with_identical_outputs(tmp_path: Path):
    path = random_mnist_model(tmp_path, "m", seed=5)
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    assert len(manifest["sha256"]) == 64
    a = load_dir(path).model
    b = load_dir(path).model
    assert torch.equal(a.shape([2, 3], [9, 9])["mask"], b.shape([2, 3], [9, 9])["mask"])


def test_wrong_hash_is_refused(tmp_path: Path):
    path = random_mnist_model(tmp_path, "m")
    data = json.loads((path / MANIFEST_FILE).read_text())
    data["sha256"] = "0" * 64
    (path / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="does not match"):
        load_dir(path)


def test_tampered_weights_are_refused(tmp_path: Path):
    path = random_mnist_model(tmp_path, "m")
    weights = path / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ManifestError, match="sha256"):
        load_dir(path)


def test_unknown_architecture_is_refused(tmp_path: Path):
    path = random_mnist_model(tmp_path, "m")
    data = json.loads((path / MANIFEST_FILE).read_text())
    data["architecture"] = "stylegan9"
    (path / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="unknown architecture 'stylegan9'.*mnist-cgn"):
        load_dir(path)


def test_store_lists_and_shadows_builtins(tmp_path: Path):
    builtin, root = tmp_path / "builtin", tmp_path / "root"
    random_mnist_model(builtin, "a", seed=1)
    random_mnist_model(builtin, "b", seed=1)
    random_mnist_model(root, "b", seed=2)
    store = ModelStore(root, builtin=builtin, catalog=tmp_path / "no-catalog")
    entries = {e.name: e for e in store.entries()}
    assert set(entries) == {"a", "b"} and entries["b"].path.parent == root
    with pytest.raises(KeyError, match="unknown model 'c'; known models: a, b"):
        store.load("c")


def test_resaving_replaces_atomically_and_leaves_no_temp_dirs(tmp_path: Path):
    random_mnist_model(tmp_path, "m", seed=1)
    first = (tmp_path / "m" / MANIFEST_FILE).read_text()
    random_mnist_model(tmp_path, "m", seed=2)
    assert (tmp_path / "m" / MANIFEST_FILE).read_text() != first
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
