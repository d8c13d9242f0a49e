"""model_store.ModelCache: each model loads once however many threads ask, the least recently used leaves first;
the service's runner keeps its models in one."""

import threading
import time
from pathlib import Path

import pytest

from model_store import ModelCache, ModelStore
from service.runner import Runner
from service.settings import Settings
from tests.conftest import random_mnist_model


class CountingStore(ModelStore):
    def __init__(self, root: Path):
        super().__init__(root)
        self.loads: list[str] = []

    def load(self, name, device="cpu"):
        self.loads.append(name)
        time.sleep(0.05)  # long enough for the other threads to ask meanwhile
        return super().load(name, device)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cache") / "models"
    for seed, name in enumerate(("a", "b", "c")):
        random_mnist_model(root, name, seed)
    return root


def test_a_model_loads_once_for_many_threads(root):
    store = CountingStore(root)
    cache = ModelCache(store, "cpu", max_models=2)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("a"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.loads == ["a"] and len(got) == 8 and all(g is got[0] for g in got)
    assert cache.get("a") is got[0] and store.loads == ["a"]


def test_the_least_recently_used_model_leaves_first(root):
    store = CountingStore(root)
    cache = ModelCache(store, "cpu", max_models=2)
    a, b = cache.get("a"), cache.get("b")
    assert cache.get("a") is a  # a is now the most recently used
    assert cache.peek("b") is b  # a look is no use: b stays the least recently used
    cache.get("c")
    assert cache.names() == ["a", "c"] and cache.peek("b") is None and "b" not in cache and len(cache) == 2
    assert cache.get("b") is not b and store.loads == ["a", "b", "c", "b"]  # back, loaded again
    assert cache.names() == ["b", "c"]
    with pytest.raises(ValueError, match="max_models"):
        ModelCache(store, "cpu", max_models=0)


def test_the_runner_keeps_its_models_in_the_cache(root, tmp_path):
    runner = Runner(Settings(model_store=root, default_model="a", model_cache_size=2, assets_dir=tmp_path))
    assert runner.loaded("a") is None and runner.names() == []
    a = runner.load("a")
    assert runner.load("a") is a and runner.loaded("a") is a and runner.names() == ["a"]
    runner.load("b")
    runner.load("c")
    assert runner.names() == ["b", "c"] and runner.loaded("a") is None
    # the models loaded at start-up never push each other out, whatever the cache size
    wide = Runner(Settings(model_store=root, default_model="a", models=["b", "c"], model_cache_size=1))
    for name in ("a", "b", "c"):
        wide.load(name)
    assert wide.names() == ["a", "b", "c"]
