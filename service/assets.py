"""Images that stand in for a mechanism's output (do(m := image)): uploaded or built in.

Uploads are decoded with limits checked before any pixel is decompressed (PIL reads the header
first), so a small file that claims a huge canvas is refused without allocating it.

A PNG, JPEG or WebP upload is stored as uploaded (a 1 MB JPEG stays 1 MB, where its pixels as PNG take
25 MB); BMP and GIF are stored as PNG of their pixels. The pixels an asset stands in with are always the
decoded stored file (first frame, RGB; grey levels for a mask), the same in every process. Decoding and
resizing happen in `tensor`, which callers run off the event loop: `get` reads metadata only.
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
KEPT_AS_UPLOADED = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}  # else: stored as PNG of the pixels
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp"}
PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA")
MOON_SIZE = 512


class AssetError(ValueError):
    """A refused upload; `field` names the part of the request at fault."""

    def __init__(self, message: str, field: str = "file", allowed: str | None = None):
        super().__init__(message)
        self.field = field
        self.allowed = allowed


class AssetQuotaExceeded(AssetError):
    """Storing the upload would pass a limit of the asset store: `setting` names it, `limit` is its value."""

    def __init__(self, message: str, field: str, setting: str, limit: int):
        super().__init__(message, field)
        self.setting = setting
        self.limit = limit


@dataclass(frozen=True)
class Asset:
    name: str
    width: int
    height: int
    digest: str  # sha256 of the stored file: part of the micro-batch key
    builtin: bool
    description: str = ""
    media_type: str = "image/png"
    size: int | None = None  # bytes of the stored file

    @property
    def suffix(self) -> str:
        return next(s for s, t in MEDIA_TYPES.items() if t == self.media_type)

    def info(self) -> dict:
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "sha256": self.digest,
            "builtin": self.builtin,
            "description": self.description,
            "media_type": self.media_type,
            "bytes": self.size,
        }


@dataclass(frozen=True)
class Upload:
    """A checked upload, ready to store: the file to keep, its suffix and its pixel size."""

    data: bytes
    suffix: str
    width: int
    height: int


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
    return Asset(name, MOON_SIZE, MOON_SIZE, hashlib.sha256(data).hexdigest(), True, BUILTIN[name][1], size=len(data))


def _rgb(img: Image.Image) -> Image.Image:
    """An image's pixels as RGB (transparency dropped)."""
    return img.convert("RGBA").convert("RGB") if img.mode in ("P", "LA", "RGBA", "PA") else img.convert("RGB")


def check_upload(data: bytes, max_side: int, max_pixels: int) -> Upload:
    """Validate an upload (decoding it whole) and choose what to store; AssetError names the problem."""
    img = decode_upload(data, max_side, max_pixels)
    suffix = KEPT_AS_UPLOADED.get(img.format or "")
    if suffix:
        return Upload(data, suffix, img.width, img.height)
    # BMP, GIF: a PNG in the image's own mode (a GIF's palette stays a palette), the same pixels
    return Upload(_png(img if img.mode in PNG_MODES else _rgb(img)), ".png", img.width, img.height)


def decode_upload(data: bytes, max_side: int, max_pixels: int) -> Image.Image:
    """Validate and decode an uploaded image (its first frame, as the file has it); AssetError names the problem."""
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
    return img


class AssetStore:
    """Built-in assets plus uploads under a directory: NAME.json (metadata) beside NAME.png, .jpg or .webp.

    The quotas bound what uploads may take: at most `max_assets` of them, `max_bytes` bytes in all.
    """

    def __init__(self, directory: Path, max_assets: int | None = None, max_bytes: int | None = None):
        self.dir = Path(directory)
        self.max_assets, self.max_bytes = max_assets, max_bytes
        self._lock = threading.Lock()
        self._tensors: dict[tuple[str, int, bool], torch.Tensor] = {}

    def _uploaded(self) -> list[str]:
        return [p.stem for p in self.dir.glob("*.json") if NAME_RE.match(p.stem)] if self.dir.is_dir() else []

    def names(self) -> list[str]:
        return sorted(set(BUILTIN) | set(self._uploaded()))

    def get(self, name: str) -> Asset | None:
        """Metadata only (a small file read): no pixel is decoded here."""
        if name in BUILTIN:
            return _builtin_asset(name)
        if not NAME_RE.match(name):
            return None
        meta = self.dir / f"{name}.json"
        try:
            return Asset(**json.loads(meta.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def data(self, asset: Asset) -> bytes:
        """The stored file, as served by GET /assets/{name}."""
        if asset.builtin:
            return _builtin_png(asset.name)
        return (self.dir / f"{asset.name}{asset.suffix}").read_bytes()

    def put(self, name: str, upload: Upload, description: str = "") -> Asset:
        """Store (or replace) an uploaded asset; AssetQuotaExceeded when that would pass a quota."""
        if not NAME_RE.match(name):
            raise AssetError(
                f"name: {name!r} is not a valid asset name", field="name", allowed="lower-case letter, then [a-z0-9_-]"
            )
        if name in BUILTIN:
            raise AssetError(f"name: {name!r} is a built-in asset and cannot be replaced", field="name")
        data = upload.data
        digest = hashlib.sha256(data).hexdigest()
        asset = Asset(
            name, upload.width, upload.height, digest, False, description, MEDIA_TYPES[upload.suffix], len(data)
        )
        with self._lock:
            sizes = {n: self._stored_bytes(n) for n in self._uploaded()}
            replaced = sizes.pop(name, None)
            if self.max_assets is not None and replaced is None and len(sizes) + 1 > self.max_assets:
                raise AssetQuotaExceeded(
                    f"name: the asset store holds {len(sizes)} uploaded assets, the most CGN_MAX_ASSETS allows "
                    f"({self.max_assets}); replace one (upload under its name) instead",
                    "name",
                    "CGN_MAX_ASSETS",
                    self.max_assets,
                )
            total = sum(sizes.values()) + len(data)
            if self.max_bytes is not None and total > self.max_bytes:
                raise AssetQuotaExceeded(
                    f"file: storing this {len(data)}-byte image would make the uploaded assets {total} bytes; "
                    f"CGN_MAX_ASSET_BYTES allows {self.max_bytes}",
                    "file",
                    "CGN_MAX_ASSET_BYTES",
                    self.max_bytes,
                )
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.dir / f".{name}{upload.suffix}.tmp"
            tmp.write_bytes(data)
            tmp.replace(self.dir / f"{name}{upload.suffix}")
            meta = self.dir / f".{name}.json.tmp"
            meta.write_text(json.dumps(asset.__dict__))
            meta.replace(self.dir / f"{name}.json")
            for suffix in MEDIA_TYPES:  # the file of a replaced asset of another format
                if suffix != upload.suffix:
                    (self.dir / f"{name}{suffix}").unlink(missing_ok=True)
        return asset

    def delete(self, name: str) -> Asset | None:
        """Remove an uploaded asset (its metadata first, so it is gone before its file is); None if unknown.

        Work already holding its pixels finishes with them; its tensors leave the cache with the digest."""
        asset = None if name in BUILTIN else self.get(name)
        if asset is None:
            return None
        with self._lock:
            (self.dir / f"{name}.json").unlink(missing_ok=True)
            for suffix in MEDIA_TYPES:
                (self.dir / f"{name}{suffix}").unlink(missing_ok=True)
            for key in [k for k in self._tensors if k[0] == asset.digest]:
                self._tensors.pop(key, None)
        return asset

    def _stored_bytes(self, name: str) -> int:
        asset = self.get(name)
        if asset is None:
            return 0
        try:
            return (self.dir / f"{name}{asset.suffix}").stat().st_size
        except FileNotFoundError:
            return 0

    def tensor(self, asset: Asset, size: int, as_mask: bool) -> torch.Tensor:
        """(1, C, size, size) float in [0, 1]: RGB, or grey levels when it stands in for a mask.

        Decodes and resizes the stored image on first use (a large one takes a while): call it off the event loop."""
        key = (asset.digest, size, as_mask)
        cached = self._tensors.get(key)
        if cached is None:
            with Image.open(io.BytesIO(self.data(asset))) as stored:
                img = _rgb(stored)
            if as_mask:
                img = img.convert("L")
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
            cached = torch.from_numpy(arr[None] if as_mask else arr.transpose(2, 0, 1).copy())[None]
            if len(self._tensors) > 256:
                self._tensors.clear()
            self._tensors[key] = cached
        return cached
