"""The full-size ImageNet CGN, saved in the official key layout and imported, computes what it computed."""

import time

import pytest
import torch

from cgn.imagenet.model import ImagenetCGN, ImagenetCGNConfig
from model_store import ModelStore
from model_store.official import import_imagenet
from tests.imagenet.helpers import write_official_checkpoint


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # full-size convolutions: two threads are ~2x faster than one
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_full_size_official_checkpoint_imports_with_identical_outputs(tmp_path, two_threads):
    """Random full-size weights (BigGAN-deep-256 x 4 + U2-Net), official layout -> store -> same fp32 outputs."""
    t0 = time.perf_counter()
    original = ImagenetCGN(ImagenetCGNConfig()).init_random_(seed=7).eval()
    ckpt = write_official_checkpoint(tmp_path / "cgn.pth", original, module_prefix=True)
    state = torch.load(ckpt, weights_only=True, mmap=True)
    assert len(state) == 3206  # the official layout, as measured on the released file
    assert sum(v.numel() for v in state.values()) == pytest.approx(278e6, rel=0.01)
    del state

    root = tmp_path / "store"
    import_imagenet(ckpt, root)
    loaded = ModelStore(root).load("imagenet-cgn")
    imported = loaded.model
    assert loaded.manifest.config == ImagenetCGNConfig(ground_truth=False).to_dict()
    assert not hasattr(imported, "biggan_GT")  # the pseudo ground truth is training-only: left out
    assert loaded.manifest.vocabulary["shape"][345] == "ox"

    # One counterfactual (a different class and seed per mechanism), batch 1, each model once.
    seeds = [11, 12, 13]
    labels = torch.tensor([345, 385, 970])
    outputs = []
    with torch.no_grad():
        for model in (original, imported):
            u = [model.noise([s]) for s in seeds]
            y = model.one_hot(labels)
            premask = model.premask_from(u[0], y[0:1])
            outputs.append(
                {
                    "premask": premask,
                    "mask": model.mask_from(premask),
                    "foreground": model.texture_from(u[1], y[1:2]),
                    "background": model.background_from(u[2], y[2:3]),
                }
            )
    for key in outputs[0]:
        a, b = outputs[0][key], outputs[1][key]
        assert a.shape[-2:] == (256, 256)
        assert torch.isfinite(a).all(), key
        assert torch.equal(a, b), f"{key}: max abs diff {(a - b).abs().max().item()}"
    assert outputs[0]["foreground"].std() > 0.01  # a real image, not a constant
    assert not torch.equal(outputs[0]["foreground"], outputs[0]["background"])
    print(f"full-size import round trip: {time.perf_counter() - t0:.1f}s")
