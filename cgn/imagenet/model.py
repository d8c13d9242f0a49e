"""The ImageNet CGN: three BigGAN-deep generators as mechanisms, a U2-Net mask head, the analytic composer.

Module names are the official ones (f_shape, f_text, f_bg, u2net, biggan_GT), so the official `cgn.pth`
maps onto this class key for key. The frozen pseudo ground truth `biggan_GT` exists only when training
(config.ground_truth); inference models leave it out. The same class builds the tiny test model.
"""

import contextlib
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cgn.device import deterministic_cuda
from cgn.imagenet.biggan import build_biggan, fold_spectral_norm_, init_random_
from cgn.imagenet.u2net import U2Net
from cgn.mechanisms import CounterfactualModel
from cgn.noise import distinct, generator, truncated_normal

ARCHITECTURE = "imagenet-cgn"
OFFICIAL_PARTS = ("f_shape", "f_text", "f_bg", "u2net", "biggan_GT")
INFERENCE_PARTS = ("f_shape", "f_text", "f_bg", "u2net")
MASK_EPS = 1e-4
LATENT_SIZE = 128


@dataclass(frozen=True)
class ImagenetCGNConfig:
    image_size: int = 256
    channel_width: int = 128  # BigGAN's ch: 128 is BigGAN-deep-256
    u2net_divisor: int = 1  # U2-Net widths are divided by this (1: the official U2-Net)
    num_classes: int = 1000
    truncation: float = 0.5  # noise in [-2, 2] times this; also picks BigGAN's batch-norm statistics
    ground_truth: bool = False  # build biggan_GT (training only)

    def __post_init__(self) -> None:
        if not 0 < self.truncation <= 1:
            raise ValueError(f"truncation must be in (0, 1], got {self.truncation}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def tiny(cls, **overrides) -> "ImagenetCGNConfig":
        """64 px, BigGAN width 8, U2-Net at 1/8 width: ~4M parameters, for tests."""
        return cls(**{"image_size": 64, "channel_width": 8, "u2net_divisor": 8, **overrides})


@dataclass
class InferenceOptions:
    """How inference runs; none of this changes the fp32 CPU path."""

    autocast: torch.dtype | None = None  # torch.bfloat16 / torch.float16 on CUDA
    channels_last: bool = False
    compiled: dict[str, nn.Module] = field(default_factory=dict)


class ImagenetCGN(CounterfactualModel):
    takes_truncation = True  # per call; None: config.truncation
    forward_rows = 2  # a 256-px sample is heavy: pad single requests to 2 rows, not 8
    cuda_forward_rows = 8  # fp32 on an H200: 16, 32, 64 rows buy +4, +17, +32 % images/s for 2x, 3x, 6x lone latency

    def __init__(self, config: ImagenetCGNConfig | None = None):
        super().__init__()
        self.config = config = config or ImagenetCGNConfig()
        self.num_classes = config.num_classes
        self.image_size = config.image_size
        self.f_shape = build_biggan(config.image_size, config.channel_width, config.num_classes)
        self.f_text = build_biggan(config.image_size, config.channel_width, config.num_classes)
        self.f_bg = build_biggan(config.image_size, config.channel_width, config.num_classes)
        self.u2net = U2Net(config.u2net_divisor)
        if config.ground_truth:
            self.biggan_GT = build_biggan(config.image_size, config.channel_width, config.num_classes)
        self.inference = InferenceOptions()

    # ---- random weights (tests, benchmarks) -------------------------------------------------------------
    @torch.no_grad()
    def init_random_(self, seed: int = 0) -> "ImagenetCGN":
        """Finite random weights for every part: distinct generators per mechanism."""
        g = torch.Generator().manual_seed(seed)
        for name in ("f_shape", "f_text", "f_bg", "biggan_GT"):
            if hasattr(self, name):
                init_random_(getattr(self, name), g)
        for m in self.u2net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, generator=g)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.1, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
                m.running_mean.normal_(0.0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
        return self

    def train(self, mode: bool = True) -> "ImagenetCGN":
        """The ground truth and U2-Net stay frozen in eval mode, as in the paper."""
        super().train(mode)
        self.u2net.eval()
        if hasattr(self, "biggan_GT"):
            self.biggan_GT.eval()
        return self

    # ---- differentiable forward passes on explicit inputs (training, interpolation) ---------------------
    # `truncation`: BigGAN's for this call; None is the configured one (config.truncation), which stays as is.
    def _truncation(self, truncation: float | None = None) -> float:
        return self.config.truncation if truncation is None else truncation

    def one_hot(self, y: Tensor) -> Tensor:
        return F.one_hot(y.to(self._device()), self.num_classes).float()

    def noise(self, seeds: list[int], truncation: float | None = None) -> Tensor:
        """Truncated normal u, one row per sample from that sample's own generator (on the CPU)."""
        unique, rows = distinct(seeds)
        return truncated_normal([generator(s) for s in unique], LATENT_SIZE, self._truncation(truncation))[rows]

    def _part(self, name: str) -> nn.Module:
        return self.inference.compiled.get(name) or getattr(self, name)

    def premask_from(self, u: Tensor, y_vec: Tensor, truncation: float | None = None) -> Tensor:
        """The shape IM's raw output in [-1, 1] (an image whose salient object becomes the mask)."""
        return self._part("f_shape")(u, y_vec, self._truncation(truncation))

    def mask_from(self, premask: Tensor) -> Tensor:
        return self._part("u2net")(premask).clamp(MASK_EPS, 1 - MASK_EPS)

    def texture_from(self, u: Tensor, y_vec: Tensor, truncation: float | None = None) -> Tensor:
        return self._part("f_text")(u, y_vec, self._truncation(truncation))

    def background_from(self, u: Tensor, y_vec: Tensor, truncation: float | None = None) -> Tensor:
        return self._part("f_bg")(u, y_vec, self._truncation(truncation))

    def ground_truth_from(self, u: Tensor, y_vec: Tensor, truncation: float | None = None) -> Tensor:
        return self.biggan_GT(u, y_vec, self._truncation(truncation))

    # ---- CounterfactualModel: validated labels and seeds -> images in [0, 1] ----------------------------
    def _device(self) -> torch.device:
        return self.f_shape.embeddings.weight.device

    def _autocast(self):
        dtype = self.inference.autocast
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self._device().type, dtype=dtype)

    def _prepare(self, y: Tensor, seeds: list[int], truncation: float | None) -> tuple[Tensor, Tensor]:
        return self.noise(seeds, truncation).to(self._device()), self.one_hot(y)

    def _shape(self, y: Tensor, seeds: list[int], truncation: float | None = None) -> dict[str, Tensor]:
        u, y_vec = self._prepare(y, seeds, truncation)
        with self._autocast():
            premask = self.premask_from(u, y_vec, truncation)
            mask = self.mask_from(premask)
        return {"mask": mask.float(), "premask": (premask.float() + 1) / 2}

    def _texture(self, y: Tensor, seeds: list[int], truncation: float | None = None) -> Tensor:
        u, y_vec = self._prepare(y, seeds, truncation)
        with self._autocast():
            return (self.texture_from(u, y_vec, truncation).float() + 1) / 2

    def _background(self, y: Tensor, seeds: list[int], truncation: float | None = None) -> Tensor:
        u, y_vec = self._prepare(y, seeds, truncation)
        with self._autocast():
            return (self.background_from(u, y_vec, truncation).float() + 1) / 2

    # ---- speed --------------------------------------------------------------------------------------------
    def optimize_for_inference(
        self,
        device: str | torch.device = "cpu",
        dtype: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,
        fold_spectral_norm: bool = True,
    ) -> "ImagenetCGN":
        """Move, fold spectral norms, and choose autocast / memory layout / torch.compile for inference.

        dtype: "fp32", "bf16" or "fp16" (the half types autocast the convolutions and keep fp32 outputs).
        Folding makes the model inference-only (its state dict no longer has the official layout).
        """
        dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
        if dtype not in dtypes:
            raise ValueError(f"dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
        device = torch.device(device)
        self.to(device).eval()
        if fold_spectral_norm:
            for name in ("f_shape", "f_text", "f_bg"):
                fold_spectral_norm_(getattr(self, name))
        if device.type == "cuda":
            deterministic_cuda()
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.inference = InferenceOptions(dtypes[dtype], channels_last)
        if compile:
            self.inference.compiled = {n: torch.compile(getattr(self, n), dynamic=False) for n in INFERENCE_PARTS}
        return self


# ---- the official checkpoint layout ---------------------------------------------------------------------
def strip_module_prefix(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Checkpoints saved from nn.DataParallel carry a `module.` prefix (the official scripts strip it too)."""
    return {k.removeprefix("module."): v for k, v in state.items()}


def config_from_official_state_dict(state: dict[str, Tensor], truncation: float = 0.5) -> ImagenetCGNConfig:
    """Read sizes off the tensors: BigGAN width from gen_z, resolution from the block count, U2-Net width."""
    unknown = sorted({k.split(".")[0] for k in state} - set(OFFICIAL_PARTS))
    if unknown:
        raise ValueError(f"not an official ImageNet CGN checkpoint: unexpected parts {unknown}")
    try:
        gen_z = state["f_shape.generator.gen_z.weight_orig"]
        num_classes = state["f_shape.embeddings.weight"].shape[1]
        u2_first = state["u2net.stage1.rebnconvin.conv_s1.weight"]
    except KeyError as exc:
        raise ValueError(f"not an official ImageNet CGN checkpoint: missing {exc.args[0]}") from exc
    width = gen_z.shape[0] // (4 * 4 * 16)
    blocks = {int(k.split(".")[3]) for k in state if k.startswith("f_shape.generator.layers.")}
    upsamples = (len(blocks) - 1) // 2  # two blocks per stage plus the attention layer
    image_size = 4 * 2**upsamples
    return ImagenetCGNConfig(
        image_size=image_size,
        channel_width=width,
        u2net_divisor=64 // u2_first.shape[0],
        num_classes=num_classes,
        truncation=truncation,
        ground_truth=any(k.startswith("biggan_GT.") for k in state),
    )


def from_official_state_dict(
    state: dict[str, Tensor], keep_ground_truth: bool = False, truncation: float = 0.5
) -> tuple[ImagenetCGNConfig, dict[str, Tensor]]:
    """Official `cgn.pth` -> (config, our state dict), checked strictly against the architecture.

    Inference does not need the pseudo ground truth: it is left out unless asked for.
    """
    state = strip_module_prefix(state)
    config = config_from_official_state_dict(state, truncation)
    keep = config.ground_truth and keep_ground_truth
    config = ImagenetCGNConfig(**{**config.to_dict(), "ground_truth": keep})
    out = {k: v for k, v in state.items() if keep or not k.startswith("biggan_GT.")}
    with torch.device("meta"):
        expected = ImagenetCGN(config).state_dict()
    missing = sorted(set(expected) - set(out))
    extra = sorted(set(out) - set(expected))
    if missing or extra:
        raise ValueError(f"checkpoint does not fit {config}: missing {missing[:5]}, unexpected {extra[:5]}")
    bad = [k for k in expected if tuple(expected[k].shape) != tuple(out[k].shape)]
    if bad:
        raise ValueError(f"checkpoint tensor shapes do not fit {config}: {bad[:5]}")
    return config, out


def to_official_state_dict(model: ImagenetCGN) -> dict[str, Tensor]:
    """Our keys are the official keys; this exists so tests can write checkpoints in that layout."""
    return {k: v for k, v in model.state_dict().items() if k.split(".")[0] in OFFICIAL_PARTS}
