"""The ImageNet CGN's training in and out of the store: the model a run starts from, its checkpoints, its export.

A run starts from an official cgn.pth (which includes the pseudo ground truth), or from pretrained BigGAN and
U2-Net files, or from random (tiny) weights. Checkpoints are store-format directories that keep the pseudo
ground truth (for resuming); the exported inference model leaves it out.
"""

from pathlib import Path

from cgn.imagenet.model import ImagenetCGN, ImagenetCGNConfig, from_official_state_dict
from model_store.official import imagenet_manifest, read_checkpoint
from model_store.store import save_model


def training_model(
    init: Path | None = None,
    biggan: Path | None = None,
    u2net: Path | None = None,
    tiny: bool = False,
    truncation: float = 1.0,
    seed: int = 0,
) -> ImagenetCGN:
    """From an official cgn.pth (`init`), or pretrained BigGAN + U2-Net files, or random (tiny) weights."""
    base = ImagenetCGNConfig.tiny() if tiny else ImagenetCGNConfig()
    if init:
        state = read_checkpoint(init)
        if not any(k.removeprefix("module.").startswith("biggan_GT.") for k in state):
            raise ValueError("--init: the checkpoint has no biggan_GT (pseudo ground truth) to train against")
        config, ours = from_official_state_dict(state, keep_ground_truth=True, truncation=truncation)
        model = ImagenetCGN(config)
        model.load_state_dict(ours, strict=True)
        return model
    config = ImagenetCGNConfig(**{**base.to_dict(), "truncation": truncation, "ground_truth": True})
    model = ImagenetCGN(config).init_random_(seed)
    if biggan:  # all four generators start from pretrained BigGAN, as in the paper
        state = read_checkpoint(biggan)
        for part in ("f_shape", "f_text", "f_bg", "biggan_GT"):
            getattr(model, part).load_state_dict(state, strict=True)
    if u2net:
        model.u2net.load_state_dict(read_checkpoint(u2net), strict=True)
    return model


def save_checkpoint(model: ImagenetCGN, step: int, config: dict, run_dir: Path) -> Path:
    """run_dir/checkpoints/step-NNNNNNN: the whole model (with the pseudo ground truth) and the training config."""
    manifest = imagenet_manifest(f"step-{step:07d}", model.config.to_dict(), {}, "ImageNet CGN training checkpoint")
    manifest.training = {"step": step, "config": config}
    return save_model(run_dir / "checkpoints", manifest, model.state_dict())


def export(model: ImagenetCGN, name: str, root: Path, training: dict) -> Path:
    """Register the inference model (no pseudo ground truth) under root/name."""
    config = {**model.config.to_dict(), "ground_truth": False}
    manifest = imagenet_manifest(name, config, {}, "ImageNet CGN trained with cgn train imagenet")
    manifest.training = training
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("biggan_GT.")}
    return save_model(root, manifest, state)
