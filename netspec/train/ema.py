"""``ema=0.9998``: an exponential moving average of the network's weights, as timm's ModelEmaV3.

torch's ``AveragedModel`` with ``get_ema_multi_avg_fn`` keeps the average (parameters and buffers,
updated after every optimizer step). Not Lightning's ``WeightAveraging`` callback: it swaps the
averaged weights in for validation and writes them over ``state_dict``, so the raw weights would
neither be validated nor checkpointed where netspec.eval, export and transfer read them. Here
validation reports both (``val/acc`` raw, ``val/acc_ema`` averaged), ``state_dict`` stays the raw
network and the average goes beside it as ``ema_state_dict`` (the network's keys, no prefix).
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..errors import CheckpointError, ConfigError

EMA_KEY = "ema_state_dict"


def check_ema(decay) -> float | None:
    """The decay of ``ema=`` (None: off; 0 and null turn it off too)."""
    if decay is None or decay == 0:
        return None
    if not 0 < decay < 1:
        raise ConfigError(f"ema={decay}: the decay of the weights' moving average must be "
                          f"between 0 and 1 (timm's default 0.9998; 0 or null: off)")
    return float(decay)


def ema_callbacks(cfg) -> list:
    decay = check_ema(cfg.get("ema"))
    return [WeightEMA(decay)] if decay is not None else []


class WeightEMA(pl.Callback):
    """Averages ``pl_module.model`` after each optimizer step; validates and checkpoints it."""

    def __init__(self, decay: float):
        self.decay = decay
        self.average: AveragedModel | None = None
        self._updated_at = 0            # global_step of the last update (once per optimizer step)
        self._sums: list[torch.Tensor] = []

    def setup(self, trainer, pl_module, stage):
        if stage == "fit" and self.average is None:
            self.average = AveragedModel(pl_module.model, use_buffers=True,
                                         multi_avg_fn=get_ema_multi_avg_fn(self.decay))

    def on_fit_start(self, trainer, pl_module):
        self.average.to(pl_module.device)   # the network is on its device only now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step > self._updated_at:
            self.average.update_parameters(pl_module.model)
            self._updated_at = trainer.global_step

    # -- validation of the averaged weights, on the batches the raw ones saw -------------------
    def on_validation_epoch_start(self, trainer, pl_module):
        self._sums = [torch.zeros((), device=pl_module.device, dtype=torch.float64)
                      for _ in range(3)]    # loss sum, correct, samples

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0):
        if trainer.sanity_checking or self.average is None:
            return
        x, y = batch
        if pl_module.hparams.get("channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        net = self.average.module.eval()
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            logits = net(x)
        loss, correct, count = self._sums
        loss += F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
        count += y.numel()

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or self.average is None or not self._sums:
            return
        # sums over every rank's shard (a no-op on one process), then the same value on all
        loss, correct, count = (trainer.strategy.reduce(t, reduce_op="sum") for t in self._sums)
        if float(count) == 0:
            return
        pl_module.log("val/loss_ema", (loss / count).float())
        pl_module.log("val/acc_ema", (correct / count).float(), prog_bar=True)

    # -- checkpoints: the average beside the raw weights, restored on resume --------------------
    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if self.average is not None:
            checkpoint[EMA_KEY] = {k: v.detach().cpu()
                                   for k, v in self.average.module.state_dict().items()}
            checkpoint["ema"] = {"decay": self.decay, "updated_at": self._updated_at,
                                 "n_averaged": int(self.average.n_averaged)}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        if self.average is None or EMA_KEY not in checkpoint:
            return                       # a run without EMA: the average starts from its weights
        self.average.module.load_state_dict(checkpoint[EMA_KEY])
        self.average.n_averaged.fill_(checkpoint["ema"]["n_averaged"])
        self._updated_at = checkpoint["ema"]["updated_at"]


def ema_state(ckpt: dict, path: str) -> dict:
    """The averaged network's tensors of a checkpoint written with ``ema=``."""
    if EMA_KEY not in ckpt:
        raise CheckpointError(f"checkpoint '{path}' holds no EMA weights (train with ema=0.9998 "
                              f"to have them); use weights=raw")
    return ckpt[EMA_KEY]


WEIGHTS = ("raw", "ema")


def check_weights(choice: str) -> str:
    if choice not in WEIGHTS:
        raise ConfigError(f"weights must be raw or ema, got '{choice}'")
    return choice
