"""What the training tests share: a tiny spec, tiny fake data, a composed config, and a callback
that records what the network saw, returned and was optimized with."""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from pytorch_lightning import Callback

from netspec.train.app import train
from netspec.train.config import config_dir, register_configs, register_spec_paths

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
# 96 random 16x16 images: 72 to train on (4 batches of 16, the last 8 images dropped), 24 to
# validate on; about a second a run
FAST = ["data=fake", "data.num_samples=96", "data.image_size=16", "data.batch_size=16",
        "data.val_fraction=0.25", "aug=none", "callbacks=minimal", "logger=csv",
        "trainer.max_epochs=1", "trainer.enable_model_summary=false", "optim=adamw",
        "sched=cosine", "sched.warmup_epochs=0"]


def write_tiny(folder: Path) -> Path:
    path = Path(folder) / "tiny.yaml"
    path.write_text(TINY)
    return path


def cfg_of(*overrides):
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("train", overrides=register_spec_paths(list(overrides)))


def run(tmp_path, spec, *overrides, name="run", callbacks=(), fast=FAST):
    """Train ``spec`` on FAST's data (``overrides`` come after FAST's and win)."""
    cfg = cfg_of(f"spec={spec}", *fast, f"run_dir={tmp_path / name}", *overrides)
    return train(cfg, extra_callbacks=list(callbacks))


class Record(Callback):
    """Per training batch: the batch, the network's input and logits (after batch mixing), the
    loss, the learning rate of each parameter group; per epoch: the optimizer's groups and the
    network's tensors (``start``: its tensors before the first step)."""

    def __init__(self):
        self.batches, self.inputs, self.logits, self.losses, self.lrs = [], [], [], [], []
        self.epochs: list[dict] = []       # per epoch: {"groups": [...], "state": {...}}
        self.optimizer = self.scheduler = self.start = None

    def on_train_start(self, trainer, pl_module):
        self.optimizer = trainer.optimizers[0]
        configs = trainer.lr_scheduler_configs
        self.scheduler = configs[0].scheduler if configs else None
        self.start = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
        pl_module.model.register_forward_hook(self._seen)

    def _seen(self, module, args, output):
        if module.training:
            self.inputs.append(args[0].detach().clone())
            self.logits.append((output[0] if isinstance(output, tuple) else output).detach().clone())

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append([t.detach().clone() for t in batch])
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].detach().clone())

    def on_train_epoch_end(self, trainer, pl_module):
        groups = [{k: v for k, v in g.items() if k != "params"} | {"size": len(g["params"])}
                  for g in trainer.optimizers[0].param_groups]
        state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
        self.epochs.append({"groups": groups, "state": state})
