"""Training of the MNIST CGNs with the paper's losses (class-conditional least-squares adversarial,
binary mask entropy, Gram-matrix style loss against real images) plus three priors of ours that use
how the datasets were made: the digit silhouettes for the shape IM, and each real image's own digit
mask for the texture and background IMs (TrainConfig says what each does; docs/mnist.md why)."""

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm import tqdm

from cgn.compose import compose
from cgn.mnist import datasets
from cgn.mnist.discriminators import LinearDiscriminator, discriminator
from cgn.mnist.losses import binary_entropy_loss, feature_network, style_loss
from cgn.mnist.model import MnistCGN, MnistCGNConfig
from cgn.mnist.sheet import save_grid

# The official per-dataset settings (REFERENCE.md): mask weight, style weights per block,
# discriminator, and initialisation.
PRESETS = {
    "colored": dict(mask_weight=0.1, style_weights=(0.05, 0.1, 0.01, 0.0), disc="linear", init="orthogonal", gain=0.1),
    "double-colored": dict(
        mask_weight=0.3, style_weights=(0.0, 0.05, 0.0, 0.05), disc="linear", init="orthogonal", gain=0.2
    ),
    "wildlife": dict(mask_weight=0.3, style_weights=(0.01, 0.05, 0.0, 0.01), disc="conv", init="normal", gain=0.03),
}
# Ours, not the paper's: shape warm-up steps (the shipped models' runs; docs/mnist.md).
WARMUP = {"colored": 2500, "double-colored": 2500, "wildlife": 2000}


@dataclass
class TrainConfig:
    dataset: str
    steps: int = 6000
    batch_size: int = 32
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    mask_weight: float = 0.1
    style_weights: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    disc: str = "linear"
    init: str = "orthogonal"
    gain: float = 0.1
    features: str = "random"
    # Shape prior: a class-conditional discriminator on the mask against the binarised training digits; without
    # it the class shows in color alone and a CPU budget leaves the masks blobs (docs/mnist.md).
    shape_prior: float = 1.0  # weight of the mask adversarial loss; 0 = the paper's losses only
    # Texture prior: the texture and background IMs composed under the real digit's own mask, judged against
    # that real image, so a class's colors are checked directly; the style loss compares the same pair.
    texture_prior: float = 1.0  # weight of its adversarial loss; 0 = style loss on the composite, as in the paper
    # Color prior: L1 between the mean colors of that pair inside the digit and outside it: moves a class off a
    # wrong color faster than the adversarial prior; texture is left to the adversarial and style losses.
    color_prior: float = 1.0
    color_by_class: bool = False  # match each class's distribution of mean colors, not image pairs
    # Contrast prior (off in the presets): L1 between the per-channel standard deviations of the same two
    # regions, to flatten blotched backgrounds (docs/results.md: no downstream gain).
    contrast_prior: float = 0.0
    # Shape warm-up: the first `shape_warmup` steps train the shape mechanism alone against the mask
    # discriminator (batch `warmup_batch`), where a step costs ~1/10 of a full one (docs/mnist.md).
    shape_warmup: int = 0
    warmup_batch: int = 64
    # Shape coverage (off by default): in each warm-up step, half a batch of real digits pull the nearest of
    # `imle_candidates` masks of their class toward them (IMLE, Li & Malik 2018; docs/mnist.md).
    shape_imle: float = 0.0
    imle_candidates: int = 8
    imle_all_steps: bool = False  # keep the IMLE term in the full steps too, not in the warm-up only
    # Polish (off by default): from a trained model's weights (`init_from`, safetensors), train only the texture
    # and background mechanisms on the non-adversarial losses; the masks stay bit for bit (docs/mnist.md).
    init_from: str | None = None
    polish: bool = False
    # "bf16": every step under bf16 autocast (weights, optimiser state and exports stay fp32); faster only on
    # CPUs with fast native bf16 (docs/mnist.md, benchmarks/cgn_train_precision.py).
    precision: str = "fp32"
    seed: int = 0
    sample_every: int = 500
    checkpoint_every: int = 1000
    max_minutes: float | None = 30.0
    threads: int | None = None
    mnist_dir: str | None = None
    texture_dir: str | None = None
    limit: int | None = None  # use only the first `limit` training digits (tests)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be one of fp32, bf16; got {self.precision!r}")

    @classmethod
    def preset(cls, dataset: str, **overrides) -> "TrainConfig":
        if dataset not in PRESETS:
            raise ValueError(f"dataset must be one of {', '.join(PRESETS)}; got {dataset!r}")
        return replace(cls(dataset=dataset, shape_warmup=WARMUP[dataset], **PRESETS[dataset]), **overrides)


def region_moments(x: Tensor, region: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image, per-channel mean and standard deviation over a (soft) region, in fp32."""
    x, region = x.float(), region.float()
    area = region.sum((2, 3)).clamp_min(1.0)
    mean = (x * region).sum((2, 3)) / area
    var = ((x - mean[..., None, None]).pow(2) * region).sum((2, 3)) / area
    return mean, (var + 1e-8).sqrt()


def sorted_within_class(values: Tensor, labels: Tensor) -> Tensor:
    """(N, C) values reordered so rows run class by class, ascending within a class, per channel."""
    key = values.detach() + 4 * labels[:, None].to(values.dtype)  # values lie in [-1, 1]
    return values.gather(0, key.argsort(0))


def color_loss(generated: Tensor, real: Tensor, digit: Tensor, moment: int = 0, labels: Tensor | None = None) -> Tensor:
    """L1 between per-image mean colors (moment 0) or their standard deviations (moment 1), inside
    the digit and outside it (both images share `digit`). With `labels` (the batch's, shared by
    both), the values are compared sorted within each class: a match of each class's distribution
    (1-D Wasserstein per channel), which keeps the data's spread where matching each generated image
    to its own real one pulls every image to the class median."""
    total = generated.new_zeros((), dtype=torch.float32)
    for region in (digit, 1 - digit):
        gen, ref = region_moments(generated, region)[moment], region_moments(real, region)[moment]
        if labels is not None:
            gen, ref = sorted_within_class(gen, labels), sorted_within_class(ref, labels)
        total = total + F.l1_loss(gen, ref)
    return total


def imle_loss(model: MnistCGN, digits: Tensor, labels: Tensor, candidates: int, gen: torch.Generator) -> Tensor:
    """Mean squared distance from each real digit to the nearest of `candidates` masks of its class
    (chosen without gradient, then generated again with it)."""
    n = len(labels)
    u = torch.randn(n, candidates, model.config.latent_size, generator=gen)
    with torch.no_grad():
        masks = model.mask_from(labels.repeat_interleave(candidates), u.flatten(0, 1))
        dist = (masks.reshape(n, candidates, -1) - digits.reshape(n, 1, -1)).pow(2).mean(2)
    return F.mse_loss(model.mask_from(labels, u[torch.arange(n), dist.argmin(1)]), digits)


def _to_gan(x: Tensor) -> Tensor:
    return x * 2 - 1


class Trainer:
    """Holds models, optimisers and data; `step()` is one generator + one discriminator update."""

    def __init__(self, cfg: TrainConfig, run_dir: Path):
        self.cfg = cfg
        self.run_dir = run_dir
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        texture_dir = Path(cfg.texture_dir) if cfg.texture_dir else None
        data = datasets.load(cfg.dataset, "train", cfg.mnist_dir, texture_dir, limit=cfg.limit)
        self.images, self.labels, self.digits = _to_gan(data.images), data.labels, data.digits
        self.model = MnistCGN(MnistCGNConfig(init_type=cfg.init, init_gain=cfg.gain))
        self.disc = discriminator(cfg.disc)
        self.mask_disc = LinearDiscriminator(channels=1)
        self.opt_m = torch.optim.Adam(self.mask_disc.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.texture_disc = discriminator(cfg.disc)
        self.opt_t = torch.optim.Adam(self.texture_disc.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.features = feature_network(cfg.features)
        if cfg.init_from:
            self.model.load_state_dict(load_file(cfg.init_from))
        trained = [self.model.texture_im, self.model.background_im] if cfg.polish else [self.model]
        self.opt_g = torch.optim.Adam([p for m in trained for p in m.parameters()], lr=cfg.lr, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.step_no = 0
        self.seconds = 0.0

    def textures(self, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Noise u (and shuffle offsets) drawn for labels y; returns u, foreground, background."""
        n = len(y)
        u = torch.randn(n, self.model.config.latent_size, generator=self.gen)
        off_f = torch.randint(0, self.model.image_size + 1, (n, 2), generator=self.gen)
        off_b = torch.randint(0, self.model.image_size + 1, (n, 2), generator=self.gen)
        return u, self.model.texture_from(y, u, off_f), self.model.background_from(y, u, off_b)

    def sample_fakes(self, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Fakes for labels y with noise from the trainer's generator: composite, mask, foreground, background."""
        u, fg, bg = self.textures(y)
        mask = self.model.mask_from(y, u)
        return compose(mask, fg, bg), mask, fg, bg

    def step(self) -> dict[str, float]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
            if self.cfg.polish:
                return self.polish_step()
            if self.step_no < self.cfg.shape_warmup and self.cfg.shape_prior:
                return self.shape_step()
            return self.full_step()

    def shape_step(self) -> dict[str, float]:
        """One update of the shape mechanism and the mask discriminator only."""
        cfg, n = self.cfg, self.cfg.warmup_batch
        idx = torch.randint(0, len(self.labels), (n,), generator=self.gen)
        y_gen = torch.randint(0, 10, (n,), generator=self.gen)
        self.model.train()
        self.opt_g.zero_grad(set_to_none=True)
        mask = self.model.mask_from(y_gen, torch.randn(n, self.model.config.latent_size, generator=self.gen))
        losses = {
            "shape_prior": cfg.shape_prior * F.mse_loss(self.mask_disc(mask, y_gen), torch.ones(n)),
            "binary": cfg.mask_weight * binary_entropy_loss(mask),
        }
        if cfg.shape_imle:
            losses["imle"] = self.imle_term(self.digits[idx], self.labels[idx])
        sum(losses.values()).backward()
        self.opt_g.step()
        m_real, m_fake = self._update_disc(self.mask_disc, self.opt_m, self.digits[idx], self.labels[idx], mask, y_gen)
        self.step_no += 1
        return {k: v.item() for k, v in losses.items()} | {"m_real": m_real, "m_fake": m_fake}

    def color_terms(self, x_tex: Tensor, x_real: Tensor, digit: Tensor, y: Tensor) -> dict[str, Tensor]:
        """The weighted color and contrast priors that are on: generated textures under the real
        digits' masks against those real images."""
        cfg, terms = self.cfg, {}
        if cfg.color_prior:
            by_class = y if cfg.color_by_class else None
            terms["color_prior"] = cfg.color_prior * color_loss(x_tex, x_real, digit, labels=by_class)
        if cfg.contrast_prior:
            terms["contrast_prior"] = cfg.contrast_prior * color_loss(x_tex, x_real, digit, moment=1)
        return terms

    def polish_step(self) -> dict[str, float]:
        """One update of the texture and background mechanisms on the non-adversarial losses."""
        cfg = self.cfg
        idx = torch.randint(0, len(self.labels), (cfg.batch_size,), generator=self.gen)
        x_real, y, digit = self.images[idx], self.labels[idx], self.digits[idx]
        self.model.train()
        self.opt_g.zero_grad(set_to_none=True)
        _, fg, bg = self.textures(y)
        x_tex = compose(digit, fg, bg)
        losses = {"style": style_loss(self.features, x_tex, x_real, list(cfg.style_weights))}
        losses |= self.color_terms(x_tex, x_real, digit, y)
        sum(losses.values()).backward()
        self.opt_g.step()
        self.step_no += 1
        return {k: v.item() for k, v in losses.items()}

    def imle_term(self, digits: Tensor, labels: Tensor) -> Tensor:
        """The weighted IMLE loss on the first half of a real batch (the warm-up's, and with
        imle_all_steps the full steps')."""
        half = max(1, len(labels) // 2)
        imle = imle_loss(self.model, digits[:half], labels[:half], self.cfg.imle_candidates, self.gen)
        return self.cfg.shape_imle * imle

    def full_step(self) -> dict[str, float]:
        cfg = self.cfg
        idx = torch.randint(0, len(self.labels), (cfg.batch_size,), generator=self.gen)
        x_real, y, digit = self.images[idx], self.labels[idx], self.digits[idx]
        ones = torch.ones(cfg.batch_size)

        # The generated batch takes the real batch's labels, so that its textures can be composed
        # under the real digits' masks and compared with those very images.
        self.model.train()
        self.opt_g.zero_grad(set_to_none=True)
        x_gen, mask, fg, bg = self.sample_fakes(y)
        x_tex = compose(digit, fg, bg)
        losses = {
            "adv": F.mse_loss(self.disc(x_gen, y), ones),
            "binary": cfg.mask_weight * binary_entropy_loss(mask),
            "style": style_loss(self.features, x_tex if cfg.texture_prior else x_gen, x_real, list(cfg.style_weights)),
        }
        if cfg.shape_prior:
            losses["shape_prior"] = cfg.shape_prior * F.mse_loss(self.mask_disc(mask, y), ones)
        if cfg.texture_prior:
            losses["texture_prior"] = cfg.texture_prior * F.mse_loss(self.texture_disc(x_tex, y), ones)
        losses |= self.color_terms(x_tex, x_real, digit, y)
        if cfg.shape_imle and cfg.imle_all_steps:
            losses["imle"] = self.imle_term(digit, y)
        sum(losses.values()).backward()
        self.opt_g.step()

        d_real, d_fake = self._update_disc(self.disc, self.opt_d, x_real, y, x_gen, y)
        stats = {k: v.item() for k, v in losses.items()} | {"d_real": d_real, "d_fake": d_fake}
        if cfg.shape_prior:
            self._update_disc(self.mask_disc, self.opt_m, digit, y, mask, y)
        if cfg.texture_prior:
            stats["t_real"], stats["t_fake"] = self._update_disc(self.texture_disc, self.opt_t, x_real, y, x_tex, y)
        self.step_no += 1
        return stats

    @staticmethod
    def _update_disc(disc, opt, real: Tensor, y_real: Tensor, fake: Tensor, y_fake: Tensor) -> tuple[float, float]:
        """One least-squares discriminator step: `real` labelled 1, `fake` 0."""
        opt.zero_grad(set_to_none=True)
        d_real = F.mse_loss(disc(real, y_real), torch.ones(len(y_real)))
        d_fake = F.mse_loss(disc(fake.detach(), y_fake), torch.zeros(len(y_fake)))
        ((d_real + d_fake) / 2).backward()
        opt.step()
        return d_real.item(), d_fake.item()

    # checkpoints: weights as safetensors, optimiser/RNG state loaded with weights_only=True
    def save_checkpoint(self) -> Path:
        path = self.run_dir / "checkpoint"
        path.mkdir(parents=True, exist_ok=True)
        save_file(self.model.state_dict(), path / "model.safetensors")
        save_file(self.disc.state_dict(), path / "discriminator.safetensors")
        save_file(self.mask_disc.state_dict(), path / "mask_discriminator.safetensors")
        save_file(self.texture_disc.state_dict(), path / "texture_discriminator.safetensors")
        state = {
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "opt_m": self.opt_m.state_dict(),
            "opt_t": self.opt_t.state_dict(),
            "step": self.step_no,
            "seconds": self.seconds,
            "rng": self.gen.get_state(),
        }
        torch.save(state, path / "state.pt.tmp")
        (path / "state.pt.tmp").replace(path / "state.pt")
        (path / "config.json").write_text(json.dumps(asdict(self.cfg), indent=2))
        return path

    def load_checkpoint(self) -> bool:
        path = self.run_dir / "checkpoint"
        if not (path / "state.pt").is_file():
            return False
        self.model.load_state_dict(load_file(path / "model.safetensors"))
        self.disc.load_state_dict(load_file(path / "discriminator.safetensors"))
        self.mask_disc.load_state_dict(load_file(path / "mask_discriminator.safetensors"))
        self.texture_disc.load_state_dict(load_file(path / "texture_discriminator.safetensors"))
        state = torch.load(path / "state.pt", weights_only=True)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.opt_m.load_state_dict(state["opt_m"])
        self.opt_t.load_state_dict(state["opt_t"])
        self.step_no, self.seconds = state["step"], state["seconds"]
        self.gen.set_state(state["rng"])
        return True

    def sample_sheet(self, path: Path) -> None:
        """Rows: composites, masks, foregrounds, backgrounds; one column per class, fixed seeds."""
        self.model.eval()
        labels, seeds = list(range(10)), list(range(10))
        mask = self.model.shape(labels, seeds)["mask"]
        fg = self.model.texture(labels, seeds)
        bg = self.model.background(labels, seeds)
        save_grid([compose(mask, fg, bg), mask.expand(-1, 3, -1, -1), fg, bg], path)
        self.model.train()


def train(cfg: TrainConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> Trainer:
    """Train until cfg.steps or cfg.max_minutes; checkpoints and sample sheets go to run_dir."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    trainer = Trainer(cfg, run_dir)
    if resume and trainer.load_checkpoint():
        print(f"resumed at step {trainer.step_no}")
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=cfg.steps, initial=trainer.step_no, disable=not progress, mininterval=5)
    start = time.monotonic() - trainer.seconds
    budget = None if cfg.max_minutes is None else cfg.max_minutes * 60
    while trainer.step_no < cfg.steps and (budget is None or trainer.seconds <= budget):
        stats = trainer.step()
        trainer.seconds = time.monotonic() - start
        bar.update(1)
        if trainer.step_no % 50 == 0:
            bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()}, refresh=False)
        if trainer.step_no % cfg.sample_every == 0:
            trainer.sample_sheet(run_dir / "samples" / f"step_{trainer.step_no:06d}.png")
        if trainer.step_no % cfg.checkpoint_every == 0:
            trainer.save_checkpoint()
    bar.close()
    if budget is not None and trainer.seconds > budget:
        print(f"time budget of {cfg.max_minutes} min reached at step {trainer.step_no}")
    trainer.save_checkpoint()
    trainer.sample_sheet(run_dir / "samples" / "final.png")
    return trainer
