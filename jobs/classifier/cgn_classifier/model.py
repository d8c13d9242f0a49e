"""The paper's small MNIST CNN as a shared backbone, with one linear head per mechanism (Figure 1).

Each head is trained on the label its mechanism was given; on counterfactuals those labels differ,
so the shape head can only succeed by ignoring texture and background. The shape head is the
classifier Table 1 measures.

Why the texture and background heads reach the backbone through a scaled gradient (`aux_grad`):
color and texture are far easier to learn than shape, and with full gradients from all three heads
the shared features fill with color first: on perfect counterfactuals the shape head then reaches
68.8 % where it reaches 86.2 % with the scaled gradient and 88.1 % alone (benchmarks/oracle_heads.py,
docs/results.md). The official ImageNet
ensemble has the same shared backbone; its heads are deeper there.
"""

import torch
from torch import Tensor, nn

HEADS = ("shape", "texture", "background")
FEATURES = 64


def backbone(input_affine: bool = True) -> nn.Sequential:
    """BatchNorm on the input, conv5x5-32, max-pool, conv 32, conv 64 stride 2, conv 64, global average pool.

    input_affine=False drops the input BatchNorm's learnt scale and shift: the first conv could absorb
    them, and without them the backward pass skips the first conv's input gradient (a run ~1.2x
    faster), but under Adam with weight decay the learnt pair is worth ~0.2 points on double-colored
    (docs/results.md).
    """
    return nn.Sequential(
        nn.BatchNorm2d(3, affine=input_affine),
        nn.Conv2d(3, 32, kernel_size=5, padding=2),
        # max-pool then ReLU: the same function and gradients as ReLU then max-pool (both monotone),
        # with the ReLU on a quarter of the activations
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(32, 32, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(64, FEATURES, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def check_heads(heads: tuple[str, ...]) -> None:
    if not heads or any(h not in HEADS for h in heads) or len(set(heads)) != len(heads):
        raise ValueError(f"heads: a non-empty subset of {', '.join(HEADS)}; got {', '.join(heads) or 'none'}")


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def kaiming_init(module: nn.Module) -> None:
    """He initialisation of the convs: torch's default shrinks the signal through the ReLU stack, and
    the network then sits at chance for an epoch before it starts to learn."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)


class InvariantEnsemble(nn.Module):
    """Shared backbone + one head per mechanism in `heads` (a subset of HEADS, shape first).

    `aux_grad` scales the gradient the texture and background heads send into the backbone (1.0:
    plain multi-task training); their own weights learn at the full rate.
    """

    def __init__(
        self, heads: tuple[str, ...] = HEADS, num_classes: int = 10, aux_grad: float = 0.1, input_affine: bool = True
    ):
        super().__init__()
        check_heads(heads)
        self.heads = tuple(h for h in HEADS if h in heads)
        self.backbone = backbone(input_affine)
        self.classifiers = nn.ModuleDict({h: nn.Linear(FEATURES, num_classes) for h in self.heads})
        self.aux_grad = aux_grad
        kaiming_init(self.backbone)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x: float (N, 3, 32, 32) in [0, 1] -> logits (N, num_classes) per head."""
        features = self.backbone(x)
        aux = features if self.aux_grad == 1.0 else _ScaleGrad.apply(features, self.aux_grad)
        return {h: self.classifiers[h](features if h == "shape" else aux) for h in self.heads}

    def loss(self, logits: dict[str, Tensor], labels: Tensor) -> Tensor:
        """Sum over heads of the cross-entropy against the label of the head's mechanism; labels (N, 3)."""
        return sum(nn.functional.cross_entropy(logits[h], labels[:, HEADS.index(h)]) for h in self.heads)

    @torch.no_grad()
    def predict(self, x: Tensor) -> dict[str, Tensor]:
        return {h: v.argmax(1) for h, v in self.forward(x).items()}
