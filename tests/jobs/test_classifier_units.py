"""The ensemble, the data files and the mixing of real and generated samples."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from cgn_classifier.augment import random_affine
from cgn_classifier.data import Counterfactuals, Split, from_shards, load_real, save_real
from cgn_classifier.model import HEADS, InvariantEnsemble
from cgn_classifier.train import DEFAULT_LR, TrainConfig, evaluate, faster_precision, mix, native_bf16, train


def test_ensemble_has_one_head_per_mechanism_on_a_shared_backbone():
    model = InvariantEnsemble()
    out = model(torch.rand(4, 3, 32, 32))
    assert list(out) == list(HEADS) and all(v.shape == (4, 10) for v in out.values())
    assert sum(p.numel() for p in model.backbone.parameters()) > 0
    convs = [m for m in model.backbone if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (3, 32, 5, 1),
        (32, 32, 3, 1),
        (32, 64, 3, 2),
        (64, 64, 3, 1),
    ]
    assert isinstance(model.backbone[0], torch.nn.BatchNorm2d)
    with pytest.raises(ValueError, match="heads"):
        InvariantEnsemble(("shape", "colour"))


def test_loss_sends_each_head_its_own_mechanism_label():
    torch.manual_seed(0)
    model = InvariantEnsemble()
    logits = model(torch.rand(8, 3, 32, 32))
    labels = torch.randint(0, 10, (8, 3))
    ce = torch.nn.functional.cross_entropy
    expected = sum(ce(logits[h], labels[:, k]) for k, h in enumerate(HEADS))
    assert torch.allclose(model.loss(logits, labels), expected)
    swapped = labels[:, [1, 0, 2]]
    assert not torch.allclose(model.loss(logits, swapped), expected)


def test_real_file_round_trip_and_digit_labels_for_every_head(tmp_path):
    rng = np.random.default_rng(0)
    split = {
        "images": rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8),
        "labels": np.arange(5),
        "object_ids": np.arange(5)[::-1].copy(),
        "background_ids": np.full(5, 7),
    }
    path = save_real(tmp_path / "v.npz", "wildlife", {"train": split, "test": split}, {"k": 1})
    real = load_real(path)
    assert real.variant == "wildlife" and real.meta == {"k": 1}
    assert np.array_equal(real.train.images, split["images"])
    assert real.test.factors.tolist() == [[i, 4 - i, 7] for i in range(5)]
    assert real.train.training_labels().tolist() == [[i, i, i] for i in range(5)]
    assert real.test.spread(3).digits.tolist() == [0, 2, 4] and real.train.take(2).digits.tolist() == [0, 1]
    with pytest.raises(FileNotFoundError, match="export_mnist_variant"):
        load_real(tmp_path / "missing.npz")


def test_mix_keeps_generated_labels_and_shards_are_ordered_by_key():
    real = Split(np.zeros((2, 3, 32, 32), np.uint8), np.array([[3, 3, 3], [4, 4, 4]]))
    cf = Counterfactuals(np.full((2, 3, 32, 32), 255, np.uint8), np.array([[1, 2, 3], [4, 5, 6]]))
    images, labels = mix(real, cf)
    assert images.shape == (4, 3, 32, 32) and labels.tolist() == [[3, 3, 3], [4, 4, 4], [1, 2, 3], [4, 5, 6]]
    shards = [
        {"keys": np.array([2, 3]), "labels": np.array([[2] * 3, [3] * 3]), "composite": np.full((2, 3, 2, 2), 2)},
        {"keys": np.array([0, 1]), "labels": np.array([[0] * 3, [1] * 3]), "composite": np.full((2, 3, 2, 2), 0)},
    ]
    images, labels = from_shards(shards)
    assert labels[:, 0].tolist() == [0, 1, 2, 3] and images[:, 0, 0, 0].tolist() == [0, 0, 2, 2]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_shape_head_learns_the_shape_when_counterfactuals_break_the_shortcut(precision):
    """Synthetic task: 'shape' = a horizontal or a vertical bar, 'color' = its channel. Real data: color follows
    the label; test: the other color. Counterfactuals make the shape head ignore color; real data alone cannot."""
    g = np.random.default_rng(0)

    def images(shape: np.ndarray, color: np.ndarray) -> np.ndarray:
        x = np.zeros((len(shape), 3, 16, 16), np.uint8)  # the backbone pools globally: any size works
        for i, (s, c) in enumerate(zip(shape, color, strict=True)):
            if s == 0:
                x[i, c, 6:10, 2:14] = 220
            else:
                x[i, c, 2:14, 6:10] = 220
        return x

    y = g.integers(0, 2, 256)
    real = Split(images(y, y), np.stack([y, y, y], 1))
    ty = g.integers(0, 2, 200)
    test = Split(images(ty, 1 - ty), np.stack([ty, 1 - ty, np.zeros_like(ty)], 1))
    cs, cc = g.integers(0, 2, 256), g.integers(0, 2, 256)
    cf = Counterfactuals(images(cs, cc), np.stack([cs, cc, np.zeros_like(cs)], 1))
    cfg = TrainConfig(epochs=3, batch_size=32, seed=0, precision=precision)
    plain, _ = train(*mix(real, None), test, cfg)
    invariant, history = train(*mix(real, cf), test, cfg)
    again, _ = train(*mix(real, cf), test, cfg)
    assert all(
        torch.equal(a, b) for a, b in zip(invariant.state_dict().values(), again.state_dict().values(), strict=True)
    )
    result = evaluate(invariant, test, precision=precision)["own"]
    assert result["shape"] > 0.9
    assert result["texture"] > 0.9  # the color head names the color it sees
    assert evaluate(plain, test)["own"]["shape"] < 0.5  # test colors swapped: the shortcut shows
    lrs = [r["lr"] for r in history]  # one cycle: up from the peak / 25, then down
    assert lrs[0] == pytest.approx(DEFAULT_LR["adam"] / 25) and lrs[1] > lrs[2] > 0


def test_adam_decays_the_weights_and_the_papers_adadelta_does_not():
    assert TrainConfig().weight_decay == 0.05 and TrainConfig(optimizer="adadelta").weight_decay == 0.0
    with pytest.raises(ValueError, match="weight_decay must be >= 0; got -0.1"):
        TrainConfig(weight_decay=-0.1)
    images = torch.randint(0, 256, (256, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (256, 3))
    test = Split(images[:16].numpy(), labels[:16].numpy())
    norm = {}
    for wd in (0.0, 10.0):
        model, _ = train(images, labels, test, TrainConfig(epochs=1, seed=0, weight_decay=wd, precision="fp32"))
        norm[wd] = sum(p.square().sum() for p in model.parameters())
    assert norm[10.0] < 0.9 * norm[0.0]


def test_the_papers_recipe_decays_adadelta_per_epoch():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64, 3))
    test = Split(images[:16].numpy(), labels[:16].numpy())
    cfg = TrainConfig(epochs=3, optimizer="adadelta", seed=0)
    _, history = train(images, labels, test, cfg)
    assert cfg.lr == 1.0 and cfg.batch_size == 32
    assert [r["lr"] for r in history] == pytest.approx([1.0, 0.7, 0.49])
    with pytest.raises(ValueError, match="optimizer must be one of adam, adadelta"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16; got 'fp16'"):
        TrainConfig(precision="fp16")
    auto = TrainConfig(batch_size=16).precision  # "auto": the faster of the two, measured here
    assert auto == faster_precision(16) and auto in ("fp32", "bf16")
    if not native_bf16():
        assert auto == "fp32"  # emulated bf16 is never the faster
    with pytest.raises(ValueError, match="augment must be one of affine, none; got 'flip'"):
        TrainConfig(augment="flip")
    with pytest.raises(ValueError, match="aux_grad must be in"):
        TrainConfig(aux_grad=2.0)
    with pytest.raises(ValueError, match="heads: a non-empty subset of shape, texture, background; got colour"):
        TrainConfig(heads=("colour",))


def test_augmentation_moves_the_shape_and_keeps_colors_and_its_seed():
    """Each image gets its own small rotation/scale/shift from the job's seed; a uniform background stays
    uniform (edges extend past the border), so only the shape moves, never the color."""
    x = torch.zeros(8, 3, 32, 32)
    x[:, 0], x[:, 2] = 0.2, 0.7  # background color
    x[:, :, 8:24, 14:18] = torch.tensor([0.9, 0.1, 0.3])[:, None, None]  # a vertical bar, another color
    a = random_affine(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, random_affine(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(a, random_affine(x, torch.Generator().manual_seed(1)))
    assert all(not torch.allclose(a[i], x[i], atol=0.05) for i in range(8))  # every image moved
    assert len({tuple(a[i].flatten()[:512].tolist()) for i in range(8)}) == 8  # each its own transform
    flat = torch.full((4, 3, 32, 32), 0.25)
    assert torch.allclose(random_affine(flat, torch.Generator().manual_seed(0)), flat, atol=1e-6)
    assert a[:, :, 0, 0] == pytest.approx(x[:, :, 0, 0])  # corners keep the background color
    assert a[:, 0].amax() == pytest.approx(0.9, abs=0.02)  # the bar keeps its color


def test_texture_and_background_heads_reach_the_backbone_through_a_scaled_gradient():
    """The shape head's gradient is untouched; the others' is aux_grad times what plain multi-task would send."""
    x, labels = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8, 3))

    def backbone_grad(aux_grad: float, head: str) -> torch.Tensor:
        torch.manual_seed(0)
        model = InvariantEnsemble(aux_grad=aux_grad)
        ce = torch.nn.functional.cross_entropy(model(x)[head], labels[:, HEADS.index(head)])
        ce.backward()
        return model.backbone[1].weight.grad

    for head in ("texture", "background"):
        assert torch.allclose(backbone_grad(0.1, head), 0.1 * backbone_grad(1.0, head), atol=1e-7)
        assert backbone_grad(0.1, head).abs().sum() > 0
    assert torch.equal(backbone_grad(0.1, "shape"), backbone_grad(1.0, "shape"))


def test_job_imports_only_the_sdk_never_the_server():
    code = "import sys, cgn_classifier.cli, cgn_classifier.data; import cgn_client.batch; "
    code += "print(sorted({m.split('.')[0] for m in sys.modules} & {'cgn', 'service', 'model_store', 'cgn_cli'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"


def test_test_set_evaluation_every_n_epochs_and_always_after_the_last():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64, 3))
    test = Split(images[:16].numpy(), labels[:16].numpy())
    _, every = train(images, labels, test, TrainConfig(epochs=3, seed=0))
    _, last = train(images, labels, test, TrainConfig(epochs=3, seed=0, eval_every=0))
    _, second = train(images, labels, test, TrainConfig(epochs=3, seed=0, eval_every=2))
    assert [r["test_acc"] is not None for r in last] == [False, False, True]
    assert [r["test_acc"] is not None for r in second] == [False, True, True]
    assert last[-1]["test_acc"] == every[-1]["test_acc"] and last[-1]["train_acc"] == every[-1]["train_acc"]
    with pytest.raises(ValueError, match="eval_every must be >= 0; got -1"):
        TrainConfig(eval_every=-1)


def test_backbone_pools_before_its_first_relu_with_the_same_values_and_gradients():
    """ReLU and max-pool commute (both monotone); the ReLU runs after the pool, on a quarter of the values."""
    torch.manual_seed(0)
    model = InvariantEnsemble()
    x = torch.rand(4, 3, 32, 32)
    conv, pool, relu, *rest = model.backbone[1:]
    assert isinstance(pool, torch.nn.MaxPool2d) and isinstance(relu, torch.nn.ReLU)
    pre = conv(model.backbone[0](x))
    ours = relu(pool(pre.clone()))
    reference = pool(torch.relu(pre))
    assert torch.equal(ours, reference)
    g_ours, g_ref = (
        torch.autograd.grad(out.square().sum(), conv.weight, retain_graph=True)[0] for out in (ours, reference)
    )
    assert torch.equal(g_ours, g_ref)


def test_input_batchnorm_learns_a_scale_and_shift_unless_told_not_to():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64, 3))
    test = Split(images[:8].numpy(), labels[:8].numpy())
    model, _ = train(images, labels, test, TrainConfig(epochs=1, seed=0, precision="fp32"))
    norm = model.backbone[0]
    assert norm.affine and not torch.equal(norm.weight, torch.ones(3))  # trained, not left at its init
    plain, _ = train(images, labels, test, TrainConfig(epochs=1, seed=0, precision="fp32", input_affine=False))
    assert plain.backbone[0].weight is None
    count = sum(p.numel() for p in model.parameters())
    assert count - sum(p.numel() for p in plain.parameters()) == 6
