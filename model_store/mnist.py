"""Turn a trained MNIST CGN into a model-store entry: safetensors + manifest with readable vocabularies."""

from pathlib import Path

from cgn.mnist import datasets
from cgn.mnist.model import MnistCGN
from model_store.manifest import Manifest
from model_store.store import save_model

DESCRIPTIONS = {
    "colored": "Colored MNIST CGN: digit shape, digit color, (black) background.",
    "double-colored": "Double-colored MNIST CGN: digit shape, digit color, background color.",
    "wildlife": "Wildlife MNIST CGN: digit shape, object texture, background texture.",
}


def manifest_for(model: MnistCGN, dataset: str, training: dict, texture_dir: Path | None = None) -> Manifest:
    f = datasets.factors(dataset, texture_dir)
    return Manifest(
        name=f"mnist-{dataset}",
        architecture="mnist-cgn",
        config=model.config.to_dict(),
        image_size=model.image_size,
        vocabulary={"shape": [str(d) for d in range(10)], "texture": f.texture, "background": f.background},
        aliases={"shape": {w: i for i, w in enumerate(datasets.DIGIT_NAMES)}},
        description=DESCRIPTIONS[dataset],
        training=training,
    )


def export(model: MnistCGN, dataset: str, root: Path, training: dict, texture_dir: Path | None = None) -> Path:
    return save_model(root, manifest_for(model, dataset, training, texture_dir), model.state_dict())
