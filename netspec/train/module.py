"""The LightningModule around a compiled spec: loss, batch mixing, metrics, optimizers."""
from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix
from torchvision.transforms import v2

from ..compile import build
from ..errors import NonFiniteLoss
from .optim import make_optimizer, make_scheduler


def _accuracy(num_classes: int, k: int) -> MulticlassAccuracy:
    # micro average: the fraction of samples whose true class is among the top k, as papers report
    return MulticlassAccuracy(num_classes=num_classes, top_k=k, average="micro")


class SpecClassifier(pl.LightningModule):
    """Trains a netspec network; its hyperparameters (spec included) travel in the checkpoint."""

    def __init__(self, spec: dict, optim: dict, sched: dict, loss: dict,
                 class_weights: list[float] | None = None, channels_last: bool = False,
                 compile: bool = False, data: dict | None = None, aug: dict | None = None,
                 model: torch.nn.Module | None = None):
        # data/aug ride along so that netspec.eval can rebuild the data of a checkpoint;
        # ``model``: a network built otherwise (netspec.search's supernet), not from ``spec``
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = build(spec) if model is None else model
        self.num_classes = int(spec["num_classes"])
        if class_weights is not None:
            self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float))
        else:
            self.class_weights = None
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # kept out of the module tree: the compiled wrapper must not duplicate the state_dict
        self.__dict__["forward_model"] = torch.compile(self.model) if compile else self.model
        self.mix = self._mixer(loss)
        n = self.num_classes
        self.train_acc = _accuracy(n, 1)
        self.val_acc = _accuracy(n, 1)
        self.val_top5 = _accuracy(n, 5) if n > 5 else None
        self.val_acc_best = MaxMetric()
        self.test_acc = _accuracy(n, 1)
        self.test_top5 = _accuracy(n, 5) if n > 5 else None
        self.test_confusion = MulticlassConfusionMatrix(num_classes=n)
        # frozen parameters that start training later, and their learning-rate factor (set by
        # the FreezeBackbone callback before the optimizer is made)
        self.unfrozen_later: tuple[list, float] = ([], 1.0)

    def _mixer(self, loss: dict):
        mixers = []
        if loss.get("mixup", 0) > 0:
            mixers.append(v2.MixUp(alpha=loss["mixup"], num_classes=self.num_classes))
        if loss.get("cutmix", 0) > 0:
            mixers.append(v2.CutMix(alpha=loss["cutmix"], num_classes=self.num_classes))
        if not mixers:
            return None
        return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)

    # -- steps ------------------------------------------------------------------------------
    def forward(self, x):
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.forward_model(x)

    def criterion(self, logits, target):
        return F.cross_entropy(logits, target, weight=self.class_weights,
                               label_smoothing=self.hparams.loss.get("label_smoothing", 0.0))

    def training_step(self, batch, batch_idx):
        x, y = batch
        target = y
        if self.mix is not None:
            x, target = self.mix(x, y)
        out = self(x)
        aux = []
        if isinstance(out, tuple):  # auxiliary classifiers (GoogLeNet, Inception) in training
            out, aux = out
        loss = self.criterion(out, target)
        for weight, aux_logits in aux:
            loss = loss + weight * self.criterion(aux_logits, target)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"the loss became {loss.item()} at step {self.global_step} "
                                f"(epoch {self.current_epoch}, batch {batch_idx})")
        self.train_acc(out.detach(), y)
        # sync_dist: under DDP the mean over all ranks' samples, not rank 0's (no-op on one process)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch, prefix: str, acc, top5):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        acc(logits, y)
        self.log(f"{prefix}/loss", loss, prog_bar=True, sync_dist=True)
        self.log(f"{prefix}/acc", acc, prog_bar=True)
        if top5 is not None:
            top5(logits, y)
            self.log(f"{prefix}/acc_top5", top5)
        return logits, y

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val", self.val_acc, self.val_top5)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def test_step(self, batch, batch_idx):
        logits, y = self._evaluate(batch, "test", self.test_acc, self.test_top5)
        self.test_confusion.update(logits, y)

    # -- optimization -----------------------------------------------------------------------
    def configure_optimizers(self):
        from types import SimpleNamespace
        later, factor = self.unfrozen_later
        optimizer = make_optimizer(self.model, SimpleNamespace(**self.hparams.optim), later, factor)
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and \
            self.trainer.max_epochs > 0 else 1
        steps = max(1, int(self.trainer.estimated_stepping_batches) // epochs)
        sched = make_scheduler(optimizer, SimpleNamespace(**self.hparams.sched),
                               steps_per_epoch=steps, epochs=epochs)
        if sched is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": sched}
