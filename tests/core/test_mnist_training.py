"""Training runs, checkpoints, resumes and exports a model the store can load."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cgn.mnist.model import MnistCGN, MnistCGNConfig
from cgn.mnist.train import TrainConfig, color_loss, imle_loss, region_moments, train
from model_store import ModelStore
from model_store.mnist import export


def test_train_checkpoint_resume_and_export(tmp_path: Path):
    run = tmp_path / "run"
    small = dict(shape_warmup=1, warmup_batch=8, batch_size=4, limit=64)  # one shape step, then full steps
    cfg = TrainConfig.preset("wildlife", steps=3, sample_every=2, checkpoint_every=2, **small)
    first = train(cfg, run, progress=False)
    assert first.step_no == 3
    assert (run / "samples" / "step_000002.png").is_file() and (run / "samples" / "final.png").is_file()
    before = {k: v.clone() for k, v in first.model.state_dict().items()}

    resumed = train(TrainConfig.preset("wildlife", steps=5, **small), run, resume=True, progress=False)
    assert resumed.step_no == 5
    after = resumed.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if after[k].is_floating_point())

    path = export(resumed.model.eval(), "wildlife", tmp_path / "store", {"command": "test", "steps": 5})
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["name"] == "mnist-wildlife" and manifest["vocabulary"]["texture"][0] == "red-white stripes"
    loaded = ModelStore(tmp_path / "store").load("mnist-wildlife")
    assert loaded.manifest.vocab("shape").resolve("shape", "seven").id == 7
    mask = loaded.model.shape([7], [0])["mask"]
    assert torch.equal(mask, resumed.model.eval().shape([7], [0])["mask"])


def test_shape_warmup_trains_the_shape_mechanism_alone_then_all_three(tmp_path: Path):
    cfg = TrainConfig.preset("colored", steps=2, shape_warmup=2, warmup_batch=8, batch_size=4, limit=64)
    trainer = train(cfg, tmp_path / "run", progress=False)
    start = TrainConfig.preset("colored", steps=0, limit=64)
    fresh = train(start, tmp_path / "fresh", progress=False).model.state_dict()
    warm = trainer.model.state_dict()

    def changed(state: dict, prefix: str) -> bool:
        return any(not torch.equal(fresh[k], state[k]) for k in fresh if k.startswith(prefix))

    assert changed(warm, "shape_im.") and changed(warm, "label_embedding.")
    assert not changed(warm, "texture_im.") and not changed(warm, "background_im.")  # textures untouched by warm-up
    cfg.steps = 3
    full = train(cfg, tmp_path / "run", resume=True, progress=False).model.state_dict()
    assert changed(full, "texture_im.") and changed(full, "background_im.")


def test_texture_prior_compares_textures_under_the_real_digits_mask(tmp_path: Path):
    """The texture discriminator trains only with the prior on; the generator loss then includes it."""
    small = dict(steps=2, shape_warmup=0, batch_size=4, limit=64)
    on = train(TrainConfig.preset("double-colored", **small), tmp_path / "on", progress=False)
    off = train(TrainConfig.preset("double-colored", texture_prior=0.0, **small), tmp_path / "off", progress=False)
    fresh = train(TrainConfig.preset("double-colored", steps=0, limit=64), tmp_path / "fresh", progress=False)

    def disc_changed(trainer) -> bool:
        before = fresh.texture_disc.state_dict()
        return any(not torch.equal(before[k], v) for k, v in trainer.texture_disc.state_dict().items())

    assert disc_changed(on) and not disc_changed(off)
    stats = on.full_step()
    assert stats["texture_prior"] > 0 and {"t_real", "t_fake"} <= stats.keys()
    assert "texture_prior" not in off.full_step()


def test_imle_pulls_the_nearest_candidate_mask_toward_each_real_digit():
    model = MnistCGN(MnistCGNConfig()).eval()  # eval: a mask depends on its own noise only
    digits = (torch.rand(6, 1, 32, 32) > 0.8).float()
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    loss = imle_loss(model, digits, labels, 5, torch.Generator().manual_seed(3))

    u = torch.randn(6, 5, model.config.latent_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        masks = model.mask_from(labels.repeat_interleave(5), u.flatten(0, 1)).reshape(6, 5, -1)
    dist = (masks - digits.reshape(6, 1, -1)).pow(2).mean(2)
    assert torch.allclose(loss, dist.min(1).values.mean(), atol=1e-6)
    assert loss < dist.mean() and loss.requires_grad


def test_imle_runs_in_the_warmup_or_in_every_step_and_is_off_by_default(tmp_path: Path):
    small = dict(steps=1, shape_warmup=1, warmup_batch=8, limit=64)
    on = train(TrainConfig.preset("double-colored", shape_imle=2.0, **small), tmp_path / "on", progress=False)
    assert on.shape_step()["imle"] > 0
    off = train(TrainConfig.preset("double-colored", **small), tmp_path / "off", progress=False)
    assert "imle" not in off.shape_step()
    assert "imle" not in on.full_step()  # the warm-up only, unless imle_all_steps
    every = train(
        TrainConfig.preset("double-colored", shape_imle=2.0, imle_all_steps=True, **small),
        tmp_path / "all",
        progress=False,
    )
    assert every.full_step()["imle"] > 0


def test_bf16_training_keeps_fp32_weights_and_finite_losses(tmp_path: Path):
    """Under bf16 autocast a mask clamped in bf16 would reach 1.0 and the binary entropy log(0)."""
    small = dict(steps=3, shape_warmup=1, warmup_batch=8, batch_size=4, limit=64, shape_imle=1.0)
    trainer = train(TrainConfig.preset("double-colored", precision="bf16", **small), tmp_path / "run", progress=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mask = trainer.model.mask_from(torch.arange(10), torch.full((10, 32), 50.0))  # saturated: clamp bites
        stats = trainer.step()
    assert mask.dtype == torch.float32 and mask.max() < 1
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values()) and "adv" in stats
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16; got 'fp16'"):
        TrainConfig.preset("colored", precision="fp16")


def _two_color_images(digit: torch.Tensor, fg: tuple[float, ...], bg: tuple[float, ...]) -> torch.Tensor:
    return digit * torch.tensor(fg)[:, None, None] + (1 - digit) * torch.tensor(bg)[:, None, None]


def test_contrast_prior_matches_color_spread_not_color():
    """Moment 1 is zero between flat images of different colors, positive for a blotched background,
    and its gradient flattens the blotches while the mean colors stay where they are."""
    digit = torch.zeros(2, 1, 32, 32)
    digit[:, :, 8:24, 12:20] = 1
    real = _two_color_images(digit, (0.9, 0.1, 0.1), (0.1, 0.1, 0.8))
    other = _two_color_images(digit, (0.2, 0.7, 0.2), (0.5, 0.5, 0.5))
    assert color_loss(other, real, digit) > 0.3 and color_loss(other, real, digit, moment=1) < 1e-3

    blotched = (real + 0.3 * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))).requires_grad_()
    mean_before, std_before = region_moments(blotched.detach(), 1 - digit)
    assert color_loss(blotched, real, digit, moment=1) > 0.2
    opt = torch.optim.SGD([blotched], lr=100.0)
    for _ in range(20):
        opt.zero_grad()
        color_loss(blotched, real, digit, moment=1).backward()
        opt.step()
    mean_after, std_after = region_moments(blotched.detach(), 1 - digit)
    assert (std_after < std_before / 3).all()
    assert torch.allclose(mean_after, mean_before, atol=1e-3)


def test_contrast_prior_is_off_in_the_presets_and_reported_when_on(tmp_path: Path):
    small = dict(steps=1, shape_warmup=0, batch_size=4, limit=64)
    assert all(TrainConfig.preset(d).contrast_prior == 0 for d in ("colored", "double-colored", "wildlife"))
    on = train(TrainConfig.preset("double-colored", contrast_prior=1.0, **small), tmp_path / "on", progress=False)
    assert on.full_step()["contrast_prior"] > 0
    off = train(TrainConfig.preset("double-colored", **small), tmp_path / "off", progress=False)
    assert "contrast_prior" not in off.full_step()


def test_polish_trains_texture_and_background_from_loaded_weights_and_keeps_the_masks(tmp_path: Path):
    small = dict(batch_size=4, limit=64)
    base = train(TrainConfig.preset("double-colored", steps=2, shape_warmup=1, **small), tmp_path / "b", progress=False)
    weights = tmp_path / "base.safetensors"
    save_file(base.model.state_dict(), weights)
    polish = dict(init_from=str(weights), polish=True, contrast_prior=1.0)
    cfg = TrainConfig.preset("double-colored", steps=3, **polish, **small)
    polished = train(cfg, tmp_path / "p", progress=False)
    before, after = base.model.state_dict(), polished.model.state_dict()

    def changed(prefix: str) -> bool:
        return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))

    assert changed("texture_im.") and changed("background_im.")
    assert not changed("shape_im.") and not changed("label_embedding.")
    stats = polished.step()
    assert set(stats) == {"style", "color_prior", "contrast_prior"} and stats["contrast_prior"] > 0
    labels, seeds = list(range(10)), list(range(10))
    masks = [trainer.model.eval().shape(labels, seeds)["mask"] for trainer in (base, polished)]
    assert torch.equal(*masks)


def test_color_by_class_matches_each_class_distribution_not_each_pair():
    """Real colors jittered per image: generated images with the same colors in another order match
    by class (loss 0) but not pair by pair; colors of the wrong class do not match either way."""
    digit = torch.zeros(6, 1, 32, 32)
    digit[:, :, 8:24, 12:20] = 1
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    shade = torch.tensor([0.1, 0.8, 0.2, 0.7, 0.3, 0.6])
    real = torch.stack([_two_color_images(digit[i], (s, 0.0, 0.0), (0.0, 0.0, s)) for i, s in enumerate(shade)])
    order = torch.tensor([4, 3, 0, 5, 2, 1])  # within-class permutation: same labels at every position
    shuffled = real[order]
    assert torch.equal(labels[order], labels)
    assert color_loss(shuffled, real, digit, labels=labels) < 1e-6 < color_loss(shuffled, real, digit)
    swapped = real[torch.tensor([1, 0, 3, 2, 5, 4])]  # each image gets the other class's colors
    assert color_loss(swapped, real, digit, labels=labels) > 0.1
