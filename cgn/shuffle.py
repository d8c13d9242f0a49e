"""The texture bias of the MNIST CGN: tile a 2x2 copy of the image and cut a window out of it.

Cropping the tiled image at offset d equals rolling the image by d (mod size): the window's
content is a shuffled sliding puzzle of the original, so the texture IMs cannot learn shapes.
"""

import torch
from torch import Tensor


def patch_shuffle(x: Tensor, offsets: Tensor) -> Tensor:
    """Crop each image of the 2x2-tiled batch at its own (row, column) offset in [0, size]."""
    n, c, h, w = x.shape
    rows = (offsets[:, 0:1].to(x.device) + torch.arange(h, device=x.device)) % h
    cols = (offsets[:, 1:2].to(x.device) + torch.arange(w, device=x.device)) % w
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return x[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
