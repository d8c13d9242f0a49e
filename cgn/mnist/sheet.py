"""PNG sheets of image rows (training samples, `cgn sample` grids)."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def save_grid(rows: list[Tensor], path: Path, scale: int = 2, pad: int = 2) -> None:
    """Each row: (n, 3, H, W) in [0, 1] (or [-1, 1] if it has negatives); written as one PNG."""
    images = []
    for row in rows:
        row = row.detach().float().cpu()
        if row.min() < 0:
            row = (row + 1) / 2
        if row.shape[1] == 1:
            row = row.expand(-1, 3, -1, -1)
        row = torch.nn.functional.pad(row.clamp(0, 1), (pad, pad, pad, pad), value=1.0)
        images.append(torch.cat(list(row), dim=2))
    grid = torch.cat(images, dim=1)
    array = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    image = Image.fromarray(array)
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
