"""Architecture names -> model builders; the model store refuses any name not listed here."""

from collections.abc import Callable
from typing import Any

from cgn.mechanisms import CounterfactualModel
from cgn.vocab import Vocabulary

Builder = Callable[[dict[str, Any]], CounterfactualModel]
VocabularyFactory = Callable[[list[str], dict[str, int]], Vocabulary]
_BUILDERS: dict[str, Builder] = {}
_VOCABULARIES: dict[str, VocabularyFactory] = {}


def register(architecture: str, builder: Builder, vocabulary: VocabularyFactory | None = None) -> None:
    """`vocabulary` builds an architecture's name resolver (e.g. WordNet hypernyms for ImageNet)."""
    _BUILDERS[architecture] = builder
    if vocabulary is not None:
        _VOCABULARIES[architecture] = vocabulary


def vocabulary(architecture: str, names: list[str], aliases: dict[str, int]) -> Vocabulary:
    _load_builtin()
    return _VOCABULARIES.get(architecture, Vocabulary)(names, aliases)


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
