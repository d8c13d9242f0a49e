"""cgn.pipeline.generate: a truncation is an argument of the call, never a change to the model; only a model
that takes one gets one, and the manifest says which do."""

import numpy as np
import pytest
import torch

from cgn.pipeline import generate
from model_store import ModelStore
from model_store.official import imagenet_manifest
from tests.conftest import random_mnist_model
from tests.imagenet.helpers import tiny_model

LABELS = np.array([[345, 385, 970], [1, 2, 3], [999, 0, 500]], dtype=np.int64)
SEEDS = np.array([[7, 8, 9], [0, 0, 0], [123, 4, 56]], dtype=np.int64)
OUTPUTS = ("composite", "mask", "foreground", "background")


def test_truncation_is_a_forward_argument_and_the_config_stays_put():
    model = tiny_model(seed=3)
    config = model.config
    seen = []  # the config the model holds while its shape mechanism runs
    model.f_shape.register_forward_pre_hook(lambda module, args: seen.append(model.config))
    default = generate(model, LABELS, SEEDS, OUTPUTS)
    a = generate(model, LABELS, SEEDS, OUTPUTS, truncation=0.4)
    b = generate(model, LABELS, SEEDS, OUTPUTS, truncation=0.4)
    c = generate(model, LABELS, SEEDS, OUTPUTS, truncation=0.9)
    for k in OUTPUTS:
        assert a[k].dtype == np.uint8 and (a[k] == b[k]).all(), k
    assert (a["composite"] != c["composite"]).any() and (a["composite"] != default["composite"]).any()
    configured = generate(model, LABELS, SEEDS, OUTPUTS, truncation=config.truncation)
    after = generate(model, LABELS, SEEDS, OUTPUTS)
    assert all((default[k] == configured[k]).all() and (default[k] == after[k]).all() for k in OUTPUTS)
    assert seen and all(s is config for s in seen) and model.config is config and config.truncation == 0.5


def test_a_truncation_outside_0_1_is_refused():
    model = tiny_model(seed=3)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="truncation"):
            generate(model, LABELS[:1], SEEDS[:1], truncation=bad)


def test_an_mnist_model_takes_no_truncation(tmp_path):
    random_mnist_model(tmp_path)
    model = ModelStore(tmp_path).load("mnist-test").model
    labels, seeds = LABELS % 10, SEEDS
    assert not model.takes_truncation
    with pytest.raises(ValueError, match="takes no truncation"):
        generate(model, labels, seeds, truncation=0.5)
    images = {k: torch.rand(1, 3 if k != "mask" else 1, 32, 32) for k in ("mask", "foreground", "background")}
    with pytest.raises(ValueError, match="takes no truncation"):  # even with every mechanism replaced
        generate(model, labels, seeds, truncation=0.5, overrides=images)
    with pytest.raises(ValueError, match="takes no truncation"):
        model.texture([1], [2], truncation=0.5)
    assert generate(model, labels, seeds)["composite"].shape == (3, 3, 32, 32)


def test_the_manifest_says_which_models_take_a_truncation(tmp_path):
    tiny = imagenet_manifest("imagenet-cgn", tiny_model().config.to_dict(), {}, "random weights")
    assert tiny.takes_truncation and tiny_model().takes_truncation
    random_mnist_model(tmp_path)
    store = ModelStore(tmp_path)
    assert not store.entry("mnist-test").manifest.takes_truncation
    assert not any(e.manifest.takes_truncation for e in store.entries() if e.name.startswith("mnist"))
