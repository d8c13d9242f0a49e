"""What the SDK returns."""

import base64
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

MECHANISMS = ("shape", "texture", "background")


def asset(name: str) -> dict[str, str]:
    """An intervention: use the named image asset instead of a mechanism's class, e.g. bg=asset("moon")."""
    return {"asset": name}


@dataclass
class Counterfactual:
    """One counterfactual: PIL images per requested output, and how each mechanism was resolved."""

    model: str
    images: dict[str, Image.Image]
    labels: dict[str, dict[str, Any]]  # mechanism -> {"id", "name", "via", "asset"}
    seeds: dict[str, int]
    image_size: int
    note: str | None = None

    @property
    def image(self) -> Image.Image:
        """The composite (or the only output requested)."""
        return self.images.get("composite") or next(iter(self.images.values()))

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "Counterfactual":
        images = {}
        for name, b64 in body["outputs"].items():
            raw = base64.b64decode(b64)
            if body.get("format") == "npy":
                arr = np.load(io.BytesIO(raw), allow_pickle=False)
                images[name] = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
            else:
                img = Image.open(io.BytesIO(raw))
                img.load()
                images[name] = img
        return cls(body["model"], images, body["labels"], body["seeds"], body["image_size"], body.get("note"))


@dataclass
class SampleBatch:
    """n samples: uint8 NCHW images, and (n, 3) labels and seeds in shape/texture/background order.

    `images` (and `outputs`) are numpy arrays, or torch tensors when the batch was asked `as_torch`.
    """

    images: Any
    labels: Any
    seeds: Any
    model: str
    outputs: dict[str, Any] = field(default_factory=dict)
    start: int = 0
    seed: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape_labels(self) -> Any:
        return self.labels[:, 0]

    @property
    def texture_labels(self) -> Any:
        return self.labels[:, 1]

    @property
    def background_labels(self) -> Any:
        return self.labels[:, 2]

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], as_torch: bool) -> "SampleBatch":
        outputs = {k: v for k, v in arrays.items() if k not in ("labels", "seeds")}
        labels, seeds = arrays["labels"], arrays["seeds"]
        if as_torch:
            import torch

            outputs = {k: torch.from_numpy(v.copy()) for k, v in outputs.items()}
            labels, seeds = torch.from_numpy(labels.copy()), torch.from_numpy(seeds.copy())
        images = outputs.get("composite", next(iter(outputs.values())))
        return cls(images, labels, seeds, meta.get("model", ""), outputs, meta.get("start", 0), meta.get("seed", 0))
