"""Image grids as PNG files (sample sheets during training, interpolation sheets)."""

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from cgn.pipeline import to_uint8


def grid(images: Tensor, columns: int, pad: int = 2) -> Tensor:
    """(n, C, H, W) images in [0, 1] -> one (3, H', W') image, row-major, white padding."""
    images = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    n, c, h, w = images.shape
    rows = -(-n // columns)
    out = torch.ones(c, rows * (h + pad) + pad, columns * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, columns)
        out[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = (
            images[i]
        )
    return out


def save_png(image: Tensor, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image[None])[0].permute(1, 2, 0).numpy()).save(path, format="PNG")
    return path
