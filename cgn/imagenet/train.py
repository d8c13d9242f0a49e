"""Training the ImageNet CGN (paper section 3): `cgn train imagenet`.

Each step draws classes and noise, runs the pseudo ground truth BigGAN (frozen) and the three IMs, composes,
and minimises: L1 + perceptual (composite vs ground truth), binary entropy and mask interval (mask), texture
(foreground vs a mosaic of ground-truth patches where the mask is high) and background (U2-Net saliency of
the background). Per-mechanism Adam learning rates; gradients accumulate over `batch_acc` batches per step.
Checkpoints are store-format directories (with the ground truth, for resuming); `--export` registers the
inference model (without it). Without pretrained BigGAN / U2-Net / CGN weights (`--init`, `--biggan`,
`--u2net`) training starts from random weights: only useful for tests (`--tiny`).
"""

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from cgn.compose import compose
from cgn.imagenet import losses as L
from cgn.imagenet.model import ImagenetCGN, ImagenetCGNConfig, from_official_state_dict
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

    def checkpoint(self, run_dir: Path) -> Path:
        from model_store.official import imagenet_manifest
        from model_store.store import save_model

        config = self.model.config.to_dict()
        manifest = imagenet_manifest(f"step-{self.step_count:07d}", config, {}, "ImageNet CGN training checkpoint")
        manifest.training = {"step": self.step_count, "config": asdict(self.cfg)}
        return save_model(run_dir / "checkpoints", manifest, self.model.state_dict())


def build_model(args: argparse.Namespace) -> ImagenetCGN:
    """From an official cgn.pth, or pretrained BigGAN + U2-Net files, or random (tiny) weights."""
    base = ImagenetCGNConfig.tiny() if args.tiny else ImagenetCGNConfig()
    if args.init:
        from model_store.official import read_checkpoint

        state = read_checkpoint(args.init)
        if not any(k.removeprefix("module.").startswith("biggan_GT.") for k in state):
            raise ValueError("--init: the checkpoint has no biggan_GT (pseudo ground truth) to train against")
        config, ours = from_official_state_dict(state, keep_ground_truth=True, truncation=args.truncation)
        model = ImagenetCGN(config)
        model.load_state_dict(ours, strict=True)
        return model
    config = ImagenetCGNConfig(**{**base.to_dict(), "truncation": args.truncation, "ground_truth": True})
    model = ImagenetCGN(config).init_random_(args.seed)
    if args.biggan:  # all four generators start from pretrained BigGAN, as in the paper
        from model_store.official import read_checkpoint

        state = read_checkpoint(args.biggan)
        for part in ("f_shape", "f_text", "f_bg", "biggan_GT"):
            getattr(model, part).load_state_dict(state, strict=True)
    if args.u2net:
        from model_store.official import read_checkpoint

        model.u2net.load_state_dict(read_checkpoint(args.u2net), strict=True)
    return model


def add_imagenet_parser(subparsers) -> argparse.ArgumentParser:
    """`cgn train imagenet ...` (the lead wires this under cgn_cli/train.py)."""
    p = subparsers.add_parser("imagenet", help="train the ImageNet CGN (needs pretrained BigGAN/U2-Net or cgn.pth)")
    d = TrainConfig()
    p.add_argument("--run-dir", type=Path, required=True, help="checkpoints, sample sheets and losses.jsonl go here")
    p.add_argument("--init", type=Path, help="official cgn.pth to start from (includes biggan_GT)")
    p.add_argument("--biggan", type=Path, help="pretrained biggan-deep-256 weights for all four generators")
    p.add_argument("--u2net", type=Path, help="pretrained u2net.pth")
    p.add_argument("--vgg16", type=Path, help="torchvision VGG16 weights for the perceptual loss (else random filters)")
    p.add_argument("--tiny", action="store_true", help="the tiny test configuration (64 px, width 8)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--batch-acc", type=int, default=d.batch_acc)
    p.add_argument("--truncation", type=float, default=d.truncation)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--sample-every", type=int, default=d.sample_every)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--export", metavar="NAME", help="register the final inference model under this name")
    p.add_argument("--store", type=Path, help="model-store root for --export (default: $CGN_MODEL_STORE)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        batch_acc=args.batch_acc,
        truncation=args.truncation,
        seed=args.seed,
        sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every,
        feature_divisor=8 if args.tiny else 1,
    )
    torch.manual_seed(args.seed)
    model = build_model(args)
    features = L.FeatureNet(cfg.feature_divisor, seed=cfg.seed)
    if args.vgg16:
        from model_store.official import read_checkpoint

        features.load_vgg16(read_checkpoint(args.vgg16))
    trainer = Trainer(model, cfg, args.device, features)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    log = (args.run_dir / "losses.jsonl").open("a")
    t0 = time.perf_counter()
    for _ in range(cfg.steps):
        values = trainer.step()
        s = trainer.step_count
        log.write(json.dumps({"step": s, "seconds": round(time.perf_counter() - t0, 2), **values}) + "\n")
        log.flush()
        print(f"step {s}: " + " ".join(f"{k} {v:.3f}" for k, v in values.items()), flush=True)
        if s % cfg.sample_every == 0 or s == cfg.steps:
            trainer.sample_sheet(args.run_dir / "samples" / f"step-{s:07d}.png")
        if s % cfg.checkpoint_every == 0 or s == cfg.steps:
            trainer.checkpoint(args.run_dir)
    log.close()
    if args.export:
        export(model, args.export, args.store, {"steps": cfg.steps, "seconds": round(time.perf_counter() - t0, 1)})
    return 0


def export(model: ImagenetCGN, name: str, store: Path | None, training: dict) -> Path:
    """Register the inference model (no pseudo ground truth) in the store."""
    from model_store.official import imagenet_manifest
    from model_store.store import save_model

    if store is None:
        from service.settings import Settings

        store = Settings().model_store
        if store is None:
            raise ValueError("--store: no model store root given and CGN_MODEL_STORE is not set")
    config = {**model.config.to_dict(), "ground_truth": False}
    manifest = imagenet_manifest(name, config, {}, "ImageNet CGN trained with cgn train imagenet")
    manifest.training = training
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("biggan_GT.")}
    return save_model(store, manifest, state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cgn train")
    add_imagenet_parser(parser.add_subparsers(dest="dataset", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
