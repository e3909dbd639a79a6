"""DDP on two CPU processes (gloo) from the command line, against one process with the same global batch.

Lightning's DDP relaunches the script once per extra rank (``python -m netspec.train <the same
arguments>``), so this has to be the real command line in a subprocess, not Hydra's compose API.

Why the two runs agree, and why only closely, not bit for bit:

* the data: ``data.shuffle=false`` (which the data module's own ``DistributedSampler`` keeps:
  Lightning's would shuffle the train split regardless), so rank r's batch i holds samples
  ``16 i + r + 2 j`` of the train split and the two ranks' batches together are exactly the
  single process's batch i (batch 8 per rank = global batch 16); 96 train samples give 6 whole
  batches either way, and the 32 validation samples split 16/16 (``DistributedSampler`` would pad
  an odd split with repeated samples, and the padded copies would count twice in DDP's metrics);
* the model and optimizer: the same seed builds the same weights (DDP broadcasts rank 0's
  anyway); DDP averages the ranks' gradients, and each rank's loss is the mean over its 8 samples,
  so the average is the gradient of the mean over all 16; no batch norm: without
  ``trainer.sync_batchnorm=true`` its statistics would be per rank (8 samples), and torch's
  SyncBatchNorm runs on GPUs only ("SyncBatchNorm layers only work with GPU modules" on CPU);
  no dropout, no augmentation;
* the metrics: ``val/loss`` and ``train/loss`` are logged with ``sync_dist=True`` (the mean over
  the ranks of the per-rank means over equal shares), ``val/acc`` is a torchmetrics metric whose
  counts are summed over the ranks before it is computed.

What differs is the order of floating-point additions: the batch reduction inside each conv/linear
backward, then the all-reduce of the two half-batch gradients, sums the same numbers in a different
order than one 16-sample backward does; float32 addition is not associative, so the weights differ
in the last bits after each step and the difference grows a little over training (seen: ~1e-7
relative on val/loss after 12 steps). A bug (wrong batches, gradients summed instead of averaged,
a metric of one rank only) shows up as 1e-3 or more.
"""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from netspec.train.data import make_datamodule

SPEC = """\
input: {channels: 3, size: 16}
num_classes: 4
defaults: {norm: none, act: relu}
stem: [conv: {c: 8, k: 3}]
stages:
  - conv: {c: 8, s: 2}
head: [pool: global_avg, linear: {c: num_classes}]
"""
GLOBAL_BATCH, RANKS = 16, 2
DATA = dict(name="fake", num_samples=128, num_classes=4, image_size=16, val_fraction=0.25,
            shuffle=False)
COMMON = [f"data.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in DATA.items()] + [
    "aug=none", "callbacks=minimal", "logger=csv", "seed=0",
    "optim=sgd", "optim.lr=0.1", "sched=cosine",   # big enough steps that a wrong batch shows
    "trainer.max_epochs=2", "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1",
]


def _env():
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               HYDRA_FULL_ERROR="1")
    return env


def _train(tmp_path: Path, name: str, *overrides: str, timeout: int = 240):
    cmd = [sys.executable, "-m", "netspec.train", f"spec={tmp_path / 'tiny.yaml'}", *COMMON,
           f"run_dir={tmp_path / name}", *overrides]
    # cwd: Hydra's own output folder (and the relaunched ranks') lands in tmp_path, not the repo
    return subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


EPOCH_KEYS = ("val/loss", "val/acc", "train/loss_epoch")


def _epoch_metrics(run_dir: Path) -> dict[int, dict[str, float]]:
    """{epoch: {"val/loss": ..., "val/acc": ..., "train/loss_epoch": ...}} from the CSV log."""
    out: dict[int, dict[str, float]] = {}
    with open(run_dir / "logs" / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            for k in EPOCH_KEYS:
                if row.get(k):
                    out.setdefault(int(row["epoch"]), {})[k] = float(row[k])
    return out


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]


def test_the_splits_divide_evenly_between_the_ranks():
    dm = make_datamodule(dict(DATA, batch_size=GLOBAL_BATCH), {})
    dm.setup("fit")
    n_train, n_val = len(dm.train_dataset), len(dm.val_dataset)
    assert n_train % GLOBAL_BATCH == 0, n_train   # whole batches: drop_last drops nothing
    assert n_val % RANKS == 0, n_val                 # no DistributedSampler padding


def test_ddp_on_two_cpu_processes_agrees_with_one_process(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SPEC)
    ddp = _train(tmp_path, "ddp", "trainer=ddp", f"trainer.devices={RANKS}",
                 "trainer.accelerator=cpu", f"data.batch_size={GLOBAL_BATCH // RANKS}")
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    assert "Starting with 2 processes" in ddp.stdout + ddp.stderr
    assert "distributed_backend=gloo" in ddp.stdout + ddp.stderr
    # the summary is printed once, by rank 0
    assert (ddp.stdout + ddp.stderr).count("netspec.train: tiny on fake") == 1, ddp.stdout

    one = _train(tmp_path, "one", f"data.batch_size={GLOBAL_BATCH}")
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]

    m_ddp, m_one = _epoch_metrics(tmp_path / "ddp"), _epoch_metrics(tmp_path / "one")
    assert sorted(m_ddp) == sorted(m_one) == [0, 1], (m_ddp, m_one)
    for epoch in (0, 1):
        d, o = m_ddp[epoch], m_one[epoch]
        assert sorted(d) == sorted(o) == sorted(EPOCH_KEYS), (epoch, d, o)
        assert d["val/loss"] == pytest.approx(o["val/loss"], rel=1e-4, abs=1e-6), (epoch, d, o)
        # train/loss is logged with sync_dist: the mean over both ranks' samples, not rank 0's
        assert d["train/loss_epoch"] == pytest.approx(o["train/loss_epoch"], rel=1e-4), (epoch, d, o)
        # 32 samples: accuracy moves in steps of 1/32; a near-tie could flip one of them
        assert abs(d["val/acc"] - o["val/acc"]) <= 1 / 32 + 1e-6, (epoch, d, o)

    # and the trained weights themselves (rank 0's checkpoint): equal up to rounding, while the
    # 12 SGD steps moved them far more than that
    w_ddp, w_one = _weights(tmp_path / "ddp"), _weights(tmp_path / "one")
    assert w_ddp.keys() == w_one.keys()
    for k in w_one:
        torch.testing.assert_close(w_ddp[k], w_one[k], rtol=1e-4, atol=1e-5, msg=k)


def test_multirun_with_ddp_is_refused(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SPEC)
    r = subprocess.run(
        [sys.executable, "-m", "netspec.train", "-m", f"spec={tmp_path / 'tiny.yaml'}",
         "trainer=ddp", "trainer.accelerator=cpu", *COMMON[:-3], "data.batch_size=8,16",
         f"hydra.sweep.dir={tmp_path / 'multirun'}"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "multirun (-m) cannot use trainer.strategy=ddp" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "Initializing distributed" not in r.stdout + r.stderr   # refused before any launch
