"""The MNIST CGN's generator losses: binary mask entropy and the Gram (style) loss on feature maps.

The paper's style loss uses pretrained VGG16 features, which cannot be downloaded here. The
default feature network is a fixed random-weight conv net: Gram statistics of random filters
capture texture well (Ustyuzhaninov, Brendel, Gatys & Bethge, 2016). torchvision's VGG16 is used
when a user has it (`features="vgg16"`).
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def binary_entropy_loss(mask: Tensor) -> Tensor:
    """Mean binary entropy (bits) of the mask: pushes each pixel to 0 or 1."""
    return (-mask * torch.log2(mask) - (1 - mask) * torch.log2(1 - mask)).mean()


class RandomFeatures(nn.Module):
    """Four VGG-like blocks with fixed random weights; outputs the maps before each pooling."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 64), seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        blocks, cin = [], 3
        for w in widths:
            convs = [nn.Conv2d(cin, w, 3, padding=1), nn.Conv2d(w, w, 3, padding=1)]
            for c in convs:
                fan_in = c.in_channels * 9
                c.weight.data = torch.randn(c.weight.shape, generator=gen) * (2 / fan_in) ** 0.5
                c.bias.data.zero_()
            blocks.append(nn.Sequential(convs[0], nn.ReLU(), convs[1], nn.ReLU()))
            cin = w
        self.blocks = nn.ModuleList(blocks)
        self.requires_grad_(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i, block in enumerate(self.blocks):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            feats.append(x)
        return feats


class VGG16Features(nn.Module):
    """torchvision's pretrained VGG16, cut before each of its first four max-pools."""

    def __init__(self):
        super().__init__()
        import torchvision  # optional: only where the user has it with weights cached

        vgg = torchvision.models.vgg16(weights="DEFAULT").features.eval()
        self.vgg = vgg.requires_grad_(False)
        self.taps = [i - 1 for i, m in enumerate(vgg) if isinstance(m, nn.MaxPool2d)][:4]

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i, layer in enumerate(self.vgg):
            x = layer(x)
            if i in self.taps:
                feats.append(x)
                if len(feats) == 4:
                    break
        return feats


def feature_network(name: str) -> nn.Module:
    if name == "random":
        return RandomFeatures()
    if name == "vgg16":
        return VGG16Features()
    raise ValueError(f"features must be 'random' or 'vgg16', got {name!r}")


def gram(x: Tensor) -> Tensor:
    n, c, h, w = x.shape
    x = x.reshape(n, c, h * w)
    return x @ x.transpose(1, 2) / (c * h * w)


def style_loss(features: nn.Module, generated: Tensor, real: Tensor, weights: list[float]) -> Tensor:
    """Sum over blocks of w^2 * 5e3 * L1 between Gram matrices (the official scaling)."""
    total = generated.new_zeros(())
    if not any(weights):
        return total
    with torch.no_grad():
        target = features(real)
    for f_gen, f_real, w in zip(features(generated), target, weights, strict=False):
        if w:
            total = total + F.l1_loss(gram(f_gen), gram(f_real)) * w**2 * 5e3
    return total
