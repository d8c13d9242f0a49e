"""The ImageNet CGN's training losses (paper section 3; weights in TrainConfig).

Images are in BigGAN's [-1, 1]. The perceptual and texture losses compare Gram matrices (and optionally
features) of a VGG16-shaped feature net at the four blocks before its max-pools. Pretrained VGG16 weights
cannot be downloaded here: the net takes torchvision-layout `features.*` weights when given, and otherwise
uses fixed random filters, whose Gram statistics still capture texture (Ustyuzhaninov et al. 2016).
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]  # up to the 4th block
TAPS = (3, 8, 15, 22)  # indices of the ReLUs before each max-pool, as in torchvision's vgg16().features
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureNet(nn.Module):
    """VGG16's first four blocks (`features.N` keys as torchvision), frozen; `divisor` thins it for tests."""

    def __init__(self, divisor: int = 1, seed: int = 0):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v // divisor, 3, padding=1), nn.ReLU()]
                cin = v // divisor
        self.features = nn.Sequential(*layers)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in self.features:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, generator=g)
                    nn.init.zeros_(m.bias)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def load_vgg16(self, state: dict[str, Tensor]) -> None:
        """Pretrained torchvision VGG16 weights (`features.N.weight/bias`; later layers are ignored)."""
        mine = self.state_dict()
        self.load_state_dict({k: v for k, v in state.items() if k in mine} | {"mean": self.mean, "std": self.std})

    def forward(self, x: Tensor) -> list[Tensor]:
        h = ((x + 1) / 2 - self.mean) / self.std
        taps = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in TAPS:
                taps.append(h)
        return taps


def gram(x: Tensor) -> Tensor:
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def perceptual(net: FeatureNet, x: Tensor, target: Tensor, style: list[float], content: list[float] | None = None):
    """Per-block L1 of Gram matrices (weight w**2 * 5e3, the official scaling) plus optional feature L1."""
    with torch.no_grad():
        want = net(target)
    have = net(x)
    loss = x.new_zeros(())
    for i, (h, t) in enumerate(zip(have, want, strict=True)):
        if style[i]:
            loss = loss + F.l1_loss(gram(h), gram(t)) * style[i] ** 2 * 5e3
        if content and content[i]:
            loss = loss + F.l1_loss(h, t) * content[i]
    return loss


def binary_entropy(mask: Tensor) -> Tensor:
    """Pushes the mask towards 0 or 1 (mask is clamped to [1e-4, 1 - 1e-4], so the logs are finite)."""
    return (-mask * torch.log2(mask) - (1 - mask) * torch.log2(1 - mask)).mean()


def mask_interval(mask: Tensor, low: float = 0.1, high: float = 0.9) -> Tensor:
    """Keeps each mask's mean in [low, high]: no empty and no full masks."""
    m = mask.mean(dim=(1, 2, 3))
    return (F.relu(low - m) + F.relu(m - high)).mean()


def background_saliency(saliency: Tensor) -> Tensor:
    """U2-Net saliency of the background: an object left on the background is penalised."""
    return saliency.mean()


def patch_grid(image: Tensor, weight: Tensor, patch: int, grid: int, top: int, generator: torch.Generator) -> Tensor:
    """Per image: a grid x grid mosaic of patches drawn among the `top` patches where `weight` (mask) is highest.

    The texture IM is asked to look like this mosaic, so it learns the object's texture rather than its shape.
    Images are worked on at half resolution (as the official 128 px), the mosaic is resized back.
    """
    n, c, size, _ = image.shape
    work = max(size // 2, patch * 2)
    img = F.interpolate(image, (work, work), mode="bicubic", align_corners=False)
    w = F.interpolate(weight, (work, work), mode="bicubic", align_corners=False)
    patches = F.unfold(img, patch)  # (n, c*patch*patch, L)
    scores = F.unfold(w, patch).mean(1)  # (n, L)
    k = min(top, scores.shape[1])
    best = scores.topk(k, dim=1).indices  # (n, k)
    pick = torch.randint(k, (n, grid * grid), generator=generator).to(best.device)
    chosen = best.gather(1, pick)  # (n, grid*grid)
    tiles = patches.gather(2, chosen.unsqueeze(1).expand(-1, patches.shape[1], -1))
    tiles = tiles.reshape(n, c, patch, patch, grid, grid).permute(0, 1, 4, 2, 5, 3)
    mosaic = tiles.reshape(n, c, grid * patch, grid * patch)
    return F.interpolate(mosaic, (size, size), mode="bicubic", align_corners=False)
