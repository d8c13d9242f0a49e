"""Training and evaluation of the invariant ensemble on real images mixed with counterfactuals.

The paper's recipe: Adadelta (lr 1.0), learning rate x0.7 after every epoch, batch 64, real and
generated samples shuffled together. Accuracy per head is measured against the label of the head's
own mechanism; the shape head against the digit is the number Table 1 reports.
"""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from cgn_classifier.data import Counterfactuals, Split
from cgn_classifier.model import HEADS, InvariantEnsemble


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1.0
    gamma: float = 0.7
    seed: int = 0
    heads: tuple[str, ...] = HEADS
    eval_batch_size: int = 1000

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


def _float(images: Tensor) -> Tensor:
    return images.float().div_(255).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def evaluate(model: InvariantEnsemble, split: Split, batch_size: int = 1000) -> dict[str, dict[str, float]]:
    """Per head: accuracy against its own mechanism's factor ("own") and against the digit ("digit")."""
    model.eval()
    images, factors = torch.from_numpy(split.images), torch.from_numpy(split.factors)
    own = dict.fromkeys(model.heads, 0)
    digit = dict.fromkeys(model.heads, 0)
    for i in range(0, len(images), batch_size):
        pred = model.predict(_float(images[i : i + batch_size]))
        f = factors[i : i + batch_size]
        for h in model.heads:
            own[h] += int((pred[h] == f[:, HEADS.index(h)]).sum())
            digit[h] += int((pred[h] == f[:, 0]).sum())
    n = max(1, len(images))
    return {"own": {h: own[h] / n for h in model.heads}, "digit": {h: digit[h] / n for h in model.heads}}


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
    model = InvariantEnsemble(cfg.heads).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=cfg.gamma)
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
            x, y = _float(train_images[idx]), train_labels[idx]
            logits = model(x)
            loss = model.loss(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(idx)
            seen += len(idx)
            for h in model.heads:
                correct[h] += int((logits[h].argmax(1) == y[:, HEADS.index(h)]).sum())
        scheduler.step()
        train_s = time.perf_counter() - t0
        result = evaluate(model, test, cfg.eval_batch_size)
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
