"""Transfer learning: weights from a checkpoint or from the real torchvision/timm loaders (built
without weights: only the download is impossible here), freezing, and unfreezing at an epoch."""
import pytest
import timm
import torch
import torchvision
from tiny_training import FAST, Record, cfg_of, run, write_tiny

from netspec.train.app import train
from netspec.train.transfer import load_checkpoint


def test_transfer_freezes_all_but_the_head(tmp_path):
    tiny = write_tiny(tmp_path)
    source = run(tmp_path, tiny, name="source")
    rec = Record()
    result = run(tmp_path, tiny, f"transfer.checkpoint={source.last_checkpoint}",
                 "transfer.train_last=0", "data.num_classes=5", name="target", callbacks=[rec])
    before = load_checkpoint(source.last_checkpoint)["state_dict"]
    after = load_checkpoint(result.last_checkpoint)["state_dict"]
    body = [k for k in after if k.startswith(("model.stem", "model.stages"))]
    assert len(body) == 18                          # 3 convs: weight, and 5 of the norm each
    for key in body:
        assert torch.equal(after[key], before[key]), f"{key} changed although frozen"
    # the new head (5 classes) started at zero and trained
    assert after["model.head.linear1.weight"].shape == (5, 16)
    for key in ("head.linear1.weight", "head.linear1.bias"):
        assert not rec.start[key].any() and after[f"model.{key}"].any(), key


# -- the reference loaders, for real ------------------------------------------------------------

def spy(monkeypatch, module, name):
    """Let ``module.name`` run as it is, keeping what it returned."""
    real, built = getattr(module, name), []

    def keep(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]
    monkeypatch.setattr(module, name, keep)
    return built


@pytest.mark.parametrize("spec, reference, library, function, pairs", [
    ("resnet18", "torchvision.resnet18", torchvision.models, "get_model",
     {"stem.conv1.conv.weight": "conv1.weight",
      "stages.0.block0.body.conv1.conv.weight": "layer1.0.conv1.weight",
      "stages.2.block1.body.conv2.conv.weight": "layer3.1.conv2.weight"}),
    ("mobilenetv1_100", "timm.mobilenetv1_100", timm, "create_model",
     {"stem.conv1.conv.weight": "conv_stem.weight",
      "stages.0.block0.conv1.conv.weight": "blocks.0.0.conv_dw.weight",
      "stages.3.block0.conv2.conv.weight": "blocks.3.0.conv_pw.weight"}),
])
def test_pretrained_weights_come_from_the_reference_loader(tmp_path, monkeypatch, capsys, spec,
                                                           reference, library, function, pairs):
    built = spy(monkeypatch, library, function)
    cfg = cfg_of(f"spec={spec}", *FAST, "data.image_size=32", "trainer.limit_train_batches=1",
                 "trainer.limit_val_batches=1", f"transfer.pretrained={reference}",
                 "transfer.weights=null",           # no download: the reference's random init
                 "transfer.train_last=1", f"run_dir={tmp_path / 'run'}")
    result = train(cfg)
    (ref,) = built
    assert sum(p.numel() for p in ref.parameters()) > 1_000_000      # the real network, 1000 classes
    out = capsys.readouterr().out
    assert f"transfer: weights from {reference}; new: head.linear1.weight, head.linear1.bias\n" in out
    state = load_checkpoint(result.last_checkpoint)["state_dict"]
    theirs = ref.state_dict()
    for ours, name in pairs.items():                # frozen, so still the reference's tensors
        assert torch.equal(state[f"model.{ours}"], theirs[name]), ours


def test_pretrained_reference_without_weights_from_the_command_line():
    # transfer.weights=null: the reference built with no weights (torchvision's weights=None)
    cfg = cfg_of("transfer.weights=null")
    assert cfg.transfer.weights is None



# -- unfreezing -----------------------------------------------------------------------------------

def unfreeze_run(tmp_path, sched: str) -> Record:
    tiny = write_tiny(tmp_path)
    source = run(tmp_path, tiny, name="source")
    rec = Record()
    run(tmp_path, tiny, f"transfer.checkpoint={source.last_checkpoint}", "transfer.train_last=0",
        "transfer.unfreeze_epoch=2", "transfer.unfreeze_lr_factor=0.1", "trainer.max_epochs=3",
        f"sched={sched}", name="target", callbacks=[rec])
    rec.source = load_checkpoint(source.last_checkpoint)["state_dict"]
    return rec


@pytest.fixture(scope="module")
def unfrozen(tmp_path_factory):
    return unfreeze_run(tmp_path_factory.mktemp("unfreeze"), "step")


def test_unfreeze_epoch_trains_the_backbone_from_that_epoch_at_a_lower_rate(unfrozen):
    stem = "stem.conv1.conv.weight"
    # the head's two groups (decayed and not), then the backbone's at a tenth of the rate, from
    # the start: 3 conv weights; 3 norms' weight and bias
    for epoch in (0, 1, 2):
        groups = unfrozen.epochs[epoch]["groups"]
        assert [g["size"] for g in groups] == [1, 1, 3, 6]
        assert groups[2]["lr"] == pytest.approx(0.1 * groups[0]["lr"])
        assert groups[3]["lr"] == pytest.approx(0.1 * groups[0]["lr"])
    # epochs 0 and 1: the head alone trains
    for epoch in (0, 1):
        assert torch.equal(unfrozen.epochs[epoch]["state"][stem], unfrozen.source[f"model.{stem}"])
    # epoch 2: the backbone trains too
    assert not torch.equal(unfrozen.epochs[2]["state"][stem], unfrozen.source[f"model.{stem}"])


def test_the_unfrozen_backbone_keeps_the_weight_decay_rules(unfrozen):
    groups = unfrozen.epochs[2]["groups"]
    # optim=adamw's 0.05 on the weights, none on norms and biases, in the backbone as in the head
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0, 0.05, 0.0]


@pytest.mark.parametrize("sched", ["cosine", "onecycle"])
def test_unfreeze_epoch_with_a_per_step_schedule(tmp_path, sched):
    rec = unfreeze_run(tmp_path, sched)
    stem = "stem.conv1.conv.weight"
    assert len(rec.epochs) == 3
    assert torch.equal(rec.epochs[1]["state"][stem], rec.source[f"model.{stem}"])
    assert not torch.equal(rec.epochs[2]["state"][stem], rec.source[f"model.{stem}"])
    # the schedule moves the backbone's rate with the head's, a tenth of it at every step
    for lrs in rec.lrs:
        assert lrs[2] == pytest.approx(0.1 * lrs[0]) and lrs[3] == pytest.approx(0.1 * lrs[0])
    assert len({round(lrs[0], 12) for lrs in rec.lrs}) > 3           # and it does move
