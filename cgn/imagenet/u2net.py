"""U2-Net (Qin et al. 2020), the frozen salient-object net that turns a premask into a mask.

Laid out with the official parameter names (stageN.rebnconvX.conv_s1 ...), so the `u2net.` part of
the official `cgn.pth` loads with strict=True. `divisor` shrinks every width for the tiny test model.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (input, middle, output) channels of the full-size stages, encoder then decoder.
ENCODER = {"stage1": (3, 32, 64), "stage2": (64, 32, 128), "stage3": (128, 64, 256), "stage4": (256, 128, 512)}
ENCODER_FLAT = {"stage5": (512, 256, 512), "stage6": (512, 256, 512)}
DECODER = {"stage4d": (1024, 128, 256), "stage3d": (512, 64, 128), "stage2d": (256, 32, 64), "stage1d": (128, 16, 64)}
DECODER_FLAT = {"stage5d": (1024, 256, 512)}
# Residual U-block depth of each stage (RSU-7 ... RSU-4; the "flat" RSU-4F stages are dilated instead).
DEPTH = {"stage1": 7, "stage2": 6, "stage3": 5, "stage4": 4, "stage1d": 7, "stage2d": 6, "stage3d": 5, "stage4d": 4}


class ConvBnRelu(nn.Module):
    def __init__(self, cin: int, cout: int, dilation: int = 1):
        super().__init__()
        self.conv_s1 = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)
        self.bn_s1 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn_s1(self.conv_s1(x)))


def _resize_to(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=True)


class ResidualUBlock(nn.Module):
    """RSU-L: an L-level U-Net inside a residual block; pooling halves, decoding upsamples back."""

    def __init__(self, depth: int, cin: int, mid: int, cout: int):
        super().__init__()
        self.depth = depth
        self.rebnconvin = ConvBnRelu(cin, cout)
        self.rebnconv1 = ConvBnRelu(cout, mid)
        for i in range(2, depth):
            setattr(self, f"rebnconv{i}", ConvBnRelu(mid, mid))
        setattr(self, f"rebnconv{depth}", ConvBnRelu(mid, mid, dilation=2))
        for i in range(depth - 1, 1, -1):
            setattr(self, f"rebnconv{i}d", ConvBnRelu(2 * mid, mid))
        self.rebnconv1d = ConvBnRelu(2 * mid, cout)

    def forward(self, x: Tensor) -> Tensor:
        xin = self.rebnconvin(x)
        skips = [self.rebnconv1(xin)]
        for i in range(2, self.depth):
            h = F.max_pool2d(skips[-1], 2, stride=2, ceil_mode=True)
            skips.append(getattr(self, f"rebnconv{i}")(h))
        h = getattr(self, f"rebnconv{self.depth}")(skips[-1])
        for i in range(self.depth - 1, 0, -1):
            h = getattr(self, f"rebnconv{i}d")(torch.cat([h, skips[i - 1]], 1))
            if i > 1:
                h = _resize_to(h, skips[i - 2])
        return h + xin


class DilatedResidualBlock(nn.Module):
    """RSU-4F: same shape in and out, dilations 1, 2, 4, 8 replace pooling (low resolutions)."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.rebnconvin = ConvBnRelu(cin, cout)
        self.rebnconv1 = ConvBnRelu(cout, mid)
        self.rebnconv2 = ConvBnRelu(mid, mid, dilation=2)
        self.rebnconv3 = ConvBnRelu(mid, mid, dilation=4)
        self.rebnconv4 = ConvBnRelu(mid, mid, dilation=8)
        self.rebnconv3d = ConvBnRelu(2 * mid, mid, dilation=4)
        self.rebnconv2d = ConvBnRelu(2 * mid, mid, dilation=2)
        self.rebnconv1d = ConvBnRelu(2 * mid, cout)

    def forward(self, x: Tensor) -> Tensor:
        xin = self.rebnconvin(x)
        h1 = self.rebnconv1(xin)
        h2 = self.rebnconv2(h1)
        h3 = self.rebnconv3(h2)
        h = self.rebnconv4(h3)
        h = self.rebnconv3d(torch.cat([h, h3], 1))
        h = self.rebnconv2d(torch.cat([h, h2], 1))
        return self.rebnconv1d(torch.cat([h, h1], 1)) + xin


class U2Net(nn.Module):
    """Saliency in [0, 1], one channel, at the input's resolution."""

    def __init__(self, divisor: int = 1):
        super().__init__()

        def width(c: int) -> int:
            return c if c == 3 else max(1, c // divisor)

        for name, (cin, mid, cout) in {**ENCODER, **DECODER}.items():
            setattr(self, name, ResidualUBlock(DEPTH[name], width(cin), width(mid), width(cout)))
        for name, (cin, mid, cout) in {**ENCODER_FLAT, **DECODER_FLAT}.items():
            setattr(self, name, DilatedResidualBlock(width(cin), width(mid), width(cout)))
        side_in = {1: 64, 2: 64, 3: 128, 4: 256, 5: 512, 6: 512}
        for i, cin in side_in.items():
            setattr(self, f"side{i}", nn.Conv2d(width(cin), 1, 3, padding=1))
        self.outconv = nn.Conv2d(6, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        encoded = []
        h = x
        for i in range(1, 7):
            if i > 1:
                h = F.max_pool2d(h, 2, stride=2, ceil_mode=True)
            h = getattr(self, f"stage{i}")(h)
            encoded.append(h)
        decoded = {6: h}
        for i in range(5, 0, -1):
            up = _resize_to(decoded[i + 1], encoded[i - 1])
            decoded[i] = getattr(self, f"stage{i}d")(torch.cat([up, encoded[i - 1]], 1))
        sides = [getattr(self, f"side{i}")(decoded[i]) for i in range(1, 7)]
        sides = [sides[0]] + [_resize_to(s, sides[0]) for s in sides[1:]]
        return torch.sigmoid(self.outconv(torch.cat(sides, 1)))
