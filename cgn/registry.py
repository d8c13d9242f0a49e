"""Architecture names -> model builders; the model store refuses any name not listed here."""

from collections.abc import Callable
from typing import Any

from cgn.mechanisms import CounterfactualModel

Builder = Callable[[dict[str, Any]], CounterfactualModel]
_BUILDERS: dict[str, Builder] = {}


def register(architecture: str, builder: Builder) -> None:
    _BUILDERS[architecture] = builder


def architectures() -> list[str]:
    _load_builtin()
    return sorted(_BUILDERS)


def build(architecture: str, config: dict[str, Any]) -> CounterfactualModel:
    _load_builtin()
    if architecture not in _BUILDERS:
        raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(sorted(_BUILDERS))}")
    return _BUILDERS[architecture](config)


def _load_builtin() -> None:
    if "mnist-cgn" in _BUILDERS:
        return
    from cgn.mnist.model import MnistCGN, MnistCGNConfig

    register("mnist-cgn", lambda cfg: MnistCGN(MnistCGNConfig(**cfg)))
    try:
        from cgn.imagenet.model import register_imagenet
    except ImportError:  # the ImageNet CGN needs pytorch-pretrained-biggan
        return
    register_imagenet(register)
