"""The MNIST CGN's determinism, independence of mechanisms, and official checkpoint layout."""

import pytest
import torch
from torch import nn

from cgn.mnist.model import MnistCGN, MnistCGNConfig, Upsample2x, from_official_state_dict, to_official_state_dict
from cgn.pipeline import counterfactuals


@pytest.fixture(scope="module")
def model() -> MnistCGN:
    torch.manual_seed(0)
    m = MnistCGN(MnistCGNConfig(init_type="normal", init_gain=0.2))
    for module in m.modules():  # non-trivial running stats, as a trained model has
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return m.eval()


def test_same_labels_and_seeds_give_identical_tensors(model):
    labels, seeds = torch.tensor([[3, 7, 1], [5, 2, 9]]), torch.tensor([[11, 12, 13], [0, 0, 0]])
    a = counterfactuals(model, labels, seeds, ["composite", "mask", "foreground", "background"])
    b = counterfactuals(model, labels, seeds, ["composite", "mask", "foreground", "background"])
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["composite"][0], a["composite"][1])


def test_counterfactual_keeps_the_mask_bit_identical(model):
    base = counterfactuals(model, torch.tensor([[4, 4, 4]]), torch.tensor([[7, 7, 7]]), ["mask", "composite"])
    for labels, seeds in [([4, 9, 4], [7, 7, 7]), ([4, 4, 0], [7, 7, 7]), ([4, 1, 2], [7, 99, 123])]:
        cf = counterfactuals(model, torch.tensor([labels]), torch.tensor([seeds]), ["mask", "composite"])
        assert torch.equal(cf["mask"], base["mask"])
        assert not torch.equal(cf["composite"], base["composite"])
    other_shape = counterfactuals(model, torch.tensor([[5, 4, 4]]), torch.tensor([[7, 7, 7]]), ["mask"])
    assert not torch.equal(other_shape["mask"], base["mask"])


def _alone_equals_batch(model, n: int, rows: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 10, (n, 3), generator=gen)
    seeds = torch.randint(0, 2**62, (n, 3), generator=gen)
    outputs = ["composite", "mask", "foreground", "background"]
    batch = counterfactuals(model, labels, seeds, outputs)
    for i in rows:
        alone = counterfactuals(model, labels[i : i + 1], seeds[i : i + 1], outputs)
        for key in outputs:
            assert torch.equal(alone[key], batch[key][i : i + 1]), (i, key)


def test_sample_alone_equals_sample_inside_a_batch_of_70(model):
    """70 rows: large CPU chunks where they give the 4-row bits, then a padded 4-row tail."""
    _alone_equals_batch(model, 70, (0, 17, 63, 64, 69))


class _BatchSensitiveShape(MnistCGN):
    """A shape mechanism whose bits change with the forward's row count, as some CPU kernels' do."""

    def _shape(self, y, seeds):
        out = super()._shape(y, seeds)
        return {k: v + 1e-6 * (len(y) > self.forward_rows) for k, v in out.items()}


def test_large_cpu_chunks_only_where_their_bits_equal_the_4_row_bits():
    torch.manual_seed(0)
    model = _BatchSensitiveShape(MnistCGNConfig(init_type="normal", init_gain=0.2)).eval()
    _alone_equals_batch(model, 70, (0, 33, 69))
    chosen = {mechanism: sizes for (mechanism, *_), sizes in model._same_bits_cache.items()}
    assert chosen["shape"] == (model.forward_rows,)
    assert set(chosen) == {"shape", "texture", "background"}


def test_out_of_vocabulary_label_and_negative_seed_name_the_field(model):
    with pytest.raises(ValueError, match=r"texture label.*\[0, 9\]"):
        model.texture([10], [0])
    with pytest.raises(ValueError, match=r"shape seed.*\[0, 9223372036854775807\]"):
        model.shape([1], [-1])
    with pytest.raises(ValueError, match="background seed"):
        model.background([1], [2**63])


class OfficialLayout(nn.Module):
    """The official MNIST CGN's module layout, written from REFERENCE.md, to produce its key names."""

    def __init__(self):
        super().__init__()
        ngf, cin = 32, 42

        def up(a: int, b: int) -> list[nn.Module]:
            conv = nn.Conv2d(a, b, 3, 1, 1, bias=False)
            return [nn.Upsample(scale_factor=2), conv, nn.BatchNorm2d(b), nn.LeakyReLU(0.2)]

        def tex() -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(cin, 2 * ngf * 64),
                nn.Unflatten(1, (2 * ngf, 8, 8)),
                *up(2 * ngf, 2 * ngf),
                *up(2 * ngf, ngf),
                nn.Conv2d(ngf, 3, 3, 1, 1),
                nn.BatchNorm2d(3),
                nn.Tanh(),
            )

        self.label_emb = nn.Embedding(10, 10)
        self.f_shape = nn.Sequential(
            nn.Linear(cin, 2 * ngf * 64),
            nn.Unflatten(1, (2 * ngf, 8, 8)),
            nn.InstanceNorm2d(2 * ngf),
            *up(2 * ngf, ngf),
            nn.InstanceNorm2d(ngf),
            *up(ngf, 1),
            nn.InstanceNorm2d(1),
        )
        self.f_text1, self.f_text2 = tex(), tex()

    def forward(self, y, u, crop_f, crop_b):
        inp = torch.cat([u, self.label_emb(y)], 1)
        mask = self.f_shape(inp).clamp(1e-4, 1 - 1e-4)

        def shuffle(x, crop):  # tile 2x2, cut a 32x32 window at (row, col)
            tiled = torch.cat([torch.cat([x, x], -1)] * 2, -2)
            return torch.stack([t[:, r : r + 32, c : c + 32] for t, (r, c) in zip(tiled, crop.tolist(), strict=True)])

        return mask, shuffle(self.f_text1(inp), crop_f), shuffle(self.f_text2(inp), crop_b)


def test_official_key_layout_loads_and_matches_official_forward():
    torch.manual_seed(3)
    official = OfficialLayout()
    for p in official.parameters():
        p.data.normal_(0, 0.1)
    official.eval()
    ours = MnistCGN()
    ours.load_state_dict(from_official_state_dict(official.state_dict()), strict=True)
    ours.eval()
    assert set(to_official_state_dict(ours.state_dict())) == set(official.state_dict())

    y = torch.tensor([0, 3, 9, 5])
    u = torch.randn(4, 32)
    crop_f = torch.tensor([[0, 0], [5, 31], [32, 32], [17, 2]])
    crop_b = torch.tensor([[1, 2], [32, 0], [0, 32], [9, 9]])
    with torch.no_grad():
        m, f, b = official(y, u, crop_f, crop_b)
        assert torch.equal(ours.mask_from(y, u), m)
        assert torch.equal(ours.texture_from(y, u, crop_f), f)
        assert torch.equal(ours.background_from(y, u, crop_b), b)


def test_unknown_official_key_is_refused():
    with pytest.raises(ValueError, match="not an official MNIST CGN key"):
        from_official_state_dict({"generator.weight": torch.zeros(1)})


def test_repeated_seeds_get_the_noise_each_draws_alone(model):
    # A padded chunk repeats its last seed; its noise is drawn once (cgn.noise.distinct) and must be
    # exactly what that seed draws on its own, wherever the repeats sit.
    seeds = [5, 3, 5, 5, 2**62, 3]
    u, offsets = model.noise(seeds)
    for i, s in enumerate(seeds):
        u1, off1 = model.noise([s])
        assert torch.equal(u[i : i + 1], u1) and torch.equal(offsets[i : i + 1], off1), i
    assert not torch.equal(u[0], u[1])


def test_upsample2x_is_nn_upsample_bit_for_bit_with_and_without_autograd():
    torch.manual_seed(5)
    x = torch.randn(6, 5, 8, 8) * 100  # large values: a blend of neighbours would show
    with torch.no_grad():
        assert torch.equal(Upsample2x()(x), nn.Upsample(scale_factor=2)(x))
    grads = []
    for layer in (Upsample2x(), nn.Upsample(scale_factor=2)):
        xg = x.clone().requires_grad_()
        out = layer(xg)
        (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
        grads.append((out.detach(), xg.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
