"""PNG sheets of image rows (training samples, `cgn sample` grids)."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from cgn.pipeline import to_uint8


def save_grid(rows: list[Tensor | np.ndarray], path: Path, scale: int = 2, pad: int = 2) -> None:
    """Each row: (n, C, H, W) uint8, as cgn.pipeline.generate returns, or floats in [0, 1] (or [-1, 1]
    if it has negatives), rounded as the pipeline rounds; 1-channel rows turn grey. Written as one PNG."""
    images = []
    for row in rows:
        row = torch.as_tensor(row).detach().cpu()
        if row.dtype != torch.uint8:
            row = row.float()
            row = to_uint8((row + 1) / 2 if row.min() < 0 else row)
        if row.shape[1] == 1:
            row = row.expand(-1, 3, -1, -1)
        row = torch.nn.functional.pad(row, (pad, pad, pad, pad), value=255)
        images.append(torch.cat(list(row), dim=2))
    grid = torch.cat(images, dim=1)
    image = Image.fromarray(grid.permute(1, 2, 0).contiguous().numpy())
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
