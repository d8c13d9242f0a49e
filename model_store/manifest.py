"""The manifest format: one JSON file per model directory."""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cgn.mechanisms import MECHANISMS
from cgn.vocab import Vocabulary  # noqa: F401  (type of Manifest.vocab)

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


class ManifestError(ValueError):
    """A manifest or weights file that must not be loaded (bad hash, unknown architecture, ...)."""


@dataclass
class Manifest:
    name: str
    architecture: str
    config: dict[str, Any]
    image_size: int
    vocabulary: dict[str, list[str]]  # mechanism -> class names, index = class id
    weights_file: str = "model.safetensors"
    sha256: str = ""
    description: str = ""
    aliases: dict[str, dict[str, int]] = field(default_factory=dict)  # mechanism -> alias -> id
    training: dict[str, Any] = field(default_factory=dict)  # command, seconds, dataset, ...
    source: dict[str, Any] = field(default_factory=dict)  # where official weights came from
    format_version: int = FORMAT_VERSION

    @property
    def takes_truncation(self) -> bool:
        """Whether a request may give a truncation: the model's config has one (BigGAN's noise scale).
        Read from the manifest, so callers know without loading the model."""
        return "truncation" in self.config

    def vocab(self, mechanism: str) -> Vocabulary:
        """The mechanism's name resolver; the architecture may supply a richer one (ImageNet: WordNet)."""
        from cgn import registry

        return registry.vocabulary(self.architecture, self.vocabulary[mechanism], self.aliases.get(mechanism, {}))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ManifestError(f"manifest has unknown fields: {sorted(unknown)}")
        try:
            manifest = cls(**data)
        except TypeError as exc:
            raise ManifestError(f"manifest is incomplete: {exc}") from exc
        missing = [m for m in MECHANISMS if m not in manifest.vocabulary]
        if missing:
            raise ManifestError(f"manifest vocabulary lacks mechanisms: {missing}")
        if manifest.format_version != FORMAT_VERSION:
            raise ManifestError(f"manifest format {manifest.format_version} is not {FORMAT_VERSION}")
        return manifest

    @classmethod
    def read(cls, directory: Path) -> "Manifest":
        path = directory / MANIFEST_FILE
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: not valid JSON: {exc}") from exc


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
