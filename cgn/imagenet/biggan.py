"""BigGAN-deep generators from `pytorch-pretrained-biggan`, configured by resolution and width.

The package's `BigGANConfig()` defaults to the 128 px model: every config here is built explicitly.
At 256 px and width 128 it is the deep-256 model of the official CGN (12 blocks, attention at 64 px).
"""

import torch
from pytorch_pretrained_biggan import BigGAN, BigGANConfig
from torch import nn

# Channel multipliers (in -> out) of the up-sampling stages of BigGAN-deep-256, from 4x4 up.
_STAGES_256 = [(16, 16), (16, 8), (8, 8), (8, 4), (4, 2), (2, 1)]
_STAGES_OTHER = [(16, 16), (16, 8), (8, 4), (4, 2), (2, 1)]  # the 128/64 px layout


def biggan_config(image_size: int = 256, channel_width: int = 128, num_classes: int = 1000) -> BigGANConfig:
    """deep-256 at the defaults; smaller sizes keep the last stages (tiny test models: 64 px, width 8)."""
    stages_needed = (image_size // 4).bit_length() - 1
    if 4 * 2**stages_needed != image_size or stages_needed < 2:
        raise ValueError(f"image_size must be 4 * 2**k with k >= 2, got {image_size}")
    table = _STAGES_256 if image_size == 256 else _STAGES_OTHER
    if stages_needed > len(table):
        raise ValueError(f"image_size {image_size} is larger than BigGAN-deep-256")
    stages = table[-stages_needed:]
    layers = []
    for cin, cout in stages:  # each stage: a block at the same size, then an up-sampling block
        layers += [(False, cin, cin), (True, cin, cout)]
    attention = 8 if image_size == 256 else 2 * (stages_needed - 1)  # at 64 px for 256, one stage up otherwise
    return BigGANConfig(
        output_dim=image_size,
        z_dim=128,
        class_embed_dim=128,
        channel_width=channel_width,
        num_classes=num_classes,
        layers=layers,
        attention_layer_position=attention,
        eps=1e-4,
        n_stats=51,
    )


def build_biggan(image_size: int, channel_width: int, num_classes: int = 1000) -> BigGAN:
    return BigGAN(biggan_config(image_size, channel_width, num_classes))


def _spectral_norms(model: nn.Module):
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if type(hook).__name__ == "SpectralNorm":
                yield module, hook


@torch.no_grad()
def init_random_(model: BigGAN, generator: torch.Generator, std: float = 0.02, power_iterations: int = 10) -> BigGAN:
    """Random weights that give finite images in eval mode.

    A fresh model has random spectral-norm vectors (so its eval-mode sigma is a random dot product,
    and images come out NaN) and an uninitialised `generator.bn`: both are set here.
    """
    for name, p in model.named_parameters():
        if name.endswith("gamma"):
            p.fill_(0.1)  # self-attention gain: small but not zero, so attention is exercised
        elif name.startswith("generator.bn."):
            p.fill_(1.0 if name.endswith("weight") else 0.0)
        elif p.dim() >= 2:
            p.normal_(0.0, std, generator=generator)
        else:
            p.zero_()
    for module, sn in _spectral_norms(model):
        weight = sn.reshape_weight_to_matrix(getattr(module, sn.name + "_orig"))
        u, v = getattr(module, sn.name + "_u"), getattr(module, sn.name + "_v")
        u.normal_(generator=generator)
        for _ in range(power_iterations):
            v.copy_(nn.functional.normalize(weight.t() @ u, dim=0, eps=sn.eps))
            u.copy_(nn.functional.normalize(weight @ v, dim=0, eps=sn.eps))
    return model


@torch.no_grad()
def fold_spectral_norm_(model: nn.Module) -> nn.Module:
    """Replace each spectral-normalised weight by its eval-mode value (weight / sigma): inference only.

    Saves the per-forward sigma computation (two matrix-vector products per layer); the weights are the
    ones the eval-mode hook would compute, so outputs do not change. The state dict layout does.
    """
    for module, sn in list(_spectral_norms(model)):
        nn.utils.remove_spectral_norm(module, sn.name)
    return model
