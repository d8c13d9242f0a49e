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
    return _VOCABULARIES.get(architecture, Vocabulary)(names, aliases)


def architectures() -> list[str]:
    return sorted(_BUILDERS)


def build(architecture: str, config: dict[str, Any]) -> CounterfactualModel:
    if architecture not in _BUILDERS:
        raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(sorted(_BUILDERS))}")
    return _BUILDERS[architecture](config)


# Built-in architectures import their code only when used: BigGAN alone takes seconds to import.
def _mnist(config: dict[str, Any]) -> CounterfactualModel:
    from cgn.mnist.model import MnistCGN, MnistCGNConfig

    return MnistCGN(MnistCGNConfig(**config))


def _imagenet(config: dict[str, Any]) -> CounterfactualModel:
    from cgn.imagenet.model import ImagenetCGN, ImagenetCGNConfig

    return ImagenetCGN(ImagenetCGNConfig(**config))


def _imagenet_vocabulary(names: list[str], aliases: dict[str, int]) -> Vocabulary:
    from cgn.imagenet.names import ImagenetVocabulary

    return ImagenetVocabulary(names, aliases)


register("mnist-cgn", _mnist)
register("imagenet-cgn", _imagenet, _imagenet_vocabulary)
