"""Training, in-process with Hydra's compose API, on a tiny spec and tiny fake data."""
import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_training import Record, cfg_of, run, write_tiny

from netspec.errors import CheckpointError, ConfigError, DataError, NonFiniteLoss, SpecError
from netspec.train.app import spec_overrides
from netspec.train.config import config_dir
from netspec.train.transfer import load_checkpoint


@pytest.fixture
def tiny(tmp_path):
    return write_tiny(tmp_path)


# -- configuration --------------------------------------------------------------------------------

GROUPS = sorted(p.name for p in Path(config_dir()).iterdir()
                if p.is_dir() and p.name not in ("strategy", "pruner",  # netspec.search's
                                                 "hydra"))              # Hydra's own settings


def assert_within(expected: dict, cfg, where: str):
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_within(value, cfg[key], f"{where}.{key}")
        else:
            got = cfg[key]
            got = list(got) if OmegaConf.is_list(got) else got
            assert got == value, f"{where}.{key}: {got!r}, the file says {value!r}"


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes_with_its_values(group):
    options = sorted(Path(config_dir(), group).glob("*.yaml"))
    assert options
    for option in options:
        cfg = cfg_of(f"{group}={option.stem}")
        values = OmegaConf.to_container(OmegaConf.load(option))   # as Hydra parses it
        values.pop("defaults", None)
        if "@package _global_" in option.read_text().splitlines()[0]:
            assert_within(values, cfg, option.name)
        else:
            assert_within(values, cfg[group], option.name)


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


# -- runs -----------------------------------------------------------------------------------------

def val_acc_per_epoch(run_dir: Path) -> dict[int, float]:
    with open(run_dir / "logs" / "metrics.csv", newline="") as f:
        return {int(r["epoch"]): float(r["val/acc"]) for r in csv.DictReader(f) if r["val/acc"]}


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("three")
    # seed=1: a run whose last epoch is not its best (the resumable loader's order, issue 14)
    return run(tmp, write_tiny(tmp), "data.image_size=12", "data.num_classes=4", "optim.lr=0.1",
               "trainer.max_epochs=3", "seed=1")


def test_trains_and_the_spec_follows_the_data(three_epochs):
    result = three_epochs
    assert result.spec["input"]["size"] == [12, 12] and result.spec["num_classes"] == 4
    assert load_checkpoint(result.last_checkpoint)["hyper_parameters"]["spec"] == result.spec
    # the best epoch is the first with the highest val/acc of the log, and its checkpoint holds it
    accs = val_acc_per_epoch(result.run_dir)
    assert sorted(accs) == [0, 1, 2]
    best = max(accs.values())
    assert accs[2] < best                            # (so the last epoch's would not do)
    assert result.best_val_acc == pytest.approx(best)
    assert result.best_epoch == min(e for e, a in accs.items() if a == best)
    assert Path(result.best_checkpoint).name == f"best-epoch{result.best_epoch}.ckpt"
    assert load_checkpoint(result.best_checkpoint)["epoch"] == result.best_epoch
    metrics = (result.run_dir / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss_step", "train/loss_epoch", "train/acc", "val/loss", "val/acc",
            "val/acc_best"} <= set(metrics)


def test_last_checkpoint_holds_the_last_epoch(three_epochs):
    assert three_epochs.best_epoch != 2              # (else the two would agree by chance)
    last = load_checkpoint(three_epochs.last_checkpoint)
    assert (last["epoch"], last["global_step"]) == (2, 12)          # 3 epochs of 4 batches


def test_tensorboard_logger_writes_the_metrics_per_epoch(tmp_path, tiny):
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
    rec = Record()
    result = run(tmp_path, tiny, "spec.input.size=20", callbacks=[rec])    # the data's are 16x16
    assert result.spec["input"]["size"] == [20, 20]
    assert {tuple(x.shape[1:]) for x, _ in rec.batches} == {(3, 20, 20)}


def test_debug_fast_dev_run_is_one_batch_and_no_best_checkpoint(tmp_path, tiny):
    # (each training option's effect: tests/test_train_options.py)
    rec = Record()
    result = run(tmp_path, tiny, "debug=fast_dev_run", "trainer.max_epochs=5", callbacks=[rec])
    assert len(rec.batches) == 1 and len(rec.epochs) == 1
    assert result.best_checkpoint is None and result.last_checkpoint is None   # none, as it says


def test_seeded_runs_are_repeatable(tmp_path, tiny):
    a = run(tmp_path, tiny, "seed=3", name="a").metrics
    b = run(tmp_path, tiny, "seed=3", name="b").metrics
    c = run(tmp_path, tiny, "seed=4", name="c").metrics
    assert a["val/loss"] == b["val/loss"] and a["train/loss_epoch"] == b["train/loss_epoch"]
    assert c["val/loss"] != a["val/loss"] and c["train/loss_epoch"] != a["train/loss_epoch"]


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


def test_a_backbone_with_named_outputs_is_not_trained_as_a_classifier(tmp_path):
    with pytest.raises(ConfigError, match=r"trains classifiers.*returns a dict of 4 maps "
                                          r"\(its outputs: c2, c3, c4, c5\)"):
        run(tmp_path, "resnet50_backbone", "data=fake", "data.image_size=32")


def test_a_network_that_ends_in_a_map_is_not_trained_as_a_classifier(tmp_path, tiny):
    with pytest.raises(ConfigError, match=r"trains classifiers.*ends in a 10x\d+x\d+ map"):
        run(tmp_path, tiny, "spec.head=[{conv: {c: 10, k: 1}}]")


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


# -- eval and export ------------------------------------------------------------------------------

def test_eval_and_export(tmp_path, tiny):
    from netspec.eval import evaluate
    from netspec.export import export
    result = run(tmp_path, tiny, name="ev")
    ckpt = result.best_checkpoint
    report = evaluate(ckpt, out=str(tmp_path / "eval"))
    # fake data has no test split: the test is the validation split, which the run measured
    assert report["test/acc"] == pytest.approx(result.best_val_acc)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 24             # the 24 val images
    assert np.trace(matrix) / matrix.sum() == pytest.approx(report["test/acc"])
    assert (tmp_path / "eval" / "confusion.png").stat().st_size > 0
    onnx = export(ckpt, "onnx", str(tmp_path / "net.onnx"), batch=2)
    assert onnx["max_abs_diff"] < 1e-4            # None would mean onnxruntime did not check it
    ts = export(ckpt, "torchscript", str(tmp_path / "net.ts.pt"))
    assert ts["max_abs_diff"] < 1e-5
