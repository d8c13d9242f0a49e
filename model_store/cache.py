"""Loaded models of one device, kept in memory: each loads once, the least recently used goes first."""

import logging
import threading
from collections import OrderedDict

import torch

from model_store.store import LoadedModel, ModelStore

log = logging.getLogger("cgn.model_store")


class ModelCache:
    """Up to `max_models` loaded models of `store` on `device`, shared by threads.

    One load at a time (two loads of one model would cost its memory twice), while models already
    loaded are handed out without waiting for it. An evicted model stays usable by whoever holds it.
    """

    def __init__(self, store: ModelStore, device: str | torch.device = "cpu", max_models: int = 2):
        if max_models < 1:
            raise ValueError(f"max_models: must be >= 1, got {max_models}")
        self.store, self.device, self.max_models = store, device, max_models
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()  # guards _models
        self._load_lock = threading.Lock()

    def get(self, name: str) -> LoadedModel:
        """The loaded model, loading it if it is not in the cache (blocking; raises NotInstalled / KeyError)."""
        hit = self._touch(name)
        if hit is not None:
            return hit
        with self._load_lock:
            hit = self._touch(name)  # loaded by another thread meanwhile
            if hit is not None:
                return hit
            log.info("loading model %s on %s", name, self.device)
            loaded = self.store.load(name, self.device)
            with self._lock:
                self._models[name] = loaded
                while len(self._models) > self.max_models:
                    evicted, _ = self._models.popitem(last=False)
                    log.info("model %s leaves the cache (%d models at most)", evicted, self.max_models)
            return loaded

    def peek(self, name: str) -> LoadedModel | None:
        """The model if it is loaded, without loading it or counting as a use."""
        with self._lock:
            return self._models.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def __contains__(self, name: str) -> bool:
        return self.peek(name) is not None

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def _touch(self, name: str) -> LoadedModel | None:
        with self._lock:
            hit = self._models.get(name)
            if hit is not None:
                self._models.move_to_end(name)
            return hit
