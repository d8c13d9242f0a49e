"""Official CGN checkpoints -> store models: `cgn models pull imagenet` and `cgn models import`.

Official `.pth` files are only ever read with torch.load(weights_only=True). The ImageNet checkpoint is
converted to safetensors without the pseudo ground truth (training only) and registered atomically by
save_model: a failed download, a wrong hash or a checkpoint of the wrong layout leaves no model behind.
"""

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from model_store.download import DownloadError, download, gdrive_url
from model_store.manifest import Manifest
from model_store.store import CATALOG_DIR, save_model

IMAGENET_CATALOG = CATALOG_DIR / "imagenet-cgn.json"
PULLABLE = {"imagenet": IMAGENET_CATALOG}


def read_checkpoint(path: Path) -> dict[str, Tensor]:
    """A plain state dict from an official `.pth`, loaded without unpickling arbitrary objects."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # a pickle with code in it, a truncated file, not a torch file
        raise ValueError(f"{path}: not a loadable weights-only checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    return state


def imagenet_manifest(name: str, config: dict[str, Any], source: dict[str, Any], description: str) -> Manifest:
    from cgn.imagenet.model import ARCHITECTURE
    from cgn.imagenet.names import class_names

    names = class_names()[: config["num_classes"]]
    return Manifest(
        name=name,
        architecture=ARCHITECTURE,
        config=config,
        image_size=config["image_size"],
        vocabulary={"shape": names, "texture": names, "background": names},
        description=description,
        source=source,
    )


def import_imagenet(
    path: Path, root: Path, name: str = "imagenet-cgn", truncation: float = 0.5, source: dict | None = None
) -> Path:
    """Convert an official ImageNet CGN `cgn.pth` (any width, for tests) and register it under root/name."""
    from cgn.imagenet.model import from_official_state_dict
    from model_store.manifest import sha256_file

    config, state = from_official_state_dict(read_checkpoint(path), keep_ground_truth=False, truncation=truncation)
    source = {"file": Path(path).name, "file_sha256": sha256_file(Path(path)), **(source or {})}
    description = "ImageNet CGN (Sauer & Geiger, ICLR 2021): BigGAN-deep-256 shape/texture/background IMs, U2-Net mask"
    return save_model(root, imagenet_manifest(name, config.to_dict(), source, description), state)


def import_mnist(path: Path, root: Path, name: str, dataset: str | None = None) -> Path:
    """Register an official MNIST CGN `ckp.pth` (cgn_*_MNIST/weights/ckp.pth)."""
    from cgn.mnist.model import MnistCGN, MnistCGNConfig, from_official_state_dict

    state = from_official_state_dict(read_checkpoint(path))
    try:
        ngf = state["shape_im.0.weight"].shape[0] // (2 * 8 * 8)
        latent = state["shape_im.0.weight"].shape[1] - 10
    except KeyError as exc:
        raise ValueError(f"{path}: not an official MNIST CGN checkpoint (missing {exc.args[0]})") from exc
    model = MnistCGN(MnistCGNConfig(ngf=ngf, latent_size=latent))
    model.load_state_dict(state, strict=True)  # refuses a checkpoint of another layout before anything is written
    if dataset is not None:
        from model_store.mnist import manifest_for

        manifest = manifest_for(model, dataset, training={})
        manifest.name = name
    else:
        manifest = Manifest(
            name=name,
            architecture="mnist-cgn",
            config=model.config.to_dict(),
            image_size=model.image_size,
            vocabulary={
                "shape": [str(d) for d in range(10)],
                "texture": [f"texture-{i}" for i in range(10)],
                "background": [f"background-{i}" for i in range(10)],
            },
            description="official MNIST CGN checkpoint",
        )
    manifest.source = {"file": Path(path).name, "format": "official-mnist"}
    return save_model(root, manifest, model.state_dict())


def catalog_entry(which: str) -> dict[str, Any]:
    if which not in PULLABLE:
        raise ValueError(f"model: can pull {', '.join(PULLABLE)}; got {which!r}")
    return json.loads(PULLABLE[which].read_text())


def pull(
    which: str,
    root: Path,
    sha256: str | None = None,
    trust_first_download: bool = False,
    url: str | None = None,
    entry: dict[str, Any] | None = None,
    keep_download: bool = False,
    progress=None,
) -> Path:
    """Download, verify, convert and register a catalogued official model.

    The expected sha256 comes from the catalog, or `sha256`. Where neither knows it, the download is refused
    unless `trust_first_download`: then the hash seen is recorded in the manifest (pinned: false).
    """
    entry = entry or catalog_entry(which)
    src = dict(entry["source"])
    expected = sha256 or src.get("sha256")
    if expected is None and not trust_first_download:
        raise DownloadError(
            f"{entry['name']}: the catalog has no sha256 for {src['file']} to verify it against; pass --sha256 HEX "
            "(from a source you trust) or --trust-first-download to record the hash of this download"
        )
    url = url or src.get("url") or gdrive_url(src["gdrive_id"])
    downloads = root / ".downloads"
    path = download(url, downloads / src["file"], expected, progress=progress)
    try:
        source = {**src, "url": url, "sha256": expected or src.get("sha256"), "pinned": expected is not None}
        if expected is None:
            from model_store.manifest import sha256_file

            source["sha256"] = sha256_file(path)
        return import_imagenet(path, root, entry["name"], source=source)
    finally:
        if not keep_download:
            path.unlink(missing_ok=True)
