"""Wildlife MNIST textures: 10 object and 10 background textures, made procedurally or read from a folder.

The official dataset used striped (object) and veined (background) photographs from the
Describable Textures Dataset, which cannot be downloaded here. Ours keep that split: object
textures are stripes, checks and waves; background textures are smooth veined/cloudy noise; each
class has its own pattern and palette, so a classifier can tell the classes apart by texture alone.
"""

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

SIZE = 128

# Per class: the object texture and its two colors, then the background texture and its two colors.
_CLASSES = [
    ("red-white stripes", (220, 30, 30), (245, 245, 245), "mossy green veins", (40, 90, 30), (120, 170, 70)),
    ("blue-yellow diagonal stripes", (30, 60, 220), (250, 220, 30), "sandy marble", (200, 180, 130), (240, 230, 200)),
    ("green-black checks", (20, 160, 40), (10, 10, 10), "ocean blue clouds", (20, 60, 140), (110, 170, 230)),
    ("orange-purple waves", (255, 140, 0), (120, 30, 160), "rusty cracks", (120, 50, 20), (200, 110, 50)),
    ("cyan-brown zigzag", (0, 210, 220), (120, 70, 20), "lavender veins", (110, 90, 170), (200, 180, 240)),
    ("pink-navy dots", (255, 120, 180), (20, 30, 90), "charcoal smoke", (40, 40, 45), (110, 110, 120)),
    ("yellow-black vertical stripes", (250, 230, 20), (15, 15, 15), "olive mottling", (90, 100, 40), (150, 150, 80)),
    ("white-teal rings", (245, 245, 245), (0, 130, 130), "peach marble", (230, 150, 120), (255, 215, 190)),
    ("magenta-lime diagonal checks", (230, 0, 200), (150, 240, 30), "teal lichen", (20, 110, 110), (120, 190, 170)),
    ("grey-red crosshatch", (150, 150, 150), (200, 20, 20), "bark brown grain", (70, 45, 25), (140, 100, 60)),
]
OBJECT_TEXTURES = [row[0] for row in _CLASSES]
BACKGROUND_TEXTURES = [row[3] for row in _CLASSES]
_OBJECT_COLORS = [row[1:3] for row in _CLASSES]
_BACKGROUND_COLORS = [row[4:6] for row in _CLASSES]


def _grid() -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(SIZE, dtype=np.float64), np.arange(SIZE, dtype=np.float64))


def _object_pattern(k: int) -> np.ndarray:
    """A two-level pattern in [0, 1] for object class k."""
    x, y = _grid()
    tau = 2 * np.pi
    patterns = [
        np.sin(tau * y / 8),
        np.sin(tau * (x + y) / 10),
        np.sign(np.sin(tau * x / 12)) * np.sign(np.sin(tau * y / 12)),
        np.sin(tau * y / 10 + 2.5 * np.sin(tau * x / 32)),
        np.sin(tau * (y + 3 * np.abs(((x / 6) % 2) - 1) * 4) / 9),
        np.sin(tau * x / 9) * np.sin(tau * y / 9) - 0.3,
        np.sin(tau * x / 7),
        np.sin(tau * np.hypot(x - SIZE / 2, y - SIZE / 2) / 9),
        np.sign(np.sin(tau * (x + y) / 14)) * np.sign(np.sin(tau * (x - y) / 14)),
        np.maximum(np.sin(tau * (x + y) / 8), np.sin(tau * (x - y) / 8)),
    ]
    return (patterns[k] > 0).astype(np.float64)


def _smooth_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Value noise: a coarse random grid, bilinearly upsampled and tiled seamlessly."""
    grid = rng.random((cells, cells))
    coords = np.arange(SIZE) * cells / SIZE
    i0 = np.floor(coords).astype(int)
    t = coords - i0
    t = t * t * (3 - 2 * t)
    i1 = (i0 + 1) % cells
    rows = grid[i0][:, i0] * (1 - t)[None, :] + grid[i0][:, i1] * t[None, :]
    rows1 = grid[i1][:, i0] * (1 - t)[None, :] + grid[i1][:, i1] * t[None, :]
    return rows * (1 - t)[:, None] + rows1 * t[:, None]


def _background_pattern(k: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + k)
    octaves = sum(_smooth_noise(rng, c) / (i + 1) for i, c in enumerate((4, 8, 16, 32)))
    octaves = (octaves - octaves.min()) / (octaves.max() - octaves.min())
    if k % 3 == 0:  # veins: thin ridges where the noise crosses a level
        return np.clip(1 - np.abs(np.sin(octaves * 14)) * 1.5, 0, 1)
    if k % 3 == 1:  # marble: banded
        x, _ = _grid()
        return 0.5 + 0.5 * np.sin(x / 9 + octaves * 9)
    return octaves  # clouds


def _colorize(pattern: np.ndarray, colors: tuple[tuple[int, int, int], tuple[int, int, int]]) -> np.ndarray:
    a, b = (np.array(c, dtype=np.float64) / 255 for c in colors)
    return pattern[..., None] * a + (1 - pattern[..., None]) * b


def procedural_textures() -> tuple[Tensor, Tensor]:
    """(10, 3, 128, 128) object and background textures in [0, 1]; the same on every run."""
    obj = np.stack([_colorize(_object_pattern(k), _OBJECT_COLORS[k]) for k in range(10)])
    bg = np.stack([_colorize(_background_pattern(k), _BACKGROUND_COLORS[k]) for k in range(10)])
    return (torch.from_numpy(t).permute(0, 3, 1, 2).float().contiguous() for t in (obj, bg))


def folder_textures(directory: Path) -> tuple[Tensor, Tensor, list[str], list[str]]:
    """Read `object/` and `background/` (10 images each, sorted by name = class id) at 128x128."""
    from PIL import Image

    out = []
    names = []
    for part in ("object", "background"):
        files = sorted(p for p in (directory / part).iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        if len(files) != 10:
            raise ValueError(f"{directory / part}: need 10 texture images (one per class), found {len(files)}")
        ims = [np.asarray(Image.open(f).convert("RGB").resize((SIZE, SIZE), Image.NEAREST)) for f in files]
        out.append(torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2).float() / 255)
        names.append([f.stem for f in files])
    return out[0], out[1], names[0], names[1]
