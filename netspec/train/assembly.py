"""The Lightning pieces a training run is made of: the Trainer, its callbacks and its logger."""
from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from omegaconf import OmegaConf

from ..errors import ConfigError
from .loggers import TRACKERS, tracker
from .report import EpochReport


def make_trainer(cfg, out: Path, logger, callbacks) -> pl.Trainer:
    flags = {k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if v is not None}
    # (set in flags, not beside them: trainer.enable_progress_bar=false must not be passed twice)
    flags["enable_progress_bar"] = (cfg.callbacks.progress_bar != "none"
                                    and flags.get("enable_progress_bar", True))
    # callbacks.checkpoint=false: no checkpoints at all, not Lightning's default ModelCheckpoint
    flags.setdefault("enable_checkpointing", bool(cfg.callbacks.checkpoint))
    trainer = pl.Trainer(**flags, logger=logger, callbacks=callbacks, default_root_dir=str(out))
    if flags.get("sync_batchnorm") and isinstance(trainer.strategy, pl.strategies.DDPStrategy) \
            and not isinstance(trainer.accelerator, pl.accelerators.CUDAAccelerator):
        # torch's DDP refuses SyncBatchNorm on other devices, from inside every launched rank
        raise ConfigError(f"trainer.sync_batchnorm=true needs CUDA GPUs (torch's SyncBatchNorm "
                          f"works only with GPU modules), but the trainer runs on "
                          f"{type(trainer.accelerator).__name__.removesuffix('Accelerator')}; "
                          f"set trainer.sync_batchnorm=false")
    return trainer



def checkpoint_callback(trainer):
    """The callback that keeps the best checkpoint (the first: see run_callbacks)."""
    return trainer.checkpoint_callback



def last_checkpoint(trainer) -> str | None:
    """last.ckpt, when a run wrote one (the checkpoint callback that monitors nothing)."""
    for cb in trainer.checkpoint_callbacks:
        if cb.monitor is None and cb.best_model_path:
            return cb.best_model_path
    return None



def run_callbacks(cfg, out: Path) -> list:
    from pytorch_lightning.callbacks import (
        EarlyStopping,
        LearningRateMonitor,
        ModelCheckpoint,
        RichProgressBar,
        TQDMProgressBar,
    )
    c = cfg.callbacks
    cbs = [EpochReport(out)]          # the epoch lines, summary.csv and the curves' history
    if c.checkpoint:
        cbs.append(ModelCheckpoint(dirpath=out / "checkpoints", monitor=c.monitor, mode=c.mode,
                                   save_top_k=c.save_top_k, filename="best-epoch{epoch}",
                                   auto_insert_metric_name=False))
        if c.save_last:
            # a checkpoint of its own: Lightning 2.6's save_last=True writes last.ckpt only when
            # a best checkpoint is saved, so it held the last *best* epoch, not the last one
            cbs.append(ModelCheckpoint(dirpath=out / "checkpoints", filename="last", monitor=None,
                                       save_top_k=1, enable_version_counter=False))
    if c.early_stopping_patience is not None:
        cbs.append(EarlyStopping(monitor=c.monitor, mode=c.mode,
                                 patience=c.early_stopping_patience))
    if c.lr_monitor and cfg.logger.name != "none":
        cbs.append(LearningRateMonitor(logging_interval="epoch"))
    if c.progress_bar == "rich":
        cbs.append(RichProgressBar())
    elif c.progress_bar == "tqdm":
        cbs.append(TQDMProgressBar())
    elif c.progress_bar != "none":
        raise ConfigError(f"callbacks.progress_bar must be rich, tqdm or none, "
                          f"got '{c.progress_bar}'")
    return cbs



def run_logger(cfg, out: Path):
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
    name = cfg.logger.name
    if name == "csv":
        return CSVLogger(str(out), name="logs", version="")
    if name == "tensorboard":
        try:
            tb = TensorBoardLogger(str(out), name="tensorboard", version="")
        except ModuleNotFoundError as e:   # Lightning needs tensorboard or tensorboardX for it
            raise ConfigError("logger=tensorboard needs the tensorboard package: "
                              "pip install tensorboard (or use logger=csv)") from e
        return [CSVLogger(str(out), name="logs", version=""), tb]
    if name in TRACKERS:   # beside the CSV log, which curves.png is drawn from
        run_name = f"{cfg.spec.get('name')}-{out.name}"
        return [CSVLogger(str(out), name="logs", version=""),
                tracker(name, cfg.logger.project, run_name, out)]
    if name == "none":
        return False
    raise ConfigError(f"logger.name must be csv, tensorboard, mlflow, wandb or none, "
                      f"got '{name}'")
