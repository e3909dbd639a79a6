"""The run's report: the held-out test split and the reports that name their split, the epoch
line, summary.csv (across a resume), curves.png and confusion.png, and the fast_dev_run preset."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from tiny_training import run, write_tiny

from netspec.errors import DataError, NonFiniteLoss
from netspec.train.data import make_datamodule
from netspec.train.data.splits import holdout_splits
from netspec.train.plots import confusion_figure, curves_figure
from netspec.train.report import read_summary

HELD_OUT = ["data.test_fraction=0.25"]     # FAST's 96 fake images: 24 test, 24 val, 48 train


@pytest.fixture
def tiny(tmp_path):
    return write_tiny(tmp_path)


# -- the held-out test split ---------------------------------------------------------------------

def test_held_out_test_split_is_disjoint_stratified_and_seeded():
    y = torch.arange(300) % 10
    train, val, test = holdout_splits(y, 0.2, 0.1, seed=0)
    assert len(test) == 30 and len(val) == 60 and len(train) == 210
    everything = torch.cat([train, val, test])
    assert torch.equal(everything.sort().values, torch.arange(300))      # disjoint, nothing lost
    assert torch.bincount(y[test]).tolist() == [3] * 10                  # every class, in proportion
    again = holdout_splits(y, 0.2, 0.1, seed=0)
    assert all(torch.equal(a, b) for a, b in zip((train, val, test), again))
    assert not torch.equal(test, holdout_splits(y, 0.2, 0.1, seed=1)[2])


def test_digits_holds_out_a_test_split_and_says_so():
    dm = make_datamodule({"name": "digits", "test_fraction": 0.1})
    dm.setup()
    n = (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset))
    assert sum(n) == 1797 and n[2] == 180 and dm.test_split == "held out"
    assert dm.test_label() == "test (held out, 180 images)"
    assert "180 test (held out)" in dm.describe()
    same = make_datamodule({"name": "digits"})           # no test_fraction: test is val, said so
    same.setup()
    assert same.test_dataset is same.val_dataset and same.test_split == "val"
    assert same.test_label().startswith("val (359 images; digits has no test split")


def test_the_digits_preset_holds_out_a_test_split():
    from tiny_training import cfg_of
    assert cfg_of("data=digits").data.test_fraction == 0.1


@pytest.mark.parametrize("fractions,match", [({"test_fraction": 1.0}, "test_fraction=1.0"),
                                             ({"test_fraction": 0.5, "val_fraction": 0.5},
                                              "sum must be below 1")])
def test_bad_test_fraction_is_refused(fractions, match):
    with pytest.raises(DataError, match=match):
        make_datamodule({"name": "digits", **fractions}).setup()


# -- the console report, summary.csv, figures ----------------------------------------------------

def _metrics_by_epoch(run_dir) -> dict[int, dict]:
    out: dict[int, dict] = {}
    with open(run_dir / "logs" / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if v not in ("", None) and k not in ("epoch", "step"):
                    out.setdefault(int(row["epoch"]), {})[k] = float(v)
    return out


def test_test_true_reports_the_held_out_split_and_the_last_checkpoint(tmp_path, tiny, capsys):
    result = run(tmp_path, tiny, *HELD_OUT, "test=true", "trainer.max_epochs=2",
                 "callbacks.curves=true")
    out = capsys.readouterr().out
    assert "  test (held out, 24 images): acc " in out and "(the best checkpoint)" in out
    assert f"  last checkpoint {result.last_checkpoint}" in out
    assert result.last_checkpoint.endswith("last.ckpt")
    # one plain line per epoch, with what it measured
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["0/1", "1/1"]
    assert all(" samples/s " in line and "val loss" in line for line in lines)
    # summary.csv: one row per epoch, the same values as Lightning's log
    rows = read_summary(result.run_dir / "summary.csv")
    logged = _metrics_by_epoch(result.run_dir)
    assert [r["epoch"] for r in rows] == [0, 1]
    for r in rows:
        m = logged[r["epoch"]]
        assert r["val_acc"] == pytest.approx(m["val/acc"])
        assert r["val_loss"] == pytest.approx(m["val/loss"])
        assert r["train_acc"] == pytest.approx(m["train/acc"])
        assert r["train_loss"] == pytest.approx(m["train/loss_epoch"], rel=1e-5)
        assert r["samples_per_s"] > 0 and r["seconds"] > 0
    assert f"acc {rows[0]['val_acc']:.4f}" in lines[0]
    assert (result.run_dir / "curves.png").stat().st_size > 0
    assert (result.run_dir / "confusion.png").stat().st_size > 0


def test_eval_names_the_split_it_reports(tmp_path, tiny):
    from netspec.eval import evaluate
    held = run(tmp_path, tiny, *HELD_OUT, name="held")
    report = evaluate(held.best_checkpoint, out=str(tmp_path / "e1"))
    assert report["split_label"] == "test (held out, 24 images)"
    assert np.array(report["confusion_matrix"]).sum() == 24
    plain = run(tmp_path, tiny, name="plain")           # fake data, no test_fraction: val
    report = evaluate(plain.best_checkpoint, out=str(tmp_path / "e2"))
    assert report["test_split"] == "val" and report["split_label"].startswith("val (24 images;")
    assert report["test/acc"] == pytest.approx(plain.best_val_acc)
    val = evaluate(held.best_checkpoint, split="val", out=str(tmp_path / "e3"))
    assert val["split_label"].startswith("val (24 images; the split that picked")


def test_eval_command_prints_the_split(tmp_path, tiny, capsys):
    from netspec.eval import main
    held = run(tmp_path, tiny, *HELD_OUT, name="held")
    capsys.readouterr()
    main([f"ckpt_path={held.best_checkpoint}", f"out={tmp_path / 'e'}"])
    assert capsys.readouterr().out.startswith("test (held out, 24 images): acc ")


def test_resume_into_a_new_run_dir_keeps_the_whole_history(tmp_path, tiny):
    first = run(tmp_path, tiny, "trainer.max_epochs=2", name="first")
    second = run(tmp_path, tiny, "trainer.max_epochs=3", f"ckpt_path={first.last_checkpoint}",
                 "callbacks.curves=true", name="second")
    before = read_summary(first.run_dir / "summary.csv")
    after = read_summary(second.run_dir / "summary.csv")
    assert [r["epoch"] for r in after] == [0, 1, 2]
    assert after[:2] == before                  # the earlier epochs, as the first run measured
    assert (second.run_dir / "curves.png").stat().st_size > 0


def test_a_nan_stop_still_draws_the_curves(tmp_path, tiny):
    args = ["optim=sgd", "optim.lr=0.01", "sched=step", "sched.step_size=1", "sched.gamma=1e20",
            "trainer.max_epochs=3", "callbacks.curves=true"]
    with pytest.raises(NonFiniteLoss, match=r"last good checkpoint is .*last.ckpt; curves: "):
        run(tmp_path, tiny, *args, name="nan")
    assert (tmp_path / "nan" / "curves.png").stat().st_size > 0
    assert [r["epoch"] for r in read_summary(tmp_path / "nan" / "summary.csv")] == [0]


def test_fast_dev_run_keeps_no_checkpoint_and_names_the_epoch(tmp_path, tiny, capsys):
    result = run(tmp_path, tiny, "debug=fast_dev_run", "logger=csv")
    out = capsys.readouterr().out
    assert result.last_checkpoint is None and not (result.run_dir / "checkpoints").exists()
    assert "best val/acc " in out and " at epoch 0\n" in out and "None" not in out


def test_curves_have_whole_epoch_ticks_and_an_lr_panel():
    rows = [{"epoch": e, "lr": 0.1 / (e + 1), "train_loss": 2.0 - e / 10, "val_loss": 2.1,
             "train_acc": 0.1 * e, "val_acc": 0.1} for e in range(7)]
    fig = curves_figure(rows, [[e / 2, 0.1 / (e + 1)] for e in range(14)])
    loss, acc, lr = fig.axes
    assert lr.get_title() == "learning rate" and len(lr.lines[0].get_xdata()) == 14
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
    assert [line.get_label() for line in acc.lines] == ["train", "val"]


def test_confusion_has_a_title_and_a_colour_bar():
    fig = confusion_figure(np.eye(3, dtype=int) * 4, ["a", "b", "c"], title="test (held out)")
    image_ax, bar_ax = fig.axes
    assert image_ax.get_title() == "test (held out)" and bar_ax.get_ylabel() == "images"
