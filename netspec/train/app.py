"""`python -m netspec.train`: the Hydra application that trains a spec with Lightning."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import yaml
from omegaconf import DictConfig, OmegaConf

from ..cli import emit, fail, run_hydra, user_errors
from ..compile import resolve
from ..errors import CheckpointError, ConfigError, NonFiniteLoss, SpecError
from ..lang.source import load_file, plain
from ..plugins import load_plugins
from .assembly import checkpoint_callback, last_checkpoint, make_trainer, run_callbacks, run_logger
from .config import (
    SPEC_SOURCES,
    check_callbacks,
    config_dir,
    register_configs,
    register_spec_paths,
)
from .console import console_callbacks, print_config
from .data import make_datamodule
from .ema import check_ema, ema_callbacks
from .loggers import finish_trackers
from .module import SpecClassifier
from .report import best_epoch, evaluation_line, report_of, write_figures
from .resume import resume_callbacks, resume_checkpoint
from .trainer_keys import check_trainer
from .transfer import (
    FreezeBackbone,
    checkpoint_spec,
    load_checkpoint,
    model_state,
    pretrained_state,
    same_network,
    transplant,
)


@dataclass
class Result:
    run_dir: Path
    best_val_acc: float | None
    best_epoch: int | None
    best_checkpoint: str | None
    last_checkpoint: str | None
    metrics: dict
    spec: dict
    seconds: float


# -- the spec: its file, and what the config changed in it ---------------------------------------

def _flatten(value, prefix: str, out: dict):
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = value
    return out


def spec_overrides(cfg_spec: dict, original: dict) -> list[str]:
    """The ``key.path=value`` overrides that turn the spec file into the composed ``cfg.spec``."""
    new, old = _flatten(cfg_spec, "", {}), _flatten(original, "", {})
    out = []
    for key, value in new.items():
        if key not in old or old[key] != value:
            text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
            out.append(f"{key}={text.removesuffix('...').strip()}")
    return out


def spec_source(cfg_spec: dict) -> tuple[Path, list[str]]:
    name = cfg_spec.get("name")
    path = SPEC_SOURCES.get(name)
    if path is None:
        raise ConfigError(f"spec '{name}' is not registered; give spec=<zoo name or path.yaml>")
    original = plain(load_file(path))
    original.setdefault("name", path.stem)
    return path, spec_overrides(cfg_spec, original)


def _fixed(overrides: list[str], key: str) -> bool:
    return any(o.split("=", 1)[0] == key for o in overrides)


def data_for(cfg, cfg_spec: dict | None, overrides: list[str]):
    """The set-up data module; the spec's input follows the data unless the user fixed it."""
    fixed_size = fixed_channels = None
    if cfg_spec is not None and _fixed(overrides, "input.size"):
        fixed_size = cfg_spec["input"]["size"]
    if cfg_spec is not None and _fixed(overrides, "input.channels"):
        fixed_channels = cfg_spec["input"]["channels"]
    dm = make_datamodule(cfg.data, cfg.aug, size=fixed_size, channels=fixed_channels)
    dm.prepare_data()
    dm.setup("fit")
    return dm


# -- one training run -----------------------------------------------------------------------------

def run_dir_of(cfg) -> Path:
    if cfg.run_dir:
        return Path(cfg.run_dir)
    try:
        from hydra.core.hydra_config import HydraConfig
        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # composed without a Hydra run (tests, notebooks)
        return Path("runs") / time.strftime("%Y-%m-%d_%H-%M-%S")


def train(cfg: DictConfig, extra_callbacks=()) -> Result:
    """Train the configured spec; returns where everything went and the best validation accuracy.

    ``extra_callbacks``: more Lightning callbacks (netspec.search's pruning callback)."""
    start = time.time()
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out = run_dir_of(cfg)
    check_trainer(cfg.trainer)        # before anything is built: one message, not a traceback
    check_ema(cfg.ema)
    check_callbacks(cfg.callbacks)
    out.mkdir(parents=True, exist_ok=True)
    cfg_spec = OmegaConf.to_container(cfg.spec, resolve=True)
    path, overrides = spec_source(cfg_spec)
    dm = data_for(cfg, cfg_spec, overrides)
    net = _network(cfg, cfg_spec, path, overrides, dm)
    module = SpecClassifier(net.spec, OmegaConf.to_container(cfg.optim),
                            OmegaConf.to_container(cfg.sched), OmegaConf.to_container(cfg.loss),
                            _class_weights(cfg, dm), cfg.channels_last, cfg.compile,
                            OmegaConf.to_container(cfg.data), OmegaConf.to_container(cfg.aug))
    resume = resume_checkpoint(cfg.ckpt_path, out)   # last: the newest last/recovery.ckpt
    if resume:
        _check_resume(resume, net.spec)
    from ..export import deployment_callback  # the checkpoints carry what export needs
    return fit(cfg, module, dm, out, net.spec, start, _transfer(cfg, module, path, overrides),
               [*extra_callbacks, deployment_callback(dm, net.spec)])


def fit(cfg: DictConfig, module: pl.LightningModule, dm, out: Path, spec: dict, start: float,
        first=(), last=(), ckpt_path: str | None = None) -> Result:
    """Fit ``module`` as netspec.train does (the configured trainer, checkpoints, logger,
    curves); ``first`` and ``last`` callbacks go before and after the configured ones.
    netspec.search's one-shot strategies fit their supernet with it."""
    check_trainer(cfg.trainer)
    ckpt_path = resume_checkpoint(ckpt_path or cfg.ckpt_path, out)
    # the resume callbacks last: a recovery checkpoint holds what the others did in its step
    callbacks = [*console_callbacks(cfg), *first, *run_callbacks(cfg, out), *ema_callbacks(cfg),
                 *last, *resume_callbacks(cfg, out)]
    logger = run_logger(cfg, out)
    trainer = make_trainer(cfg, out, logger, callbacks)
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    except NonFiniteLoss as e:
        ckpt = checkpoint_callback(trainer)
        kept = last_checkpoint(trainer) or (ckpt.best_model_path if ckpt else "")
        curves = write_figures(trainer, out) if cfg.callbacks.curves else []  # when it helps most
        raise NonFiniteLoss(f"{e}; training stopped. The last good checkpoint is "
                            f"{kept or 'none (no epoch had finished)'}"
                            + "".join(f"; curves: {p}" for p in curves)) from None
    # before testing: trainer.test(ckpt_path="best") restores the checkpoint callbacks' state
    result = _result(trainer, out, spec, time.time() - start)
    tested = _test(trainer, module, dm, out, result.metrics) if cfg.test else None
    finish_trackers(logger)
    if trainer.is_global_zero:
        _finish(cfg, result, trainer, tested)
    return result


def _test(trainer, module, dm, out: Path, metrics_out: dict) -> str:
    """Test the best checkpoint (its metrics into ``metrics_out``); the report line, naming the
    split (held out, or val)."""
    from .plots import plot_confusion
    best = "best" if checkpoint_callback(trainer) and checkpoint_callback(trainer).best_model_path else None
    metrics = trainer.test(module, datamodule=dm, ckpt_path=best, weights_only=True,
                           verbose=False)[0]
    metrics_out.update({k: float(v) for k, v in metrics.items()})
    label = dm.test_label() if hasattr(dm, "test_label") else "test"
    of = "the best checkpoint" if best else "the last weights"
    if trainer.is_global_zero and hasattr(module, "test_confusion"):
        plot_confusion(module.test_confusion.compute().cpu().numpy(), list(dm.classes),
                       out / "confusion.png", title=f"{label}, {of}")
    return f"{evaluation_line(label, metrics)}  ({of})"


def _network(cfg, cfg_spec: dict, path: Path, overrides: list[str], dm):
    """The spec resolved with the data's channels, size and classes (unless the user fixed them)."""
    if _fixed(overrides, "num_classes") and int(cfg_spec["num_classes"]) != dm.num_classes:
        raise ConfigError(f"spec.num_classes={cfg_spec['num_classes']} disagrees with the data: "
                          f"{cfg.data.name} has {dm.num_classes} classes; drop the override "
                          f"(the spec follows the data) or choose other data")
    data_over = [f"num_classes={dm.num_classes}", f"input.channels={dm.channels}",
                 f"input.size=[{dm.size[0]}, {dm.size[1]}]"]
    try:
        net = resolve(path, [*overrides, *data_over])
    except SpecError as e:
        raise SpecError(f"{e.reason} (with the data's {dm.channels}x{dm.size[0]}x{dm.size[1]} "
                        f"images and {dm.num_classes} classes)", file=e.file, line=e.line,
                        path=e.path) from None
    gives = (f"returns a dict of {len(net.outputs)} maps (its outputs: {', '.join(net.outputs)})"
             if net.outputs else f"ends in a {net.out.describe()} map"
             if net.out.shape != (dm.num_classes,) else "")
    if gives:
        raise ConfigError(f"{path}: netspec.train trains classifiers, whose last layer gives "
                          f"{dm.num_classes} class scores; this spec {gives}. Analyze it with "
                          f"netspec.summary, or build it in Python (netspec.build) for another "
                          f"task")
    return net


def _class_weights(cfg, dm) -> list[float] | None:
    if not cfg.loss.class_weights:
        return None
    counts = dm.class_counts
    total, k = sum(counts), len(counts)
    return [total / (k * c) if c else 0.0 for c in counts]  # inverse frequency


def _check_resume(ckpt_path: str, spec: dict):
    ckpt = load_checkpoint(ckpt_path)
    theirs = checkpoint_spec(ckpt, ckpt_path)
    if not same_network(theirs, spec):
        raise CheckpointError(f"checkpoint '{ckpt_path}' holds the network "
                              f"'{theirs.get('name', '?')}', which differs from this run's "
                              f"'{spec.get('name', '?')}'; resume with the same spec, or start "
                              f"from its weights with transfer.checkpoint={ckpt_path}")


def _transfer(cfg, module, path, overrides) -> list:
    t = cfg.transfer
    if t.checkpoint:
        ckpt = load_checkpoint(t.checkpoint)
        checkpoint_spec(ckpt, t.checkpoint)
        fresh = transplant(module.model, model_state(ckpt), f"checkpoint '{t.checkpoint}'")
        print(f"transfer: weights from {t.checkpoint}; new: {', '.join(fresh) or 'none'}")
    elif t.pretrained:
        reference = t.pretrained
        if reference == "reference":
            reference = module.hparams.spec.get("reference")
            if not reference:
                raise ConfigError(f"transfer.pretrained=reference, but spec "
                                  f"'{module.hparams.spec.get('name')}' names no reference model")
        state = pretrained_state(path, overrides, reference, t.weights)
        fresh = transplant(module.model, state, reference)
        print(f"transfer: weights from {reference}; new: {', '.join(fresh) or 'none'}")
    if t.train_last is not None:
        return [FreezeBackbone(t.train_last, t.unfreeze_epoch, t.unfreeze_lr_factor)]
    return []


def _result(trainer, out: Path, spec: dict, seconds: float) -> Result:
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    ckpt = trainer.checkpoint_callback
    best = last = None
    best_acc = metrics.get("val/acc_best")
    best_epoch = None
    if ckpt is not None:
        best = ckpt.best_model_path or None
        last = last_checkpoint(trainer)
        if ckpt.best_model_score is not None and ckpt.monitor == "val/acc":
            best_acc = float(ckpt.best_model_score)
        if best:
            stem = Path(best).stem
            digits = "".join(ch for ch in stem.split("epoch")[-1] if ch.isdigit())
            best_epoch = int(digits) if digits else None
    return Result(out, best_acc, best_epoch, best, last, metrics, spec, seconds)


def _finish(cfg, result: Result, trainer, tested: str | None):
    report = report_of(trainer)
    if cfg.callbacks.curves:
        for png in write_figures(trainer, result.run_dir):
            print(f"curves: {png}")
    acc = f"{result.best_val_acc:.4f}" if result.best_val_acc is not None else "n/a"
    epoch = result.best_epoch
    if epoch is None and report is not None:   # no checkpoint kept: the history knows
        epoch = best_epoch(report.rows, cfg.callbacks.monitor, cfg.callbacks.mode)
    lines = [
        f"netspec.train: {result.spec.get('name')} on {cfg.data.name}",
        f"  best val/acc {acc}" + (f" at epoch {epoch}" if epoch is not None else ""),
        *([f"  {tested}"] if tested else []),
        f"  best checkpoint {result.best_checkpoint or 'none (checkpoints are off)'}",
        f"  last checkpoint {result.last_checkpoint or 'none'}",
        f"  summary {report.path}" if report is not None and report.path.is_file() else "",
        f"  run dir {result.run_dir}  ({result.seconds:.0f} s)",
    ]
    print("\n".join(line for line in lines if line))


# -- the command line -----------------------------------------------------------------------------

def _task(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    strategy = str(cfg.trainer.get("strategy") or "")
    if HydraConfig.get().mode == RunMode.MULTIRUN and strategy.startswith("ddp") \
            and strategy != "ddp_spawn":
        fail("multirun (-m) cannot use trainer.strategy=ddp: Lightning relaunches the script "
             "for each process, which breaks Hydra sweeps. Use trainer.strategy=ddp_spawn, or "
             "run each configuration as its own command")
    with user_errors():
        check_trainer(cfg.trainer)
        print_config(cfg)
        return train(cfg).best_val_acc


USAGE = """\
usage: python -m netspec.train [spec=NAME_OR_PATH] [group=option ...] [key.path=value ...]
       python -m netspec.train -m key=a,b ...     (a Hydra sweep: one run per combination)

Trains a spec with PyTorch Lightning on the configured data (default: mobilenet_v2 on digits) and
writes checkpoints, logs/metrics.csv and curves.png to outputs/DATE/TIME/ (or run_dir=)."""
GROUPS = ["spec", "data", "aug", "optim", "sched", "trainer", "callbacks", "logger", "debug",
          "experiment"]


def main(argv: list[str] | None = None) -> None:
    register_configs()
    args = sys.argv[1:] if argv is None else argv
    with user_errors():
        load_plugins()
        sys.argv[1:] = register_spec_paths(args)
    if "--help" in args or "-h" in args:
        from .help import help_text
        rest = [a for a in sys.argv[1:] if a not in ("--help", "-h")]
        emit(help_text("netspec.train", USAGE, Path(config_dir()), "train", GROUPS, rest))
        return
    from .config import TrainConfig
    run_hydra(config_dir(), "train", _task, schema=TrainConfig)
