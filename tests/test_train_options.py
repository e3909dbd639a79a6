"""Each training option does what it says, seen from inside tiny runs: the loss options, batch
mixing, channels_last, the optimizer and its per-step schedule, augmentation, debug=overfit,
test=true, curves.png, the experiment preset; compile=true and the default command are slow."""
import re
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_training import FAST, Record, cfg_of, run, write_tiny

from netspec.train.app import train
from netspec.train.optim import make_scheduler

OPTIONS = ["loss.label_smoothing=0.1", "loss.class_weights=true", "loss.mixup=0.2",
           "loss.cutmix=1.0", "optim=sgd", "sched=onecycle", "aug=strong", "channels_last=true",
           # 72 train images (and 24 val) in 9 whole batches of 8, in the same order each epoch
           "data.num_samples=96", "data.shuffle=false", "data.batch_size=8", "trainer.max_epochs=2"]
BATCHES = 9


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    """One run with every option that changes a training batch, the loss or the optimizer."""
    tmp = tmp_path_factory.mktemp("options")
    rec = Record()
    run(tmp, write_tiny(tmp), *OPTIONS, callbacks=[rec])
    assert len(rec.batches) == len(rec.inputs) == len(rec.losses) == 2 * BATCHES
    return rec


def mixing(x: torch.Tensor, seen: torch.Tensor) -> tuple[str, float]:
    """How the network's input ``seen`` was made from the batch ``x`` and its neighbour
    ``x.roll(1, 0)``: ("mixup", lam) for lam * x + (1 - lam) * neighbour, or ("cutmix", lam) for
    a box of the neighbour pasted into x, lam being the share of x left."""
    other = x.roll(1, 0)
    pasted = (seen != x).any(dim=1)                          # N, H, W
    if pasted.any():
        n, rows, cols = pasted.nonzero(as_tuple=True)
        box = torch.zeros_like(pasted)
        box[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
        if torch.equal(seen, torch.where(box.unsqueeze(1), other, x)):
            return "cutmix", 1.0 - float(box[0].float().mean())
    diff = x - other
    lam = float(((seen - other) * diff).sum() / (diff * diff).sum())
    torch.testing.assert_close(seen, lam * x + (1 - lam) * other, rtol=0, atol=1e-5,
                               msg="the network's input is neither a MixUp nor a CutMix of its batch")
    return "mixup", lam


def test_mixup_and_cutmix_each_mix_some_batches(options):
    kinds = [mixing(x.contiguous(), seen.contiguous())[0]
             for (x, _), seen in zip(options.batches, options.inputs)]
    assert set(kinds) == {"mixup", "cutmix"}, kinds


def test_the_loss_smooths_and_weighs_the_mixed_labels(options):
    # inverse class frequency of the train split: the first epoch saw each train image once
    labels = torch.cat([y for _, y in options.batches[:BATCHES]])
    assert len(labels) == 72
    counts = torch.bincount(labels, minlength=10).float()
    weights = torch.where(counts > 0, len(labels) / (10 * counts), torch.zeros(()))
    plain = []
    for (x, y), seen, logits, loss in zip(options.batches, options.inputs, options.logits,
                                          options.losses):
        _, lam = mixing(x.contiguous(), seen.contiguous())
        one_hot = F.one_hot(y, 10).float()
        target = lam * one_hot + (1 - lam) * one_hot.roll(1, 0)
        expected = F.cross_entropy(logits, target, weight=weights, label_smoothing=0.1)
        assert float(loss) == pytest.approx(float(expected), rel=1e-5)
        plain.append(float(F.cross_entropy(logits, y)))
    # and the options matter: the plain loss of the same logits is another number
    assert min(abs(float(a) - b) for a, b in zip(options.losses, plain)) > 1e-3


def test_channels_last_reaches_the_network(options):
    for seen in options.inputs:
        assert seen.is_contiguous(memory_format=torch.channels_last) and not seen.is_contiguous()
    stem = options.epochs[0]["state"]["stem.conv1.conv.weight"]          # 8 x 3 x 3 x 3
    assert stem.is_contiguous(memory_format=torch.channels_last) and not stem.is_contiguous()


def test_sgd_with_nesterov_and_onecycle_stepped_every_batch(options):
    opt = options.optimizer
    assert type(opt) is torch.optim.SGD
    assert opt.defaults["momentum"] == 0.9     # (which onecycle then cycles between 0.85 and 0.95)
    assert [(g["nesterov"], g["weight_decay"]) for g in opt.param_groups] == [(True, 5e-4), (True, 0.0)]
    # the learning rate of each batch is the onecycle of 9 steps per epoch over 2 epochs at 0.1
    reference = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = make_scheduler(reference, cfg_of("sched=onecycle").sched, steps_per_epoch=BATCHES,
                           epochs=2)["scheduler"]
    expected = []
    for _ in range(2 * BATCHES):
        expected.append(reference.param_groups[0]["lr"])
        reference.step()
        sched.step()
    assert [lrs[0] for lrs in options.lrs] == pytest.approx(expected, rel=1e-9)
    assert max(expected) == pytest.approx(0.1, rel=0.01) and len(set(expected)) == 2 * BATCHES


def test_strong_augmentation_draws_anew_each_epoch(options):
    for j in range(BATCHES):
        (x0, y0), (x1, y1) = options.batches[j], options.batches[BATCHES + j]
        assert torch.equal(y0, y1)                   # the same images (no shuffling) ...
        assert not torch.equal(x0, x1)               # ... augmented differently


def test_without_options_the_batches_reach_the_network_as_they_are(tmp_path):
    # the counterpart of the tests above: no mixing, the same batch each epoch, contiguous input
    rec = Record()
    run(tmp_path, write_tiny(tmp_path), "data.shuffle=false", "trainer.max_epochs=2",
        callbacks=[rec])
    assert len(rec.batches) == 8
    for (x, y), seen, logits, loss in zip(rec.batches, rec.inputs, rec.logits, rec.losses):
        assert torch.equal(seen, x) and seen.is_contiguous()
        assert float(loss) == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-6)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(rec.batches[:4], rec.batches[4:]))


# -- debug, test, curves, presets ------------------------------------------------------------------

def test_debug_overfit_learns_two_batches_by_heart(tmp_path):
    rec = Record()
    # the preset's own 40 epochs (not FAST's 1); random labels, so only memorising brings the loss down
    fast = [o for o in FAST if not o.startswith("trainer.max_epochs")]
    result = run(tmp_path, write_tiny(tmp_path), "debug=overfit", "optim.lr=0.03", "sched=none",
                 callbacks=[rec], fast=fast)
    assert len(rec.batches) == 80                                  # 2 batches x 40 epochs
    for i, (x, y) in enumerate(rec.batches):
        assert torch.equal(x, rec.batches[i % 2][0]) and torch.equal(y, rec.batches[i % 2][1])
    assert not torch.equal(rec.batches[0][0], rec.batches[1][0])
    assert result.metrics["train/acc"] == 1.0
    assert result.metrics["train/loss_epoch"] < 0.05 < 2.0 < float(rec.losses[0])


def test_test_true_evaluates_the_best_checkpoint(tmp_path):
    from netspec.eval import evaluate
    result = run(tmp_path, write_tiny(tmp_path), "test=true", "trainer.max_epochs=2")
    report = evaluate(result.best_checkpoint, out=str(tmp_path / "eval"))
    assert result.metrics["test/acc"] == pytest.approx(report["test/acc"], abs=1e-6)
    assert result.metrics["test/loss"] == pytest.approx(report["test/loss"], rel=1e-5)
    # the confusion matrix counts the same test images as the accuracy
    matrix = np.array(report["confusion_matrix"])
    assert np.trace(matrix) / matrix.sum() == pytest.approx(report["test/acc"])


def colour_pixels(image: np.ndarray, hex_colour: str) -> int:
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(image[..., :3] - rgb).max(axis=-1) < 0.02).sum())


def test_curves_png_plots_train_and_val_per_epoch(tmp_path, capsys):
    result = run(tmp_path, write_tiny(tmp_path), "callbacks.curves=true", "trainer.max_epochs=3")
    png = result.run_dir / "curves.png"
    assert f"curves: {png}" in capsys.readouterr().out
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (400, 1400)                  # 14 x 4 inches at 100 dpi
    loss, acc, lr = image[:, :466], image[:, 466:933], image[:, 933:]
    for panel in (loss, acc):                              # train in blue, val in orange
        assert colour_pixels(panel, "#1f77b4") > 100 and colour_pixels(panel, "#ff7f0e") > 100
    assert colour_pixels(lr, "#2ca02c") > 100               # the learning rate, in green


def test_experiment_cifar10_resnet20_is_he_et_al_section_4_2():
    cfg = cfg_of("experiment=cifar10_resnet20")
    assert (cfg.spec.name, cfg.data.name, cfg.data.batch_size) == ("resnet20", "cifar10", 128)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay,
            cfg.optim.nesterov) == ("sgd", 0.1, 0.9, 1e-4, False)
    assert (cfg.sched.name, list(cfg.sched.milestones), cfg.sched.gamma) == \
        ("multistep", [82, 123], 0.1)
    assert cfg.trainer.max_epochs == 164 and cfg.trainer.accelerator == "gpu"
    assert (cfg.aug.hflip, cfg.aug.crop_padding) == (0.5, 4)


def test_experiment_cifar10_resnet20_trains_as_given(tmp_path):
    # the preset itself, on fake CIFAR-sized images and on the CPU, for a few batches
    rec = Record()
    cfg = cfg_of("experiment=cifar10_resnet20", "trainer=cpu", "data=fake", "data.num_samples=64",
                 "data.image_size=32", "data.batch_size=16", "trainer.max_epochs=1",
                 "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                 "callbacks=minimal", "trainer.enable_model_summary=false",
                 f"run_dir={tmp_path / 'run'}")
    result = train(cfg, extra_callbacks=[rec])
    assert result.spec["name"] == "resnet20" and result.spec["input"]["size"] == [32, 32]
    assert type(rec.optimizer) is torch.optim.SGD
    assert [(g["lr"], g["weight_decay"], g["nesterov"]) for g in rec.optimizer.param_groups] == \
        [(0.1, 1e-4, False), (0.1, 0.0, False)]
    assert isinstance(rec.scheduler, torch.optim.lr_scheduler.MultiStepLR)
    assert dict(rec.scheduler.milestones) == {82: 1, 123: 1}


# -- slow ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_compile_true_trains_a_compiled_network_to_the_same_numbers(tmp_path):
    """torch.compile (inductor, C++ on the CPU): 50-110 s on 2 shared cores, nearly all of it
    compiling (about 6 s when inductor's cache already holds the kernels)."""
    import torch._dynamo
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    tiny = write_tiny(tmp_path)
    compiled = run(tmp_path, tiny, "compile=true", name="compiled")
    assert counters["stats"]["unique_graphs"] >= 1          # dynamo compiled the forward
    eager = run(tmp_path, tiny, name="eager")
    for key in ("train/loss_epoch", "val/loss"):
        assert compiled.metrics[key] == pytest.approx(eager.metrics[key], rel=1e-4), key


@pytest.mark.slow
def test_the_default_command_reaches_90_percent(tmp_path):
    """README: `python -m netspec.train spec=mobilenet_v2`, ≈96% val top-1 (seen: 0.9721 in 67 s)."""
    proc = subprocess.run([sys.executable, "-m", "netspec.train", "spec=mobilenet_v2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    acc = float(re.search(r"best val/acc (\d\.\d+)", proc.stdout).group(1))
    print(f"default command: best val/acc {acc}")
    assert acc >= 0.90, f"best val/acc {acc}"
