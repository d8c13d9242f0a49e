"""cgn.interpolate: one mechanism moves between two classes; its ends are the plain classes, bit for bit."""

import pytest
import torch
from torch import nn

from cgn.interpolate import interpolate
from cgn.mnist.model import MnistCGN, MnistCGNConfig

OUTPUT_OF = {"shape": "mask", "texture": "foreground", "background": "background"}


@pytest.fixture(scope="module")
def model() -> MnistCGN:
    torch.manual_seed(0)
    m = MnistCGN(MnistCGNConfig(init_type="normal", init_gain=0.2))
    for module in m.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return m.eval()


def sampled(model, mechanism: str, label: int, seed: int) -> torch.Tensor:
    if mechanism == "shape":
        return model.shape([label], [seed])["mask"][0]
    return getattr(model, mechanism)([label], [seed])[0]


@pytest.mark.parametrize("mechanism", ["shape", "texture", "background"])
@pytest.mark.parametrize("steps", [2, 5, 16])
def test_the_ends_are_the_plain_classes_and_only_the_mechanism_moves(model, mechanism, steps):
    labels, seeds, target = [3, 7, 1], [11, 12, 13], 8
    out = interpolate(model, mechanism, labels, target, seeds, steps)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "mask": (steps, 1, 32, 32),
        "foreground": (steps, 3, 32, 32),
        "background": (steps, 3, 32, 32),
        "composite": (steps, 3, 32, 32),
    }
    k = ["shape", "texture", "background"].index(mechanism)
    moving = out[OUTPUT_OF[mechanism]]
    assert torch.equal(moving[0], sampled(model, mechanism, labels[k], seeds[k]))  # the very bits sampling gives
    assert torch.equal(moving[-1], sampled(model, mechanism, target, seeds[k]))
    assert all(not torch.equal(moving[i], moving[i + 1]) for i in range(steps - 1))
    for other, output in OUTPUT_OF.items():  # the other mechanisms: their own label and seed, unchanged
        if other != mechanism:
            j = ["shape", "texture", "background"].index(other)
            assert all(torch.equal(out[output][i], sampled(model, other, labels[j], seeds[j])) for i in range(steps))
    again = interpolate(model, mechanism, labels, target, seeds, steps)
    assert all(torch.equal(out[key], again[key]) for key in out)


def test_an_override_replaces_a_fixed_mechanism(model):
    moon = torch.full((1, 3, 32, 32), 0.25)
    out = interpolate(model, "texture", [3, 7, 1], 2, [0, 0, 0], 4, {"background": moon})
    assert torch.equal(out["background"], moon.expand(4, -1, -1, -1))
    mask = out["mask"]
    assert torch.equal(out["composite"], mask * out["foreground"] + (1 - mask) * moon)
    with pytest.raises(ValueError, match="interpolated mechanism cannot be replaced"):
        interpolate(model, "background", [3, 7, 1], 2, [0, 0, 0], 4, {"background": moon})


def test_bad_arguments_name_the_problem(model):
    with pytest.raises(ValueError, match="mechanism must be one of"):
        interpolate(model, "colour", [0, 0, 0], 1, [0, 0, 0], 4)
    with pytest.raises(ValueError, match="steps must be in"):
        interpolate(model, "shape", [0, 0, 0], 1, [0, 0, 0], 1)
    with pytest.raises(ValueError, match="labels must be in"):
        interpolate(model, "shape", [0, 0, 0], 10, [0, 0, 0], 4)
