"""Where trained CGNs live: safetensors weights beside a manifest (architecture, config, vocabulary, sha256)."""

from model_store.cache import ModelCache
from model_store.manifest import Manifest, ManifestError
from model_store.store import BUILTIN_DIR, LoadedModel, ModelStore, NotInstalled, save_model

__all__ = [
    "BUILTIN_DIR",
    "LoadedModel",
    "Manifest",
    "ManifestError",
    "ModelCache",
    "ModelStore",
    "NotInstalled",
    "save_model",
]
