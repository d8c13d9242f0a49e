"""Images that stand in for a mechanism's output (do(m := image)): uploaded or built in.

Uploads are decoded with limits checked before any pixel is decompressed (PIL reads the header
first), so a small file that claims a huge canvas is refused without allocating it.
"""

import hashlib
import io
import json
import re
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
MOON_SIZE = 512


class AssetError(ValueError):
    """A refused upload; `field` names the part of the request at fault."""

    def __init__(self, message: str, field: str = "file", allowed: str | None = None):
        super().__init__(message)
        self.field = field
        self.allowed = allowed


@dataclass(frozen=True)
class Asset:
    name: str
    width: int
    height: int
    digest: str  # sha256 of the stored PNG: part of the micro-batch key
    builtin: bool
    description: str = ""

    def info(self) -> dict:
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "sha256": self.digest,
            "builtin": self.builtin,
            "description": self.description,
        }


def moon(size: int = MOON_SIZE) -> Image.Image:
    """A procedurally generated lunar landscape: black starry sky over grey cratered ground."""
    rng = np.random.default_rng(1969)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.zeros((size, size, 3), np.float32)
    horizon = 0.45 + 0.03 * np.sin(xx * 9.0) + 0.02 * np.sin(xx * 23.0 + 1.0)
    ground = yy > horizon
    stars = rng.random((size, size)) > 0.996
    img[stars & ~ground] = rng.uniform(0.6, 1.0, (int((stars & ~ground).sum()), 1))
    earth = (xx - 0.78) ** 2 + (yy - 0.18) ** 2 < 0.06**2
    img[earth] = (0.25, 0.45, 0.85)
    shade = 0.55 + 0.25 * (yy - horizon).clip(0, 1)
    noise = rng.normal(0, 0.04, (size, size))
    grey = (shade + noise).astype(np.float32)
    for _ in range(40):  # craters: a dark bowl with a light rim
        cx, cy = rng.uniform(0, 1), rng.uniform(0.5, 1)
        r = rng.uniform(0.01, 0.07) * (0.4 + cy)
        d = np.sqrt(((xx - cx) / 1.0) ** 2 + ((yy - cy) / 0.45) ** 2) / r
        grey = np.where(d < 1, grey * (0.7 + 0.3 * d), grey)
        grey = np.where((d >= 1) & (d < 1.15), grey + 0.12, grey)
    img[ground] = np.repeat(grey[ground][:, None], 3, axis=1)
    return Image.fromarray((img.clip(0, 1) * 255 + 0.5).astype(np.uint8), "RGB")


BUILTIN = {"moon": (moon, "procedurally generated lunar landscape (a background)")}


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@lru_cache(maxsize=4)
def _builtin_png(name: str) -> bytes:
    return _png(BUILTIN[name][0]())


@lru_cache(maxsize=4)
def _builtin_asset(name: str) -> "Asset":
    data = _builtin_png(name)
    return Asset(name, MOON_SIZE, MOON_SIZE, hashlib.sha256(data).hexdigest(), True, BUILTIN[name][1])


def decode_upload(data: bytes, max_side: int, max_pixels: int) -> Image.Image:
    """Validate and decode an uploaded image; AssetError names the problem."""
    if not data:
        raise AssetError("file: the upload is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format
            w, h = img.size
            if fmt not in ALLOWED_FORMATS:
                raise AssetError(f"file: image format {fmt} is not accepted", allowed=", ".join(ALLOWED_FORMATS))
            if w < 1 or h < 1 or w > max_side or h > max_side:
                raise AssetError(f"file: image is {w}x{h}; each side must be in [1, {max_side}] pixels")
            if w * h > max_pixels:
                raise AssetError(f"file: image has {w * h} pixels; the limit is {max_pixels}")
            img.seek(0)
            img.load()
    except AssetError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise AssetError(f"file: refused as a decompression bomb: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
        raise AssetError(
            f"file: not a readable image ({type(exc).__name__})", allowed=", ".join(ALLOWED_FORMATS)
        ) from exc
    return img.convert("RGBA").convert("RGB") if img.mode in ("P", "LA", "RGBA", "PA") else img.convert("RGB")


class AssetStore:
    """Built-in assets plus uploads under a directory (name.png + name.json)."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self._lock = threading.Lock()
        self._tensors: dict[tuple[str, int, bool], torch.Tensor] = {}

    def names(self) -> list[str]:
        uploaded = [p.stem for p in self.dir.glob("*.png")] if self.dir.is_dir() else []
        return sorted(set(BUILTIN) | set(uploaded))

    def get(self, name: str) -> Asset | None:
        if name in BUILTIN:
            return _builtin_asset(name)
        if not NAME_RE.match(name):
            return None
        meta = self.dir / f"{name}.json"
        if not meta.is_file():
            return None
        return Asset(**json.loads(meta.read_text()))

    def png(self, name: str) -> bytes:
        if name in BUILTIN:
            return _builtin_png(name)
        return (self.dir / f"{name}.png").read_bytes()

    def put(self, name: str, img: Image.Image, description: str = "") -> Asset:
        if not NAME_RE.match(name):
            raise AssetError(
                f"name: {name!r} is not a valid asset name", field="name", allowed="lower-case letter, then [a-z0-9_-]"
            )
        if name in BUILTIN:
            raise AssetError(f"name: {name!r} is a built-in asset and cannot be replaced", field="name")
        data = _png(img)
        asset = Asset(name, img.width, img.height, hashlib.sha256(data).hexdigest(), False, description)
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.dir / f".{name}.png.tmp"
            tmp.write_bytes(data)
            tmp.replace(self.dir / f"{name}.png")
            meta = self.dir / f".{name}.json.tmp"
            meta.write_text(json.dumps(asset.__dict__))
            meta.replace(self.dir / f"{name}.json")
        return asset

    def tensor(self, asset: Asset, size: int, as_mask: bool) -> torch.Tensor:
        """(1, C, size, size) float in [0, 1]: RGB, or grey levels when it stands in for a mask."""
        key = (asset.digest, size, as_mask)
        cached = self._tensors.get(key)
        if cached is None:
            img = Image.open(io.BytesIO(self.png(asset.name))).convert("L" if as_mask else "RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
            cached = torch.from_numpy(arr[None] if as_mask else arr.transpose(2, 0, 1).copy())[None]
            if len(self._tensors) > 256:
                self._tensors.clear()
            self._tensors[key] = cached
        return cached
