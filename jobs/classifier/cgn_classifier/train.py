"""Training and evaluation of the invariant ensemble on real images mixed with counterfactuals.

Default recipe: Adam with decoupled weight decay 0.05 (AdamW; peak lr 4e-3) and a one-cycle schedule,
batch 32, real and generated samples shuffled together, each training image rotated, scaled and
shifted a little (augment.py says why).
The paper's recipe (Adadelta lr 1.0, x0.7 per epoch, batch 64: `optimizer="adadelta"`) is meant for
~1M images (10 epochs of 100k); on a CPU budget of ~100k images it ends 9 points behind Adam with
one cycle (docs/results.md).
Accuracy per head is measured against the label of the head's own mechanism; the shape head
against the digit is the number Table 1 reports.
"""

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from cgn_classifier.augment import AUGMENTS, random_affine
from cgn_classifier.data import Counterfactuals, Split
from cgn_classifier.model import HEADS, InvariantEnsemble, check_heads

OPTIMIZERS = ("adam", "adadelta")
DEFAULT_LR = {"adam": 4e-3, "adadelta": 1.0}
# Decoupled weight decay for adam (AdamW): +0.9 points on double-colored (docs/results.md);
# the paper's Adadelta recipe had none.
DEFAULT_WEIGHT_DECAY = {"adam": 0.05, "adadelta": 0.0}
PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions natively here (AVX512-BF16 or AMX); elsewhere it emulates
    them and bf16 is slower than fp32."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def step_seconds(
    batch_size: int, steps: int, rounds: int, precisions: tuple[str, ...] = ("fp32", "bf16")
) -> dict[str, list[float]]:
    """Seconds per `steps` training steps of each precision, per round, on one random batch.

    The precisions alternate within every round, so a busy machine slows them alike; an unmeasured
    first round warms each up (oneDNN picks its kernels on first use).
    """
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (batch_size, 3), generator=g)
    with torch.random.fork_rng():
        model = InvariantEnsemble().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seconds: dict[str, list[float]] = {p: [] for p in precisions}
    for r in range(rounds + 1):
        for precision, times in seconds.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                train_step(model, opt, x, y, precision)
            if r:
                times.append(time.perf_counter() - t0)
    return seconds


def faster_precision(batch_size: int) -> str:
    """The precision "auto" picks: bf16 autocast only where it measures faster than fp32, here.

    Native bf16 is not enough: an AMD EPYC with AVX512-BF16 runs the classifier step 1.85x faster in
    bf16, an Intel Xeon with AVX512-BF16 and no AMX 1.37x slower (docs/benchmarks.md).
    Measured once per process, batch size and thread count (~1.5 s on an idle core).
    """
    return _faster_precision(batch_size, torch.get_num_threads())


@lru_cache
def _faster_precision(batch_size: int, threads: int) -> str:
    if not native_bf16():
        return "fp32"
    seconds = step_seconds(batch_size, steps=6, rounds=3)
    return min(seconds, key=lambda p: statistics.median(seconds[p]))


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 32
    lr: float | None = None  # None: DEFAULT_LR of the optimizer
    gamma: float = 0.7  # per-epoch decay of "adadelta" (step schedule); "adam" runs one cycle
    seed: int = 0
    heads: tuple[str, ...] = HEADS
    eval_batch_size: int = 1000
    optimizer: str = "adam"
    aux_grad: float = 0.1  # gradient scale from the texture/background heads into the backbone
    precision: str = "auto"  # bf16 autocast (fp32 weights) where it measures faster here, else fp32
    augment: str = "affine"  # random rotation/scale/shift of every training image; "none": as they come
    eval_every: int = 1  # test-set evaluation every N epochs and after the last; 0: after the last only
    weight_decay: float | None = None  # None: DEFAULT_WEIGHT_DECAY of the optimizer
    input_affine: bool = True  # the input BatchNorm learns a scale and shift (model.py says why)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}; got {self.augment!r}")
        check_heads(self.heads)
        if not 0.0 <= self.aux_grad <= 1.0:
            raise ValueError(f"aux_grad must be in [0, 1]; got {self.aux_grad}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0; got {self.eval_every}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        if self.weight_decay is None:
            self.weight_decay = DEFAULT_WEIGHT_DECAY[self.optimizer]
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}")
        if self.precision == "auto":  # last: a bad config fails before the ~1.5 s measurement
            self.precision = faster_precision(self.batch_size)

    def to_dict(self) -> dict:
        return asdict(self) | {"heads": list(self.heads)}


def mix(real: Split, cf: Counterfactuals | None) -> tuple[Tensor, Tensor]:
    """Real images (every head labelled with the digit) followed by the generated ones (their own labels)."""
    images, labels = [real.images], [real.training_labels()]
    if cf is not None and len(cf):
        if cf.images.shape[1:] != real.images.shape[1:]:
            raise ValueError(f"generated images are {cf.images.shape[1:]}, real ones {real.images.shape[1:]}")
        images.append(cf.images)
        labels.append(cf.labels)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels).astype(np.int64))


def as_input(images: Tensor) -> Tensor:
    """uint8 NCHW -> float in [0, 1], channels-last (the layout oneDNN convolves fastest)."""
    return images.float().div_(255).contiguous(memory_format=torch.channels_last)


def autocast(precision: str):
    """bf16 autocast for "bf16" (weights and optimiser state stay fp32); a no-op for "fp32"."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def train_step(
    model: InvariantEnsemble,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    precision: str,
    augment: Callable[[Tensor], Tensor] | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    """One update on a uint8 batch; returns the logits and the loss it was computed from."""
    x = as_input(images)
    if augment is not None:
        x = augment(x).contiguous(memory_format=torch.channels_last)
    with autocast(precision):
        logits = model(x)
        loss = model.loss(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return logits, loss


@torch.no_grad()
def evaluate(
    model: InvariantEnsemble, split: Split, batch_size: int = 1000, precision: str = "fp32"
) -> dict[str, dict[str, float]]:
    """Per head: accuracy against its own mechanism's factor ("own") and against the digit ("digit")."""
    model.eval()
    images, factors = torch.from_numpy(split.images), torch.from_numpy(split.factors)
    own = dict.fromkeys(model.heads, 0)
    digit = dict.fromkeys(model.heads, 0)
    for i in range(0, len(images), batch_size):
        with autocast(precision):
            pred = model.predict(as_input(images[i : i + batch_size]))
        f = factors[i : i + batch_size]
        for h in model.heads:
            own[h] += int((pred[h] == f[:, HEADS.index(h)]).sum())
            digit[h] += int((pred[h] == f[:, 0]).sum())
    n = max(1, len(images))
    return {"own": {h: own[h] / n for h in model.heads}, "digit": {h: digit[h] / n for h in model.heads}}


def _optimizer(model: InvariantEnsemble, cfg: TrainConfig, steps: int):
    """The optimiser, whether its schedule steps per batch, and the schedule."""
    if cfg.optimizer == "adadelta":
        opt = torch.optim.Adadelta(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        return opt, False, torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=cfg.gamma)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return opt, True, torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=max(1, steps), pct_start=0.15)


def train(
    train_images: Tensor,
    train_labels: Tensor,
    test: Split,
    cfg: TrainConfig,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[InvariantEnsemble, list[dict]]:
    """Train from scratch; returns the model and one record per epoch (train/test accuracy per head)."""
    torch.manual_seed(cfg.seed)
    order = torch.Generator().manual_seed(cfg.seed)
    jitter = torch.Generator().manual_seed(cfg.seed + 1)  # its own stream: the batch order stays as without
    augment = (lambda x: random_affine(x, jitter)) if cfg.augment == "affine" else None
    model = InvariantEnsemble(cfg.heads, aux_grad=cfg.aux_grad, input_affine=cfg.input_affine)
    model = model.to(memory_format=torch.channels_last)
    optimizer, per_step, scheduler = _optimizer(model, cfg, steps=cfg.epochs * -(-len(train_images) // cfg.batch_size))
    history = []
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        correct = dict.fromkeys(model.heads, 0)
        loss_sum, seen = 0.0, 0
        perm = torch.randperm(len(train_images), generator=order)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            y = train_labels[idx]
            logits, loss = train_step(model, optimizer, train_images[idx], y, cfg.precision, augment)
            if per_step:
                scheduler.step()
            loss_sum += float(loss.detach()) * len(idx)
            seen += len(idx)
            for h in model.heads:
                correct[h] += int((logits[h].argmax(1) == y[:, HEADS.index(h)]).sum())
        if not per_step:
            scheduler.step()
        train_s = time.perf_counter() - t0
        due = epoch == cfg.epochs or (cfg.eval_every and epoch % cfg.eval_every == 0)
        result = evaluate(model, test, cfg.eval_batch_size, cfg.precision) if due else {"own": None, "digit": None}
        record = {
            "epoch": epoch,
            "lr": lr,
            "loss": loss_sum / max(1, seen),
            "train_acc": {h: correct[h] / max(1, seen) for h in model.heads},
            "test_acc": result["own"],
            "test_acc_vs_digit": result["digit"],
            "train_seconds": round(train_s, 3),
            "seconds": round(time.perf_counter() - t0, 3),
            "images_per_s": round(seen / train_s, 1) if train_s > 0 else None,
        }
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return model, history
