"""Training, in-process with Hydra's compose API, on a tiny spec and tiny fake data."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from netspec.errors import SpecError
from netspec.train.app import spec_overrides, train
from netspec.train.config import config_dir, register_configs, register_spec_paths
from netspec.train.data import DataError
from netspec.train.module import NonFiniteLoss
from netspec.train.optim import ConfigError, make_optimizer, make_scheduler
from netspec.train.transfer import CheckpointError, load_checkpoint

TINY = """\
input: {channels: 3, size: 16}
num_classes: 10
defaults: {norm: bn, act: relu}
stem: [conv: {c: 8, k: 3}]
stages:
  - conv: {c: 16, s: 2}
  - conv: {c: 16}
head: [pool: global_avg, linear: {c: num_classes}]
"""
FAST = ["data=fake", "data.num_samples=96", "data.image_size=16", "data.batch_size=16",
        "data.val_fraction=0.25", "aug=none", "callbacks=minimal", "logger=csv",
        "trainer.max_epochs=1", "trainer.enable_model_summary=false", "optim=adamw",
        "sched=cosine", "sched.warmup_epochs=0"]


@pytest.fixture(scope="module", autouse=True)
def _configs():
    register_configs()


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def cfg_of(*overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("train", overrides=register_spec_paths(list(overrides)))


def run(tmp_path, spec, *overrides, name="run"):
    cfg = cfg_of(f"spec={spec}", *FAST, f"run_dir={tmp_path / name}", *overrides)
    return train(cfg)


# -- configuration --------------------------------------------------------------------------------

GROUPS = sorted(p.name for p in Path(config_dir()).iterdir()
                if p.is_dir() and p.name not in ("strategy", "pruner"))  # netspec.search's


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes(group):
    for option in sorted(Path(config_dir(), group).glob("*.yaml")):
        cfg = cfg_of(f"{group}={option.stem}")
        assert OmegaConf.to_container(cfg, resolve=True)


def test_typed_configs_reject_misspelt_keys_and_wrong_types():
    with pytest.raises(ConfigCompositionException, match="lrr"):
        cfg_of("optim.lrr=0.1")
    with pytest.raises(ConfigCompositionException, match="batch_size"):
        cfg_of("data.batch_size=many")
    with pytest.raises(ConfigCompositionException, match="max_epoch"):
        cfg_of("trainer.max_epoch=3")


def test_a_misspelt_spec_name_lists_the_zoo():
    with pytest.raises(SpecError) as err:
        cfg_of("spec=mobilenet_v22")
    assert "did you mean 'mobilenet_v2'" in str(err.value) and "resnet50" in str(err.value)


def test_spec_fields_are_overridable_and_become_spec_overrides():
    cfg = cfg_of("spec=mobilenet_v2", "spec.scale.width=0.5", "spec.num_classes=10")
    assert cfg.spec.scale.width == 0.5
    original = {**cfg_of("spec=mobilenet_v2").spec}
    overrides = spec_overrides(OmegaConf.to_container(cfg.spec),
                               OmegaConf.to_container(cfg_of("spec=mobilenet_v2").spec))
    assert sorted(overrides) == ["num_classes=10", "scale.width=0.5"]
    assert original["name"] == "mobilenet_v2"


def test_optimizers_skip_weight_decay_on_norms_and_biases():
    import netspec
    model = netspec.build("mobilenet_v2", ["input.size=32"])
    for name in ("sgd", "adam", "adamw", "rmsprop"):
        opt = make_optimizer(model, OmegaConf.create(
            {**OmegaConf.to_container(cfg_of(f"optim={name}").optim), "no_decay_depthwise": True}))
        decayed, plain = opt.param_groups
        assert plain["weight_decay"] == 0.0
        # decayed: conv and linear weights, but no depthwise conv weight (one input channel)
        assert all(p.ndim >= 2 and not (p.ndim == 4 and p.shape[1] == 1)
                   for p in decayed["params"])
    with pytest.raises(ConfigError, match="did you mean 'adam'"):
        make_optimizer(model, OmegaConf.create({"name": "adamx", "weight_decay": 0,
                                                "no_decay_norm_bias": True,
                                                "no_decay_depthwise": False}))


@pytest.mark.parametrize("sched", ["none", "step", "multistep", "cosine", "onecycle", "plateau"])
def test_schedules(sched):
    model = torch.nn.Linear(2, 2)
    cfg = cfg_of(f"sched={sched}")
    opt = make_optimizer(model, cfg.optim)
    out = make_scheduler(opt, cfg.sched, steps_per_epoch=10, epochs=5)
    if sched == "none":
        assert out is None
        return
    lrs = []
    for _ in range(50 if out["interval"] == "step" else 5):
        opt.step()
        if sched == "plateau":
            out["scheduler"].step(1.0)
        else:
            out["scheduler"].step()
        lrs.append(opt.param_groups[0]["lr"])
    assert len(set(lrs)) >= 1 and all(lr >= 0 for lr in lrs)
    if sched == "cosine":
        assert lrs[-1] < lrs[len(lrs) // 4]


# -- runs -----------------------------------------------------------------------------------------

def test_trains_and_the_spec_follows_the_data(tmp_path, tiny):
    result = run(tmp_path, tiny, "data.image_size=12", "data.num_classes=4")
    assert result.spec["input"]["size"] == [12, 12] and result.spec["num_classes"] == 4
    assert Path(result.best_checkpoint).is_file() and Path(result.last_checkpoint).is_file()
    assert 0.0 <= result.best_val_acc <= 1.0
    metrics = (result.run_dir / "logs" / "metrics.csv").read_text()
    for key in ("train/loss", "val/loss", "val/acc", "val/acc_best"):
        assert key in metrics


def test_tensorboard_logger_writes_the_metrics_per_epoch(tmp_path, tiny):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    result = run(tmp_path, tiny, "logger=tensorboard", "trainer.max_epochs=2")
    events = list((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    assert {"val/acc", "val/loss", "train/loss_epoch"} <= set(acc.Tags()["scalars"])
    steps = [e.step for e in acc.Scalars("val/acc")]
    assert len(steps) == 2 and steps[0] < steps[1]      # one per epoch, at its global step
    assert acc.Scalars("val/acc")[-1].value == pytest.approx(result.metrics["val/acc"])
    assert (result.run_dir / "logs" / "metrics.csv").is_file()            # the CSV log too


def test_a_fixed_spec_input_resizes_the_data(tmp_path, tiny):
    result = run(tmp_path, tiny, "spec.input.size=20")
    assert result.spec["input"]["size"] == [20, 20]


def test_training_options_run(tmp_path, tiny):
    result = run(tmp_path, tiny, "loss.label_smoothing=0.1", "loss.class_weights=true",
                 "loss.mixup=0.2", "loss.cutmix=1.0", "optim=sgd", "sched=onecycle",
                 "aug=strong", "channels_last=true", "debug=fast_dev_run")
    assert result.best_checkpoint is None  # fast_dev_run writes no checkpoint


def test_seeded_runs_are_repeatable(tmp_path, tiny):
    a = run(tmp_path, tiny, "seed=3", name="a").metrics
    b = run(tmp_path, tiny, "seed=3", name="b").metrics
    assert a["val/loss"] == b["val/loss"] and a["train/loss_epoch"] == b["train/loss_epoch"]


def test_resume_continues_the_step_count(tmp_path, tiny):
    first = run(tmp_path, tiny, name="resume")
    before = load_checkpoint(first.last_checkpoint)   # the second run rewrites last.ckpt
    steps = before["global_step"]
    assert steps > 0
    second = run(tmp_path, tiny, "trainer.max_epochs=2", f"ckpt_path={first.last_checkpoint}",
                 name="resume")
    ckpt = load_checkpoint(second.last_checkpoint)
    assert ckpt["epoch"] > before["epoch"]           # the second epoch was trained and saved
    assert ckpt["global_step"] == 2 * steps
    assert Path(second.best_checkpoint).is_file()


def test_transfer_freezes_all_but_the_head(tmp_path, tiny):
    source = run(tmp_path, tiny, name="source")
    result = run(tmp_path, tiny, f"transfer.checkpoint={source.last_checkpoint}",
                 "transfer.train_last=0", "data.num_classes=5", name="target")
    before = load_checkpoint(source.last_checkpoint)["state_dict"]
    after = load_checkpoint(result.last_checkpoint)["state_dict"]
    for key, value in after.items():
        if key.startswith(("model.stem", "model.stages")):
            assert torch.equal(value, before[key]), f"{key} changed although frozen"
    assert after["model.head.linear1.weight"].shape == (5, 16)
    assert not torch.equal(after["model.head.linear1.weight"],
                           torch.zeros_like(after["model.head.linear1.weight"]))


def test_transfer_from_reference_weights(tmp_path, monkeypatch):
    """The real loader fetches torchvision weights; offline, the reference comes untrained."""
    import torchvision

    import netspec.train.transfer as transfer
    ref = torchvision.models.resnet18(num_classes=1000)
    monkeypatch.setattr(transfer, "load_reference", lambda name, weights: ref)
    result = run(tmp_path, "resnet18", "transfer.pretrained=reference", "debug=limit",
                 "trainer.max_epochs=1", "transfer.train_last=1")
    state = load_checkpoint(result.last_checkpoint)["state_dict"]
    assert torch.equal(state["model.stem.conv1.conv.weight"], ref.conv1.weight)


# -- bad input ------------------------------------------------------------------------------------

def test_missing_data_root(tmp_path, tiny):
    with pytest.raises(DataError, match="does not exist"):
        run(tmp_path, tiny, "data=mnist", f"data.root={tmp_path / 'nowhere'}")


def test_images_too_small_for_the_spec(tmp_path):
    with pytest.raises(SpecError, match=r"smaller than 1x1.*with the data's 3x8x8 images"):
        run(tmp_path, "vgg16", "data.image_size=8")


def test_num_classes_that_disagree_with_the_data(tmp_path, tiny):
    with pytest.raises(ConfigError, match="disagrees with the data"):
        run(tmp_path, tiny, "spec.num_classes=7")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_sync_batchnorm_with_ddp_without_cuda_is_refused_before_launching(tmp_path, tiny):
    with pytest.raises(ConfigError, match="sync_batchnorm=true needs CUDA GPUs.*runs on CPU"):
        run(tmp_path, tiny, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
            "trainer.sync_batchnorm=true")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny):
    # a step schedule that multiplies the learning rate by 1e20 after the first epoch
    args = ["optim=sgd", "optim.lr=0.01", "sched=step", "sched.step_size=1", "sched.gamma=1e20",
            "trainer.max_epochs=3"]
    with pytest.raises(NonFiniteLoss, match=r"at step \d+ .*last good checkpoint is .*last.ckpt"):
        run(tmp_path, tiny, *args, name="nan")
    ckpt = load_checkpoint(tmp_path / "nan" / "checkpoints" / "last.ckpt")
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values()
               if v.is_floating_point())


def test_checkpoint_of_another_spec_is_refused(tmp_path, tiny):
    other = run(tmp_path, tiny, name="other").last_checkpoint
    with pytest.raises(CheckpointError, match="differs from this run"):
        run(tmp_path, tiny, "spec.stages.1.conv.c=24", f"ckpt_path={other}", name="resume2")


def test_cli_prints_one_message_and_exits_2(tmp_path, tiny):
    proc = subprocess.run(
        [sys.executable, "-m", "netspec.train", f"spec={tiny}", *FAST, "data=mnist",
         f"data.root={tmp_path / 'nowhere'}", f"run_dir={tmp_path / 'cli'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


# -- eval and export ------------------------------------------------------------------------------

def test_eval_and_export(tmp_path, tiny):
    from netspec.eval import evaluate
    from netspec.export import export
    ckpt = run(tmp_path, tiny, name="ev").best_checkpoint
    report = evaluate(ckpt, out=str(tmp_path / "eval"))
    assert 0.0 <= report["test/acc"] <= 1.0
    assert len(report["confusion_matrix"]) == 10
    assert (tmp_path / "eval" / "confusion.png").stat().st_size > 0
    onnx = export(ckpt, "onnx", str(tmp_path / "net.onnx"), batch=2)
    pytest.importorskip("onnxruntime")
    assert onnx["max_abs_diff"] is not None and onnx["max_abs_diff"] < 1e-4
    ts = export(ckpt, "torchscript", str(tmp_path / "net.ts.pt"))
    assert ts["max_abs_diff"] < 1e-5


def test_short_onecycle_and_sgd_without_momentum():
    model = torch.nn.Linear(2, 2)
    cfg = cfg_of("optim=sgd", "optim.momentum=0", "sched=onecycle")
    opt = make_optimizer(model, cfg.optim)
    for total in (1, 4, 5, 8):
        sched = make_scheduler(opt, cfg.sched, steps_per_epoch=total, epochs=1)
        for _ in range(total):
            opt.step()
            if sched:
                sched["scheduler"].step()
