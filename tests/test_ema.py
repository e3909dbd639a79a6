"""ema=DECAY: the moving average of the weights is the one timm's ModelEmaV3 keeps, it is validated
beside the raw weights, checkpointed beside them, restored on resume and picked by eval/export."""
from pathlib import Path

import pytest
import torch
from pytorch_lightning import Callback
from tiny_training import run, write_tiny

from netspec.errors import CheckpointError, ConfigError
from netspec.eval import evaluate
from netspec.train.ema import EMA_KEY

DECAY = 0.7
EXACT = ["data.shuffle=false", "trainer.max_epochs=2"]   # resumable exactly (no shuffle, no aug)


class Steps(Callback):
    """The network's tensors after every optimizer step."""

    def __init__(self):
        self.states = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.states.append({k: v.detach().clone() for k, v in pl_module.model.state_dict().items()})


def _ckpt(result, name="last.ckpt"):
    return torch.load(Path(result.run_dir) / "checkpoints" / name, weights_only=True)


def test_the_average_is_timms_ema_of_every_step_and_the_raw_weights_stay(tmp_path):
    steps = Steps()
    r = run(tmp_path, write_tiny(tmp_path), f"ema={DECAY}", *EXACT, callbacks=[steps])
    ckpt = _ckpt(r)
    assert len(steps.states) >= 4                     # 2 epochs of a few batches
    # ModelEmaV3 without warm-up: the first update copies, then ema = d*ema + (1-d)*weights
    expected = dict(steps.states[0])
    for state in steps.states[1:]:
        expected = {k: DECAY * expected[k] + (1 - DECAY) * v if v.is_floating_point() else v
                    for k, v in state.items()}
    ema = ckpt[EMA_KEY]
    floats = [k for k, v in expected.items() if v.is_floating_point()]
    assert floats and set(ema) == set(expected)
    for k in floats:
        torch.testing.assert_close(ema[k], expected[k], rtol=1e-5, atol=1e-6, msg=k)
    raw = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    for k in floats:                                  # state_dict: the raw weights, not the EMA
        torch.testing.assert_close(raw[k], steps.states[-1][k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(ema[k], raw[k]) for k in floats)


def test_validation_reports_the_average_beside_the_raw_weights(tmp_path):
    r = run(tmp_path, write_tiny(tmp_path), f"ema={DECAY}", *EXACT)
    assert {"val/acc", "val/acc_ema", "val/loss_ema"} <= set(r.metrics)
    last = Path(r.run_dir) / "checkpoints" / "last.ckpt"
    # eval of the checkpoint's EMA weights on the validation split gives what training logged
    ema = evaluate(str(last), "val", str(tmp_path / "ema"), weights="ema")
    raw = evaluate(str(last), "val", str(tmp_path / "raw"), weights="raw")
    assert ema["test/acc"] == pytest.approx(r.metrics["val/acc_ema"], abs=1e-6)
    assert ema["test/loss"] == pytest.approx(r.metrics["val/loss_ema"], rel=1e-4)
    assert raw["test/loss"] == pytest.approx(r.metrics["val/loss"], rel=1e-4)
    assert ema["test/loss"] != pytest.approx(raw["test/loss"], rel=1e-4)


def test_resume_restores_the_average(tmp_path):
    spec = write_tiny(tmp_path)
    whole = run(tmp_path, spec, f"ema={DECAY}", *EXACT, "callbacks.save_top_k=-1",
                "callbacks.monitor=val/loss", "callbacks.mode=min", name="whole")
    first = Path(whole.run_dir) / "checkpoints" / "best-epoch0.ckpt"
    assert first.is_file()
    resumed = run(tmp_path, spec, f"ema={DECAY}", *EXACT, f"ckpt_path={first}", name="resumed")
    a, b = _ckpt(whole), _ckpt(resumed)
    for key in ("state_dict", EMA_KEY):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)


def test_top_k_keeps_the_k_best_checkpoints(tmp_path):
    r = run(tmp_path, write_tiny(tmp_path), "trainer.max_epochs=3", "callbacks.save_top_k=2",
            "callbacks.monitor=val/loss", "callbacks.mode=min")
    best = sorted(p.name for p in (Path(r.run_dir) / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 2 and Path(r.best_checkpoint).name in best


@pytest.mark.parametrize("bad", ["ema=1.5", "ema=-0.1", "ema=1", "callbacks.save_top_k=-2"])
def test_bad_values_are_refused_before_training(tmp_path, bad):
    with pytest.raises(ConfigError, match=bad.split("=")[0]):
        run(tmp_path, write_tiny(tmp_path), bad)
    assert not (tmp_path / "run").exists()


def test_eval_of_ema_weights_needs_a_run_with_ema(tmp_path):
    r = run(tmp_path, write_tiny(tmp_path))
    with pytest.raises(CheckpointError, match="no EMA weights"):
        evaluate(r.last_checkpoint, "val", str(tmp_path / "e"), weights="ema")
