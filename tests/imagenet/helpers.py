"""Random-weight ImageNet CGNs for tests: tiny ones in our store format and official `cgn.pth` files."""

from pathlib import Path

import torch

from cgn.imagenet.model import ImagenetCGN, ImagenetCGNConfig, to_official_state_dict


def tiny_model(seed: int = 0, **config) -> ImagenetCGN:
    return ImagenetCGN(ImagenetCGNConfig.tiny(**config)).init_random_(seed).eval()


def write_official_checkpoint(path: Path, model: ImagenetCGN, module_prefix: bool = False) -> Path:
    """Save in the official key layout (f_shape., f_text., f_bg., biggan_GT., u2net.) with torch.save."""
    state = to_official_state_dict(model)
    if not hasattr(model, "biggan_GT"):  # the pseudo ground truth starts as a copy of BigGAN, as officially
        state |= {f"biggan_GT.{k[len('f_shape.') :]}": v for k, v in state.items() if k.startswith("f_shape.")}
    if module_prefix:  # as saved from nn.DataParallel
        state = {f"module.{k}": v for k, v in state.items()}
    torch.save(state, path)
    return path
