"""Shared fixtures: a real redis-server on a free port, and a model store with random-weight models."""

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # two threads were slower for the tiny test models, and CI has 2 cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    """A redis-server this test owns: it can be killed and restarted on the same port and data dir."""

    port: int
    dir: Path
    appendonly: bool = True
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", ""]
        args += ["--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path / "redis")
    server.dir.mkdir()
    server.start()
    yield server
    server.kill()


DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def random_mnist_model(root: Path, name: str = "mnist-test", seed: int = 0) -> Path:
    """A random-weight MNIST CGN in the store format (weights are random, the format is real)."""
    from cgn.mnist.model import MnistCGN, MnistCGNConfig
    from model_store import Manifest, save_model

    torch.manual_seed(seed)
    model = MnistCGN(MnistCGNConfig(init_type="normal", init_gain=0.2))
    digits = [str(i) for i in range(10)]
    manifest = Manifest(
        name=name,
        architecture="mnist-cgn",
        config=model.config.to_dict(),
        image_size=32,
        vocabulary={
            "shape": digits,
            "texture": [f"color-{i}" for i in range(10)],
            "background": [f"bg-{i}" for i in range(10)],
        },
        aliases={"shape": {w: i for i, w in enumerate(DIGIT_WORDS)}},
        description="random weights, for tests",
    )
    return save_model(root, manifest, model.state_dict())


def random_imagenet_model(root: Path, name: str = "imagenet-cgn", seed: int = 0) -> Path:
    """A random-weight tiny ImageNet CGN (ImagenetCGNConfig.tiny()) in the store format; same seed, same bytes."""
    from cgn.imagenet.model import ImagenetCGN, ImagenetCGNConfig
    from model_store import save_model
    from model_store.official import imagenet_manifest

    model = ImagenetCGN(ImagenetCGNConfig.tiny()).init_random_(seed).eval()
    manifest = imagenet_manifest(name, model.config.to_dict(), {}, "random tiny ImageNet CGN, for tests")
    return save_model(root, manifest, model.state_dict())


@pytest.fixture
def model_root(tmp_path: Path) -> Path:
    """A writable model-store root holding one random-weight MNIST model named mnist-test."""
    root = tmp_path / "models"
    random_mnist_model(root)
    return root


@pytest.fixture(scope="session")
def random_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model-store root with the random mnist-test model, shared (read-only) by the session's servers."""
    root = tmp_path_factory.mktemp("random-store") / "models"
    random_mnist_model(root)
    return root


def response_schema(doc: dict, path: str, method: str, status: int, media: str = "application/json") -> dict:
    """The JSON Schema an OpenAPI document promises for one response, with its components to resolve $refs."""
    responses = doc["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path}: {status} is not documented ({sorted(responses)})"
    content = responses[str(status)].get("content", {})
    assert media in content, f"{method} {path} {status}: no {media} schema ({sorted(content)})"
    return {"components": doc["components"], **content[media]["schema"]}


@pytest.fixture
def conforms():
    """`conforms(doc, path, method, response)`: the JSON body is what the OpenAPI document says it is."""
    import jsonschema

    def check(doc: dict, path: str, method: str, response) -> None:
        schema = response_schema(doc, path, method, response.status_code)
        jsonschema.Draft202012Validator(schema).validate(response.json())

    return check
