"""The MNIST CGN, laid out as the official architecture so official checkpoints map onto it."""

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from cgn.mechanisms import CounterfactualModel
from cgn.noise import distinct, generator, normal, randint
from cgn.shuffle import patch_shuffle


@dataclass(frozen=True)
class MnistCGNConfig:
    num_classes: int = 10
    latent_size: int = 32
    ngf: int = 32
    image_size: int = 32
    init_type: str = "orthogonal"  # "orthogonal" or "normal"
    init_gain: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class Upsample2x(nn.Module):
    """Nearest-neighbour x2, bit for bit nn.Upsample(scale_factor=2).

    Without autograd it is a broadcast copy: on CPU aten's upsample_nearest2d took ~45 % of a
    generation pass and the copy takes a fifth of its time. With autograd it is aten's op, whose
    backward is faster than the copy's (benchmarks/upsample_bench.py), so training is unchanged.
    """

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        n, c, h, w = x.shape
        return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


def _up(cin: int, cout: int) -> list[nn.Module]:
    return [
        Upsample2x(),
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    ]


def _shape_layers(cin: int, ngf: int, init: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(cin, 2 * ngf * init * init),
        nn.Unflatten(1, (2 * ngf, init, init)),
        nn.InstanceNorm2d(2 * ngf),
        *_up(2 * ngf, ngf),
        nn.InstanceNorm2d(ngf),
        *_up(ngf, 1),
        nn.InstanceNorm2d(1),
    )


def _texture_layers(cin: int, ngf: int, init: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(cin, 2 * ngf * init * init),
        nn.Unflatten(1, (2 * ngf, init, init)),
        *_up(2 * ngf, 2 * ngf),
        *_up(2 * ngf, ngf),
        nn.Conv2d(ngf, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.Tanh(),
    )


class MnistCGN(CounterfactualModel):
    """Three IMs on concat(u, embedding(y)); texture and background pass through the patch shuffle."""

    MASK_EPS = 1e-4
    cpu_fast_rows = (64, 32, 16, 8)

    def __init__(self, config: MnistCGNConfig | None = None):
        super().__init__()
        self.config = config = config or MnistCGNConfig()
        self.num_classes = config.num_classes
        self.image_size = config.image_size
        cin = config.latent_size + config.num_classes
        init = config.image_size // 4
        self.label_embedding = nn.Embedding(config.num_classes, config.num_classes)
        self.shape_im = _shape_layers(cin, config.ngf, init)
        self.texture_im = _texture_layers(cin, config.ngf, init)
        self.background_im = _texture_layers(cin, config.ngf, init)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        gain = self.config.init_gain
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                if self.config.init_type == "orthogonal":
                    nn.init.orthogonal_(m.weight, gain=gain)
                else:
                    nn.init.normal_(m.weight, 0.0, gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, gain)
                nn.init.zeros_(m.bias)

    # Differentiable forward passes on explicit noise; training and inference share them.
    def im_input(self, y: Tensor, u: Tensor) -> Tensor:
        return torch.cat([u, self.label_embedding(y)], dim=1)

    def mask_from(self, y: Tensor, u: Tensor) -> Tensor:
        """Mask in [1e-4, 1 - 1e-4], one channel; clamped in fp32 (in bf16, 1 - 1e-4 rounds to 1)."""
        return self.shape_im(self.im_input(y, u)).float().clamp(self.MASK_EPS, 1 - self.MASK_EPS)

    def texture_from(self, y: Tensor, u: Tensor, offsets: Tensor) -> Tensor:
        """Foreground in [-1, 1], patch-shuffled at the given offsets."""
        return patch_shuffle(self.texture_im(self.im_input(y, u)), offsets)

    def background_from(self, y: Tensor, u: Tensor, offsets: Tensor) -> Tensor:
        return patch_shuffle(self.background_im(self.im_input(y, u)), offsets)

    def noise(self, seeds: list[int]) -> tuple[Tensor, Tensor]:
        """Per-sample noise u and shuffle offsets, both from that sample's own generator."""
        unique, rows = distinct(seeds)
        gens = [generator(s) for s in unique]
        u = normal(gens, self.config.latent_size)
        offsets = randint(gens, self.image_size + 1, 2)
        return u[rows], offsets[rows]

    def _device(self) -> torch.device:
        return self.label_embedding.weight.device

    def _shape(self, y: Tensor, seeds: list[int]) -> dict[str, Tensor]:
        u, _ = self.noise(seeds)
        mask = self.mask_from(y.to(self._device()), u.to(self._device())).float()
        return {"mask": mask, "premask": mask}

    def _texture(self, y: Tensor, seeds: list[int]) -> Tensor:
        u, off = self.noise(seeds)
        return (self.texture_from(y.to(self._device()), u.to(self._device()), off).float() + 1) / 2

    def _background(self, y: Tensor, seeds: list[int]) -> Tensor:
        u, off = self.noise(seeds)
        return (self.background_from(y.to(self._device()), u.to(self._device()), off).float() + 1) / 2


# Official checkpoint prefix -> ours. Sequential indices inside each IM are the same.
OFFICIAL_PREFIXES = {
    "label_emb.": "label_embedding.",
    "f_shape.": "shape_im.",
    "f_text1.": "texture_im.",
    "f_text2.": "background_im.",
}


def from_official_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename an official MNIST `ckp.pth` state dict to our keys; unknown keys are refused."""
    out = {}
    for key, value in state.items():
        prefix = next((p for p in OFFICIAL_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            raise ValueError(f"not an official MNIST CGN key: {key!r}")
        out[OFFICIAL_PREFIXES[prefix] + key[len(prefix) :]] = value
    return out


def to_official_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    inverse = {v: k for k, v in OFFICIAL_PREFIXES.items()}
    out = {}
    for key, value in state.items():
        prefix = next(p for p in inverse if key.startswith(p))
        out[inverse[prefix] + key[len(prefix) :]] = value
    return out
