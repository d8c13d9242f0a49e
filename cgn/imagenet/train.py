"""Training the ImageNet CGN (paper section 3); the command is `cgn train imagenet` (cgn_cli/train_imagenet.py).

Each step draws classes and noise, runs the pseudo ground truth BigGAN (frozen) and the three IMs, composes,
and minimises: L1 + perceptual (composite vs ground truth), binary entropy and mask interval (mask), texture
(foreground vs a mosaic of ground-truth patches where the mask is high) and background (U2-Net saliency of
the background). Per-mechanism Adam learning rates; gradients accumulate over `batch_acc` batches per step.
The model a run starts from, its checkpoints and its export live in model_store/imagenet.py.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from cgn.compose import compose
from cgn.imagenet import losses as L
from cgn.imagenet.model import ImagenetCGN
from cgn.imagenet.sheets import grid, save_png

SHEET_CLASSES = [15, 251, 330, 382, 385, 483, 559, 751, 938, 947, 999]  # the official sample-sheet classes
MECHANISM_PARTS = {"shape": "f_shape", "texture": "f_text", "background": "f_bg"}


@dataclass
class TrainConfig:
    """Defaults are the official configuration (batch 256 x 8 accumulated, 50 episodes)."""

    steps: int = 50
    batch_size: int = 256
    batch_acc: int = 8
    truncation: float = 1.0  # the official training truncation
    l1: float = 100.0
    perceptual: list[float] = field(default_factory=lambda: [4.0, 4.0, 4.0, 4.0])
    binary: float = 300.0
    mask_interval: float = 500.0
    texture: list[float] = field(default_factory=lambda: [0.0, 5.0, 5.0, 0.0])
    background: float = 2000.0
    lr_shape: float = 8e-6
    lr_texture: float = 3e-5
    lr_background: float = 1e-5
    patch_size: int = 15  # at the official 128 px working resolution; scaled with the image size
    patch_grid: int = 6
    patch_top: int = 100
    seed: int = 0
    fixed_batch: bool = False  # reuse one batch of classes and noise every step (tests, debugging)
    feature_divisor: int = 1  # width divisor of the VGG16-shaped feature net
    sample_every: int = 10
    checkpoint_every: int = 10


class Trainer:
    def __init__(
        self,
        model: ImagenetCGN,
        cfg: TrainConfig,
        device: str | torch.device = "cpu",
        features: L.FeatureNet | None = None,
    ):
        if not hasattr(model, "biggan_GT"):
            raise ValueError("training needs the pseudo ground truth: build the model with ground_truth=True")
        self.model = model.to(device).train()
        self.cfg = cfg
        self.device = torch.device(device)
        model.u2net.requires_grad_(False)
        model.biggan_GT.requires_grad_(False)
        self.features = (features or L.FeatureNet(cfg.feature_divisor, seed=cfg.seed)).to(device)
        lrs = {"shape": cfg.lr_shape, "texture": cfg.lr_texture, "background": cfg.lr_background}
        self.optimizers = {
            m: torch.optim.Adam(getattr(model, part).parameters(), lr=lrs[m], betas=(0.9, 0.999))
            for m, part in MECHANISM_PARTS.items()
        }
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.step_count = 0
        self._fixed: tuple[Tensor, Tensor] | None = None
        size = model.image_size
        self.patch = max(3, round(cfg.patch_size * size / 256))

    def batch(self) -> tuple[Tensor, Tensor]:
        """Classes (one per sample, the same for all IMs, as the official trainer) and truncated noise."""
        if self.cfg.fixed_batch and self._fixed is not None:
            return self._fixed
        n = self.cfg.batch_size
        y = torch.randint(self.model.num_classes, (n,), generator=self.generator)
        seeds = torch.randint(2**62, (n,), generator=self.generator).tolist()
        out = (y, self.model.noise(seeds))
        if self.cfg.fixed_batch:
            self._fixed = out
        return out

    def losses(self, y: Tensor, u: Tensor) -> dict[str, Tensor]:
        m, cfg = self.model, self.cfg
        y_vec, u = m.one_hot(y), u.to(self.device)
        with torch.no_grad():
            x_gt = m.ground_truth_from(u, y_vec)
        premask = m.premask_from(u, y_vec)
        mask = m.mask_from(premask)
        foreground = m.texture_from(u, y_vec)
        background = m.background_from(u, y_vec)
        x_gen = compose(mask, foreground, background)
        mosaic = L.patch_grid(x_gt, mask.detach(), self.patch, cfg.patch_grid, cfg.patch_top, self.generator)
        return {
            "l1": cfg.l1 * (x_gen - x_gt).abs().mean(),
            "perceptual": L.perceptual(self.features, x_gen, x_gt, cfg.perceptual),
            "binary": cfg.binary * L.binary_entropy(mask),
            "mask_interval": cfg.mask_interval * L.mask_interval(mask),
            "texture": L.perceptual(self.features, foreground, mosaic, cfg.texture),
            "background": cfg.background * L.background_saliency(m.u2net(background)),
        }

    def step(self) -> dict[str, float]:
        """One optimiser step of each mechanism over `batch_acc` accumulated batches; returns mean losses."""
        totals: dict[str, float] = {}
        for _ in range(self.cfg.batch_acc):
            parts = self.losses(*self.batch())
            total = sum(parts.values())
            (total / self.cfg.batch_acc).backward()
            for k, v in {**parts, "total": total}.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) / self.cfg.batch_acc
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        self.step_count += 1
        return totals

    @torch.no_grad()
    def sample_sheet(self, path: Path, seed: int = 0) -> Path:
        """Rows: official sheet classes; columns: premask, mask, foreground, background, composite, ground truth."""
        m = self.model
        was_training = m.training
        m.eval()
        classes = [c for c in SHEET_CLASSES if c < m.num_classes]
        u = m.noise([seed]).to(self.device).expand(len(classes), -1)
        y_vec = m.one_hot(torch.tensor(classes))
        premask = m.premask_from(u, y_vec)
        mask = m.mask_from(premask)
        fg, bg = m.texture_from(u, y_vec), m.background_from(u, y_vec)
        cols = [
            premask,
            mask.expand(-1, 3, -1, -1) * 2 - 1,
            fg,
            bg,
            compose(mask, fg, bg),
            m.ground_truth_from(u, y_vec),
        ]
        images = torch.stack([(c.float().cpu() + 1) / 2 for c in cols], 1).flatten(0, 1)
        m.train(was_training)
        return save_png(grid(images, len(cols)), path)
