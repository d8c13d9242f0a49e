"""Training the ImageNet CGN on the tiny configuration."""

import json

import torch

from cgn.imagenet.biggan import init_random_
from cgn.imagenet.model import ImagenetCGN, ImagenetCGNConfig
from cgn.imagenet.train import TrainConfig, Trainer
from cgn_cli.main import main
from model_store import ModelStore


def test_total_loss_goes_down_on_a_fixed_batch():
    model = ImagenetCGN(ImagenetCGNConfig.tiny(ground_truth=True, truncation=1.0)).init_random_(0)
    init_random_(model.biggan_GT, torch.Generator().manual_seed(99))  # a ground truth the IMs must learn
    cfg = TrainConfig(
        batch_size=2,
        batch_acc=2,
        fixed_batch=True,
        feature_divisor=8,
        lr_shape=1e-3,
        lr_texture=1e-3,
        lr_background=1e-3,
    )
    trainer = Trainer(model, cfg)
    gt_before = {k: v.clone() for k, v in model.biggan_GT.state_dict().items()}
    u2_before = {k: v.clone() for k, v in model.u2net.state_dict().items()}
    shape_before = model.f_shape.embeddings.weight.clone()
    history = [trainer.step() for _ in range(4)]
    totals = [h["total"] for h in history]
    assert totals[-1] < 0.8 * totals[0], totals
    assert set(history[0]) == {"l1", "perceptual", "binary", "mask_interval", "texture", "background", "total"}
    # the mechanisms learn; the pseudo ground truth and U2-Net stay frozen (and in eval mode)
    assert not torch.equal(model.f_shape.embeddings.weight, shape_before)
    assert all(torch.equal(model.biggan_GT.state_dict()[k], v) for k, v in gt_before.items())
    assert all(torch.equal(model.u2net.state_dict()[k], v) for k, v in u2_before.items())
    assert not model.u2net.training and not model.biggan_GT.training and model.f_shape.training


def test_cgn_train_imagenet_writes_losses_sheets_checkpoints_and_exports(tmp_path):
    run = tmp_path / "run"
    store = tmp_path / "store"
    argv = [
        "train",
        "imagenet",
        "--tiny",
        "--run-dir",
        str(run),
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--batch-acc",
        "1",
        "--sample-every",
        "1",
        "--checkpoint-every",
        "2",
        "--export",
        "tiny-trained",
        "--store",
        str(store),
    ]
    assert main(argv) == 0
    lines = [json.loads(x) for x in (run / "losses.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2] and all(x["total"] > 0 for x in lines)
    sheet = run / "samples" / "step-0000002.png"
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = ModelStore(run / "checkpoints").load("step-0000002")
    assert ckpt.manifest.config["ground_truth"] is True  # resumable: keeps the pseudo ground truth
    exported = ModelStore(store).load("tiny-trained")
    assert exported.manifest.config["ground_truth"] is False and not hasattr(exported.model, "biggan_GT")
    out = exported.model.texture([345], [1])
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def test_export_without_a_store_fails_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CGN_MODEL_STORE", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    argv = ["train", "imagenet", "--tiny", "--run-dir", str(tmp_path / "run"), "--export", "x"]
    assert main(argv) == 2
    assert "CGN_MODEL_STORE is not set" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
