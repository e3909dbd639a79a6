"""Exact resume after a kill: the resumed run ends with the uninterrupted run's weights, exactly."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from pytorch_lightning import Callback
from tiny_training import run, write_tiny

from netspec.errors import CheckpointError, ConfigError
from netspec.train.resume import RECOVERY, atomic_save, resume_checkpoint
from netspec.train.transfer import load_checkpoint

# 3 epochs of 4 steps on fake data, with augmentation (data side) and MixUp (drawn in the step
# from torch's global generator), a recovery checkpoint after every step
RANDOM = ["aug=digits", "data.image_size=16", "loss.mixup=0.2", "trainer.max_epochs=3",
          "callbacks.recovery_every=1", "seed=1"]
STEPS_PER_EPOCH = 4


class Killed(RuntimeError):
    pass


class KillAt(Callback):
    """Stops the run with an error after the step ``step``, as the next batch starts (its
    recovery checkpoint written; the batch already drawn)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Killed(f"killed after step {self.step}")


def tensors(ckpt_path) -> dict:
    return load_checkpoint(str(ckpt_path))["state_dict"]


def assert_identical(a: dict, b: dict):
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    tiny = write_tiny(tmp)
    result = run(tmp, tiny, *RANDOM, name="whole")
    return tmp, tiny, tensors(result.last_checkpoint), result


# -- in-process: stopped after a chosen step, resumed with ckpt_path=last ------------------------

@pytest.mark.parametrize("step", [2, STEPS_PER_EPOCH, STEPS_PER_EPOCH + 3])  # mid, end, mid
def test_a_run_stopped_after_any_step_resumes_to_the_same_weights(uninterrupted, step, capsys):
    tmp, tiny, whole, _ = uninterrupted
    name = f"stopped{step}"
    with pytest.raises(Killed):
        run(tmp, tiny, *RANDOM, "ckpt_path=last", name=name, callbacks=[KillAt(step)])
    assert load_checkpoint(str(tmp / name / "checkpoints" / RECOVERY))["global_step"] == step
    resumed = run(tmp, tiny, *RANDOM, "ckpt_path=last", name=name)
    epoch = (step - 1) // STEPS_PER_EPOCH            # the epoch of the last step trained
    batch = step - epoch * STEPS_PER_EPOCH
    assert f"resume: epoch {epoch}, batch {batch}, step {step}" in capsys.readouterr().out
    assert_identical(tensors(resumed.last_checkpoint), whole)
    assert not (tmp / name / "checkpoints" / RECOVERY).exists()   # removed when training ended


def test_resumed_into_a_new_run_dir_keeps_the_best_checkpoint_bookkeeping(uninterrupted):
    tmp, tiny, whole, full = uninterrupted
    with pytest.raises(Killed):
        run(tmp, tiny, *RANDOM, name="old", callbacks=[KillAt(2 * STEPS_PER_EPOCH + 1)])
    old = tmp / "old" / "checkpoints"
    old_files = sorted(p.name for p in old.iterdir())
    resumed = run(tmp, tiny, *RANDOM, f"ckpt_path={old / RECOVERY}", name="new")
    assert_identical(tensors(resumed.last_checkpoint), whole)
    # the same best epoch and score as the uninterrupted run, its file copied into the new run
    assert resumed.best_val_acc == full.best_val_acc and resumed.best_epoch == full.best_epoch
    assert Path(resumed.best_checkpoint).parent == tmp / "new" / "checkpoints"
    assert Path(resumed.best_checkpoint).name == Path(full.best_checkpoint).name
    assert_identical(tensors(resumed.best_checkpoint), tensors(full.best_checkpoint))
    assert sorted(p.name for p in old.iterdir()) == old_files        # the old run untouched
    assert resumed.metrics["val/acc_best"] == full.metrics["val/acc_best"]


# -- which checkpoint, written how ----------------------------------------------------------------

def test_resume_checkpoint_picks_the_newest_of_last_and_recovery(tmp_path):
    folder = tmp_path / "checkpoints"
    assert resume_checkpoint("last", tmp_path) is None               # nothing yet: a fresh start
    folder.mkdir()
    last, recovery = folder / "last.ckpt", folder / RECOVERY
    last.write_bytes(b"1")
    assert resume_checkpoint("last", tmp_path) == str(last)
    recovery.write_bytes(b"2")
    os.utime(last, ns=(1, 10**18))
    os.utime(recovery, ns=(1, 2 * 10**18))
    assert resume_checkpoint("last", tmp_path) == str(recovery)
    assert resume_checkpoint(str(last), tmp_path / "elsewhere") == str(recovery)
    assert resume_checkpoint(str(tmp_path), tmp_path / "elsewhere") == str(recovery)
    os.utime(last, ns=(1, 3 * 10**18))
    assert resume_checkpoint("last", tmp_path) == str(last)
    other = folder / "best-epoch3.ckpt"
    assert resume_checkpoint(str(other), tmp_path) == str(other)     # a named file, as given
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no last.ckpt or recovery.ckpt"):
        resume_checkpoint(str(tmp_path / "empty"), tmp_path)


class _Trainer:
    """What atomic_save uses of a Trainer; ``fail_after`` bytes written, it dies mid-write."""
    is_global_zero = True

    def __init__(self, fail_after: int | None = None):
        self.fail_after = fail_after

    def save_checkpoint(self, path):
        data = b"x" * 1000
        with open(path, "wb") as f:
            if self.fail_after is not None:
                f.write(data[:self.fail_after])
                raise Killed("killed while writing")
            f.write(data)


def test_a_checkpoint_half_written_never_replaces_a_good_one(tmp_path):
    path = tmp_path / RECOVERY
    atomic_save(_Trainer(), path)
    assert path.read_bytes() == b"x" * 1000
    path.write_bytes(b"good")
    with pytest.raises(Killed):
        atomic_save(_Trainer(fail_after=10), path)
    assert path.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{RECOVERY}.tmp", RECOVERY]


@pytest.mark.parametrize("value", ["-1", "-5"])
def test_a_negative_recovery_every_is_one_message(tmp_path, value):
    tiny = write_tiny(tmp_path)
    with pytest.raises(ConfigError, match=rf"callbacks.recovery_every={value}: give a number"):
        run(tmp_path, tiny, f"callbacks.recovery_every={value}")


# -- the real command, killed with SIGKILL --------------------------------------------------------

def _command(tiny, run_dir):
    return [sys.executable, "-m", "netspec.train", f"spec={tiny}", "data=digits", "data.size=16",
            "data.batch_size=64", "aug=digits", "loss.mixup=0.2", "trainer.max_epochs=2",
            "callbacks=minimal", "callbacks.recovery_every=1", "logger=none",
            "trainer.enable_model_summary=false", "seed=0", "ckpt_path=last",
            f"run_dir={run_dir}"]


def _step_of(path: Path) -> int:
    try:
        return load_checkpoint(str(path))["global_step"]
    except CheckpointError:          # not there yet
        return -1


@pytest.mark.slow
def test_kill_9_inside_an_epoch_then_the_same_command_resumes_to_the_same_weights(tmp_path):
    tiny = write_tiny(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def finish(run_dir):
        proc = subprocess.run(_command(tiny, run_dir), capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    finish(tmp_path / "whole")
    whole = tensors(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    steps = load_checkpoint(str(tmp_path / "whole" / "checkpoints" / "last.ckpt"))["global_step"]
    per_epoch = steps // 2
    kill_after = per_epoch + per_epoch // 3          # a third into the second epoch
    recovery = tmp_path / "killed" / "checkpoints" / RECOVERY
    proc = subprocess.Popen(_command(tiny, tmp_path / "killed"), cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while proc.poll() is None and _step_of(recovery) < kill_after and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    out = finish(tmp_path / "killed")
    resumed_at = next(line for line in out.splitlines() if line.startswith("resume: "))
    step = int(resumed_at.rsplit("step ", 1)[1])
    print(f"{steps} steps in all; killed after {kill_after}, {resumed_at}")
    assert kill_after <= step < steps and step % per_epoch, resumed_at    # inside an epoch
    assert_identical(tensors(tmp_path / "killed" / "checkpoints" / "last.ckpt"), whole)
