"""Colored, double-colored and Wildlife MNIST (the paper's Table 1 datasets).

Train split: every factor (digit color or texture, background color or texture) follows the
label. Test split: the official MNIST test digits with those factors drawn uniformly at random
from a fixed seed, so the test set is the same on every run and only the shape predicts the label.
Images are float tensors in [0, 1], (N, 3, 32, 32); labels are the digit.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import ImageColor
from torch import Tensor

from cgn.mnist.digits import binary_digits, load_mnist
from cgn.mnist.textures import BACKGROUND_TEXTURES, OBJECT_TEXTURES, folder_textures, procedural_textures

VARIANTS = ("colored", "double-colored", "wildlife")
TRAIN_SEED = 0
TEST_SEED = 1

# Colored MNIST: one mean digit color per class, jittered per image (variance 0.02); black background.
COLORED_PALETTE = {
    "red": (220, 20, 60),
    "orange": (255, 140, 0),
    "yellow": (255, 215, 0),
    "lime": (50, 205, 50),
    "teal": (0, 128, 128),
    "cyan": (0, 206, 209),
    "blue": (30, 60, 220),
    "purple": (128, 0, 160),
    "magenta": (255, 0, 255),
    "white": (235, 235, 235),
}
COLOR_VARIANCE = 0.02
# Double-colored MNIST: background color by class from this palette; the digit color is the
# palette shifted by 6, as in the official code; per-image Gaussian jitter with std 0.01.
DOUBLE_PALETTE = ["darkgreen", "darkblue", "#b03060", "orangered", "yellow", "burlywood", "lime", "aqua", "fuchsia"]
DOUBLE_PALETTE.append("#6495ed")
DOUBLE_NAMES = ["darkgreen", "darkblue", "maroon", "orangered", "yellow", "burlywood", "lime", "aqua", "fuchsia"]
DOUBLE_NAMES.append("cornflowerblue")
DOUBLE_SHIFT = 6
DOUBLE_JITTER = 0.01
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _rgb(color: str | tuple[int, int, int]) -> Tensor:
    rgb = ImageColor.getrgb(color) if isinstance(color, str) else color
    return torch.tensor(rgb[:3], dtype=torch.float32) / 255


@dataclass(frozen=True)
class Factors:
    """Per-mechanism class vocabularies of a variant (what the texture/background labels mean)."""

    texture: list[str]
    background: list[str]


def factors(variant: str, texture_dir: Path | None = None) -> Factors:
    if variant == "colored":
        return Factors(list(COLORED_PALETTE), [f"black ({d})" for d in DIGIT_NAMES])
    if variant == "double-colored":
        return Factors([DOUBLE_NAMES[i - DOUBLE_SHIFT] for i in range(10)], list(DOUBLE_NAMES))
    if variant == "wildlife":
        if texture_dir is not None:
            _, _, obj, bg = folder_textures(texture_dir)
            return Factors(obj, bg)
        return Factors(list(OBJECT_TEXTURES), list(BACKGROUND_TEXTURES))
    raise ValueError(f"dataset must be one of {', '.join(VARIANTS)}; got {variant!r}")


def _random_crops(textures: Tensor, ids: Tensor, gen: torch.Generator, size: int = 32) -> Tensor:
    """A random size x size crop of texture ids[i] for each i."""
    n, full = len(ids), textures.shape[-1]
    oy = torch.randint(0, full - size + 1, (n,), generator=gen)
    ox = torch.randint(0, full - size + 1, (n,), generator=gen)
    rows = (oy[:, None] + torch.arange(size))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(size))[:, None, None, :]
    return textures[ids[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]


def make_images(
    variant: str,
    digits: Tensor,
    object_ids: Tensor,
    background_ids: Tensor,
    gen: torch.Generator,
    texture_dir: Path | None = None,
) -> Tensor:
    """Compose binary digits with the object/background factor of each image: x = d*obj + (1-d)*bg."""
    n = len(digits)
    if variant == "colored":
        means = torch.stack([_rgb(c) for c in COLORED_PALETTE.values()])
        obj = means[object_ids] + torch.randn(n, 3, generator=gen) * COLOR_VARIANCE**0.5
        obj = obj.clamp(0, 1)[:, :, None, None]
        bg = torch.zeros(n, 3, 1, 1)
    elif variant == "double-colored":
        palette = torch.stack([_rgb(c) for c in DOUBLE_PALETTE])
        shifted = palette[[(i - DOUBLE_SHIFT) % 10 for i in range(10)]]
        obj = (shifted[object_ids] + torch.randn(n, 3, generator=gen) * DOUBLE_JITTER).clamp(0, 1)[:, :, None, None]
        bg = (palette[background_ids] + torch.randn(n, 3, generator=gen) * DOUBLE_JITTER).clamp(0, 1)[:, :, None, None]
    elif variant == "wildlife":
        if texture_dir is not None:
            obj_tex, bg_tex, _, _ = folder_textures(texture_dir)
        else:
            obj_tex, bg_tex = procedural_textures()
        obj = _random_crops(obj_tex, object_ids, gen)
        bg = _random_crops(bg_tex, background_ids, gen)
    else:
        raise ValueError(f"dataset must be one of {', '.join(VARIANTS)}; got {variant!r}")
    return digits * obj + (1 - digits) * bg


@dataclass
class MnistVariant:
    images: Tensor  # (N, 3, 32, 32) in [0, 1]
    labels: Tensor  # digit
    object_ids: Tensor  # digit color / texture class of each image
    background_ids: Tensor
    digits: Tensor  # (N, 1, 32, 32) binary digit silhouettes the images were made from

    def __len__(self) -> int:
        return len(self.labels)


def load(
    variant: str, split: str, mnist_dir: str | None = None, texture_dir: Path | None = None, limit: int | None = None
) -> MnistVariant:
    """Build a split. Train: factors follow the label. Test: factors uniform from a fixed seed."""
    if variant not in VARIANTS:
        raise ValueError(f"dataset must be one of {', '.join(VARIANTS)}; got {variant!r}")
    raw, labels = load_mnist(split, mnist_dir)
    if limit is not None:
        raw, labels = raw[:limit], labels[:limit]
    digits = binary_digits(raw)
    y = torch.from_numpy(labels)
    gen = torch.Generator().manual_seed(TRAIN_SEED if split == "train" else TEST_SEED)
    if split == "train":
        obj_ids, bg_ids = y.clone(), y.clone()
    else:
        obj_ids = torch.randint(0, 10, (len(y),), generator=gen)
        bg_ids = torch.randint(0, 10, (len(y),), generator=gen)
    images = make_images(variant, digits, obj_ids, bg_ids, gen, texture_dir)
    return MnistVariant(images, y, obj_ids, bg_ids, digits)


def test_ceiling(variant: str) -> float:
    """The best accuracy any classifier can reach on our test protocol.

    Double-colored: when digit and background draw the same color (1 in 10), the digit is
    invisible and at best 1 in 10 of those are guessed right: 0.9 + 0.1 * 0.1 = 0.91.
    Colored (black background, random digit color) and Wildlife (distinct texture families) keep
    the digit visible, so their ceiling is the digit classifier's own.
    """
    return 0.91 if variant == "double-colored" else 1.0


def to_uint8(images: Tensor) -> np.ndarray:
    return (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
