"""`cgn models list|import` in-process, on generated official checkpoints."""

import torch

from cgn.mnist.model import MnistCGN, MnistCGNConfig, to_official_state_dict
from cgn_cli.main import main
from model_store import ModelStore
from tests.imagenet.helpers import tiny_model, write_official_checkpoint


def test_import_official_imagenet_and_list(tmp_path, capsys):
    ckpt = write_official_checkpoint(tmp_path / "cgn.pth", tiny_model(seed=2), module_prefix=True)
    root = tmp_path / "store"
    assert main(["models", "list", "--root", str(root)]) == 0
    assert "imagenet-cgn" in capsys.readouterr().out.split("not installed")[0]
    assert main(["models", "import", str(ckpt), "--root", str(root), "--name", "tiny-in"]) == 0
    assert main(["models", "list", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "tiny-in" in out and "installed" in out and "cgn models pull imagenet" in out
    loaded = ModelStore(root).load("tiny-in")
    assert loaded.manifest.config["image_size"] == 64 and loaded.manifest.source["file"] == "cgn.pth"


def test_import_official_mnist_uses_weights_only_loading(tmp_path, capsys):
    torch.manual_seed(0)
    model = MnistCGN(MnistCGNConfig()).eval()
    ckpt = tmp_path / "ckp.pth"
    torch.save(to_official_state_dict(model.state_dict()), ckpt)
    root = tmp_path / "store"
    args = [
        "models",
        "import",
        "--format",
        "official-mnist",
        str(ckpt),
        "--name",
        "mnist-official",
        "--root",
        str(root),
    ]
    assert main(args) == 0
    loaded = ModelStore(root).load("mnist-official").model
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_import_refuses_pickled_code_and_wrong_layout(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pth"
    torch.save({"f_shape.x": Evil()}, bad)
    assert main(["models", "import", str(bad), "--root", str(tmp_path / "s")]) == 2
    assert "weights-only" in capsys.readouterr().err
    wrong = tmp_path / "mnist.pth"
    torch.save({"label_emb.weight": torch.zeros(10, 10)}, wrong)
    assert main(["models", "import", str(wrong), "--root", str(tmp_path / "s")]) == 2
    assert "not an official ImageNet CGN checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "s").exists() or [p for p in (tmp_path / "s").iterdir()] == []
