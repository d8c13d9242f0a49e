"""The ImageNet CGN on the tiny configuration: outputs, determinism, batch independence, inference options."""

import pytest
import torch

from cgn import registry
from cgn.imagenet.biggan import biggan_config, build_biggan, init_random_
from cgn.imagenet.model import ImagenetCGN, ImagenetCGNConfig, from_official_state_dict
from cgn.mechanisms import OUTPUTS
from cgn.pipeline import counterfactuals
from tests.imagenet.helpers import tiny_model

LABELS = torch.tensor([[345, 385, 970], [1, 2, 3], [999, 0, 500], [345, 345, 345]] * 2)
SEEDS = torch.arange(24).reshape(8, 3) * 1000 + 7


@pytest.fixture(scope="module")
def model() -> ImagenetCGN:
    return tiny_model(seed=3)


def test_deep_256_config_is_explicit():
    cfg = biggan_config(256, 128)
    assert cfg.output_dim == 256 and len(cfg.layers) == 12 and cfg.attention_layer_position == 8
    assert sum(up for up, _, _ in cfg.layers) == 6  # 4 px -> 256 px
    tiny = biggan_config(64, 8)
    assert sum(up for up, _, _ in tiny.layers) == 4
    with pytest.raises(ValueError, match="image_size"):
        biggan_config(100, 8)


def test_fresh_biggan_is_nan_in_eval_until_initialised():
    """The fact our random-weight tests rest on: a fresh spectral-norm BigGAN gives NaN/inf in eval."""
    torch.manual_seed(0)
    fresh = build_biggan(64, 8).eval()
    fresh.generator.bn.weight.data.fill_(1.0)  # uninitialised memory otherwise: rule it out as the cause
    fresh.generator.bn.bias.data.fill_(0.0)
    z, y = torch.zeros(2, 128), torch.eye(1000)[:2]
    with torch.no_grad():
        assert not torch.isfinite(fresh(z, y, 0.5)).all()
        init_random_(fresh, torch.Generator().manual_seed(0))
        assert torch.isfinite(fresh(z, y, 0.5)).all()


def test_all_outputs_in_range_and_shaped(model):
    out = counterfactuals(model, LABELS, SEEDS, outputs=OUTPUTS)
    n = len(LABELS)
    assert out["mask"].shape == (n, 1, 64, 64)
    for key in ("composite", "premask", "foreground", "background"):
        assert out[key].shape == (n, 3, 64, 64), key
    for key, value in out.items():
        assert torch.isfinite(value).all() and value.min() >= 0 and value.max() <= 1, key
    assert out["mask"].min() >= 1e-4 and out["mask"].max() <= 1 - 1e-4
    expected = out["mask"] * out["foreground"] + (1 - out["mask"]) * out["background"]
    torch.testing.assert_close(out["composite"], expected)


def test_sample_alone_equals_sample_in_batch_of_8(model):
    """Bit-identical fp32: each sample's noise comes from its own seeds, and nothing mixes across the batch."""
    batch = counterfactuals(model, LABELS, SEEDS, outputs=OUTPUTS)
    for i in (0, 5):
        alone = counterfactuals(model, LABELS[i : i + 1], SEEDS[i : i + 1], outputs=OUTPUTS)
        for key in OUTPUTS:
            assert torch.equal(alone[key][0], batch[key][i]), (i, key)
    reordered = counterfactuals(model, LABELS.flip(0), SEEDS.flip(0), outputs=["composite"])["composite"]
    assert torch.equal(reordered.flip(0), batch["composite"])


def test_each_mechanism_follows_only_its_own_label_and_seed(model):
    base = counterfactuals(model, LABELS[:2], SEEDS[:2], outputs=OUTPUTS)
    labels = LABELS[:2].clone()
    labels[:, 1] = 7  # change only the texture label
    changed = counterfactuals(model, labels, SEEDS[:2], outputs=OUTPUTS)
    assert torch.equal(changed["mask"], base["mask"])
    assert torch.equal(changed["background"], base["background"])
    assert not torch.equal(changed["foreground"], base["foreground"])
    seeds = SEEDS[:2].clone()
    seeds[:, 2] += 1  # a new background noise: an interventional background
    changed = counterfactuals(model, LABELS[:2], seeds, outputs=OUTPUTS)
    assert torch.equal(changed["foreground"], base["foreground"])
    assert not torch.equal(changed["background"], base["background"])


def test_same_seed_same_class_same_image_different_seed_differs(model):
    a = model.texture([385, 385], [5, 6])
    b = model.texture([385], [5])
    assert torch.equal(a[0], b[0])
    assert not torch.equal(a[0], a[1])


def test_noise_is_truncated_and_scaled(model):
    u = model.noise(list(range(200)))
    assert u.shape == (200, 128)
    assert u.abs().max() <= 2 * model.config.truncation
    assert u.std() > 0.3 * model.config.truncation


def test_registry_builds_it_and_refuses_bad_labels():
    model = registry.build("imagenet-cgn", ImagenetCGNConfig.tiny().to_dict())
    assert isinstance(model, ImagenetCGN) and model.image_size == 64
    with pytest.raises(ValueError, match=r"shape label.*\[0, 999\]"):
        model.eval().shape([1000], [0])
    with pytest.raises(ValueError, match="truncation"):
        ImagenetCGNConfig(truncation=0.0)


def test_folded_spectral_norm_gives_the_same_fp32_images(model):
    """Inference folding (weights / sigma computed once) changes no bit of the output."""
    out = counterfactuals(model, LABELS[:2], SEEDS[:2], outputs=OUTPUTS)
    fast = tiny_model(seed=3).optimize_for_inference("cpu", "fp32", channels_last=True)
    assert not any(k.endswith("weight_orig") for k in fast.state_dict())
    out_fast = counterfactuals(fast, LABELS[:2], SEEDS[:2], outputs=OUTPUTS)
    for key in OUTPUTS:
        torch.testing.assert_close(out_fast[key], out[key], rtol=0, atol=1e-5)


def test_bf16_autocast_stays_close_to_fp32(model):
    out = counterfactuals(model, LABELS[:2], SEEDS[:2], outputs=["composite"])["composite"]
    half = tiny_model(seed=3).optimize_for_inference("cpu", "bf16")
    out_half = counterfactuals(half, LABELS[:2], SEEDS[:2], outputs=["composite"])["composite"]
    assert out_half.dtype == torch.float32
    diff = (out_half - out).abs()
    assert 0 < diff.max() < 0.1 and diff.mean() < 0.01
    with pytest.raises(ValueError, match="dtype"):
        tiny_model().optimize_for_inference("cpu", "int8")


def test_official_layout_round_trip_and_refusals(model):
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    config, ours = from_official_state_dict(state)
    assert config == model.config
    assert ours.keys() == model.state_dict().keys()
    broken = dict(state)
    broken.pop("module.u2net.outconv.weight")
    with pytest.raises(ValueError, match="missing"):
        from_official_state_dict(broken)
    with pytest.raises(ValueError, match="unexpected parts"):
        from_official_state_dict({**state, "discriminator.weight": torch.zeros(1)})
