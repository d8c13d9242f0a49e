"""Diagnostic: the classifier job's network on perfect double-colored counterfactuals (real digits,
colors drawn uniformly), shape head alone vs the three-head ensemble with a shared backbone.

    python3 benchmarks/oracle_heads.py
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "jobs" / "classifier"))
from cgn_classifier.model import InvariantEnsemble  # noqa: E402

from cgn.mnist import datasets  # noqa: E402
from cgn.mnist.digits import binary_digits, load_mnist  # noqa: E402

N, EPOCHS, BATCH = 8000, 2, 64


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    raw, digits = load_mnist("train")
    y = torch.from_numpy(digits[:N])
    gen = torch.Generator().manual_seed(0)
    obj, bg = torch.randint(0, 10, (N,), generator=gen), torch.randint(0, 10, (N,), generator=gen)
    images = datasets.make_images("double-colored", binary_digits(raw[:N]), obj, bg, gen)
    labels = torch.stack([y, obj, bg], 1)
    test = datasets.load("double-colored", "test", limit=1000)
    for heads in [("shape",), ("shape", "texture", "background")]:
        model = InvariantEnsemble(heads)
        opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
        for epoch in range(1, EPOCHS + 1):
            model.train()
            correct = 0
            for idx in torch.randperm(N).split(BATCH):
                logits = model(images[idx])
                loss = model.loss(logits, labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                correct += int((logits["shape"].argmax(1) == y[idx]).sum())
            model.eval()
            acc = (model.predict(test.images)["shape"] == test.labels).float().mean().item()
            print(f"heads={','.join(heads)} epoch {epoch}: train {correct / N:.3f} test {acc:.3f}", flush=True)


if __name__ == "__main__":
    main()
