"""Interpolation sheets on the tiny model."""

import torch
from PIL import Image

from cgn.imagenet.interpolate import MODES, interpolate, sheet
from cgn.imagenet.sheets import save_png
from cgn_cli import interpolate as cli
from cgn_cli.main import main
from tests.imagenet.helpers import tiny_model, write_official_checkpoint


def test_texture_interpolation_moves_only_the_texture_and_ends_on_the_target():
    model = tiny_model(seed=4)
    images = interpolate(model, "texture", [345, 385, 970], target=340, seeds=[1, 2, 3], steps=3)
    assert images["composite"].shape == (5, 3, 64, 64)
    for key in ("mask", "background"):  # fixed noise and class: identical along the row
        assert all(torch.equal(images[key][0], images[key][i]) for i in range(5)), key
    fg = images["foreground"]
    steps = [(fg[i + 1] - fg[i]).abs().mean().item() for i in range(4)]
    assert all(s > 0 for s in steps)
    # the ends are the plain classes: the same images the sampling path makes for those labels and seeds
    torch.testing.assert_close(fg[0], model.texture([385], [2])[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(fg[-1], model.texture([340], [2])[0], rtol=0, atol=1e-5)


def test_sheet_png_and_cli(tmp_path, monkeypatch):
    model = tiny_model(seed=4)
    png = save_png(sheet(interpolate(model, "all", [1, 2, 3], 4, [0, 0, 0], steps=2), "all"), tmp_path / "a.png")
    assert Image.open(png).size == (4 * 66 + 2, 66 + 2)
    from model_store.official import import_imagenet

    import_imagenet(write_official_checkpoint(tmp_path / "cgn.pth", model), tmp_path / "store")
    out = tmp_path / "sheet.png"
    argv = [
        "interpolate",
        "--store",
        str(tmp_path / "store"),
        "--mechanism",
        "shape",
        "--classes",
        "cow,elephant,970",
        "--to",
        "zebra",
        "--steps",
        "2",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert Image.open(out).size == (4 * 66 + 2, 2 * 66 + 2)  # composites, then the masks


def test_the_command_offers_every_mode():
    assert cli.MODES == MODES  # written out there, so that building the cgn parser does not import torch


def test_service_interpolation_of_the_imagenet_cgn_ends_on_the_sampled_classes():
    """cgn.interpolate (what POST /interpolate runs): the ends are the classes as sampling makes them."""
    from cgn.interpolate import interpolate as interpolate_classes

    model = tiny_model(seed=4)
    for mechanism, output, k in (("shape", "mask", 0), ("texture", "foreground", 1), ("background", "background", 2)):
        labels, seeds = [345, 385, 970], [1, 2, 3]
        images = interpolate_classes(model, mechanism, labels, 340, seeds, 3)
        for i, label in ((0, labels[k]), (-1, 340)):
            if mechanism == "shape":
                plain = model.shape([label], [seeds[k]])["mask"][0]
            else:
                plain = getattr(model, mechanism)([label], [seeds[k]])[0]
            assert torch.equal(images[output][i], plain), (mechanism, i)
