"""Class-conditional discriminators of the official MNIST CGN: "linear" and "conv"."""

import torch
from torch import Tensor, nn


class LinearDiscriminator(nn.Module):
    """Label embedding concatenated to the flattened image, three Linear layers with dropout."""

    def __init__(self, num_classes: int = 10, ndf: int = 512, image_size: int = 32, channels: int = 3):
        super().__init__()
        self.label_embedding = nn.Embedding(num_classes, num_classes)
        self.net = nn.Sequential(
            nn.Linear(num_classes + channels * image_size * image_size, ndf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(ndf, ndf),
            nn.Dropout(0.4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(ndf, ndf),
            nn.Dropout(0.4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(ndf, 1),
        )

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        return self.net(torch.cat([images.flatten(1), self.label_embedding(labels)], 1)).squeeze(1)


class ConvDiscriminator(nn.Module):
    """The label as a fourth input channel, four conv blocks, average pool, 1x1 conv."""

    def __init__(self, num_classes: int = 10, ndf: int = 32):
        super().__init__()
        self.label_embedding = nn.Embedding(num_classes, 1)

        def block(cin: int, cout: int, k: int, s: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, s, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]

        self.net = nn.Sequential(
            *block(4, ndf, 3, 1),
            *block(ndf, 2 * ndf, 3, 1),
            *block(2 * ndf, 4 * ndf, 4, 2),
            *block(4 * ndf, 4 * ndf, 4, 2),
            nn.AvgPool2d(3),
            nn.Conv2d(4 * ndf, 1, 1, bias=False),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        emb = self.label_embedding(labels)[:, :, None, None].expand(-1, 1, *images.shape[-2:])
        return self.net(torch.cat([images, emb], 1)).flatten()


def discriminator(kind: str, num_classes: int = 10) -> nn.Module:
    if kind == "linear":
        return LinearDiscriminator(num_classes)
    if kind == "conv":
        return ConvDiscriminator(num_classes)
    raise ValueError(f"discriminator must be 'linear' or 'conv', got {kind!r}")
