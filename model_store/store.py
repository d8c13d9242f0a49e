"""Lists, verifies, loads and writes models; a directory per model under one or more roots."""

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from cgn import registry
from cgn.device import deterministic_cuda
from cgn.mechanisms import CounterfactualModel
from model_store.manifest import MANIFEST_FILE, Manifest, ManifestError, sha256_file

BUILTIN_DIR = Path(__file__).parent / "builtin"
CATALOG_DIR = Path(__file__).parent / "catalog"


class NotInstalled(LookupError):
    """A known model whose weights are not here yet; says how to install them."""

    def __init__(self, name: str, install: str):
        self.name = name
        self.install = install
        super().__init__(f"model {name!r} is not installed; install it with: {install}")


@dataclass
class LoadedModel:
    manifest: Manifest
    model: CounterfactualModel
    path: Path


@dataclass(frozen=True)
class Entry:
    name: str
    installed: bool
    path: Path | None
    manifest: Manifest | None
    install: str | None = None  # command that installs a catalogued model


class ModelStore:
    """Installed models live under `root` (writable) and the built-in directory (read-only)."""

    def __init__(self, root: Path | str | None = None, builtin: Path = BUILTIN_DIR, catalog: Path = CATALOG_DIR):
        self.root = Path(root) if root else None
        self.builtin = builtin
        self.catalog = catalog

    def _dirs(self) -> list[Path]:
        roots = [r for r in (self.root, self.builtin) if r is not None and r.is_dir()]
        seen: dict[str, Path] = {}
        for root in roots:  # the writable root shadows built-ins of the same name
            for d in sorted(root.iterdir()):
                if (d / MANIFEST_FILE).is_file() and d.name not in seen:
                    seen[d.name] = d
        return list(seen.values())

    def entries(self) -> list[Entry]:
        out = [Entry(d.name, True, d, Manifest.read(d)) for d in self._dirs()]
        installed = {e.name for e in out}
        for item in self._catalog():
            if item["name"] not in installed:
                out.append(Entry(item["name"], False, None, None, item["install"]))
        return sorted(out, key=lambda e: e.name)

    def _catalog(self) -> list[dict]:
        if not self.catalog.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.catalog.glob("*.json"))]

    def entry(self, name: str) -> Entry:
        for e in self.entries():
            if e.name == name:
                return e
        known = ", ".join(e.name for e in self.entries())
        raise KeyError(f"unknown model {name!r}; known models: {known}")

    def load(self, name: str, device: str | torch.device = "cpu") -> LoadedModel:
        e = self.entry(name)
        if not e.installed:
            raise NotInstalled(name, e.install or "")
        return load_dir(e.path, device)

    def writable_root(self) -> Path:
        if self.root is None:
            raise ManifestError("no writable model store root configured (set CGN_MODEL_STORE)")
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root


def load_dir(directory: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Build the model a manifest describes; refuse unknown architectures and hash mismatches."""
    manifest = Manifest.read(directory)
    if manifest.architecture not in registry.architectures():
        raise ManifestError(
            f"{directory}: unknown architecture {manifest.architecture!r}; known: {', '.join(registry.architectures())}"
        )
    weights = directory / manifest.weights_file
    if not weights.is_file():
        raise ManifestError(f"{directory}: weights file {manifest.weights_file} is missing")
    actual = sha256_file(weights)
    if actual != manifest.sha256:
        raise ManifestError(f"{weights}: sha256 {actual} does not match the manifest's {manifest.sha256}")
    model = registry.build(manifest.architecture, manifest.config)
    model.load_state_dict(load_file(weights), strict=True)
    if torch.device(device).type == "cuda":
        deterministic_cuda()
    return LoadedModel(manifest, model.to(device).eval(), directory)


def save_model(root: Path, manifest: Manifest, state: dict[str, torch.Tensor]) -> Path:
    """Write weights + manifest into root/name atomically: a half-written model never appears."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{manifest.name}.", dir=root))
    try:
        weights = tmp / manifest.weights_file
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, weights)
        manifest.sha256 = sha256_file(weights)
        (tmp / MANIFEST_FILE).write_text(manifest.to_json())
        final = root / manifest.name
        if final.exists():
            old = root / f".{manifest.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
