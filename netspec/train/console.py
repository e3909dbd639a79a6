"""What a training run prints besides its progress: the composed config as a tree, the network's
summary (its layers, parameters and netspec's MACs), and only the warnings a user can act on.

``verbose=true`` lets Lightning print everything it would.
"""
from __future__ import annotations

import io
import logging
import re
import textwrap
import warnings

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, ModelSummary

from .trainer_keys import flags as trainer_flags

WIDTH = 100

# -- warnings and tips a user can do nothing about -------------------------------------------------
# torch's deprecation of a call inside Lightning (printed once per DDP rank)
_WARNINGS = [re.escape("`isinstance(treespec, LeafSpec)` is deprecated")]
# Lightning's rank-zero info lines that advertise, or say what netspec chose for the user
_INFO_LINES = ("💡 Tip:", "TPU available:", "HPU available:",
               "Loading `train_dataloader` to estimate number of stepping batches",
               "Trainer already configured with model summary callbacks")


class _DropLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith(_INFO_LINES)


_DROP = _DropLines()


def _rank_zero_loggers() -> list[logging.Logger]:
    from lightning_utilities.core import rank_zero
    return [rank_zero.log, logging.getLogger("pytorch_lightning.utilities.rank_zero"),
            logging.getLogger("lightning_fabric.utilities.rank_zero")]


def quiet_lightning(verbose: bool = False) -> None:
    """Drop the tips and warnings no user can act on (idempotent); ``verbose``: keep them all."""
    for log in _rank_zero_loggers():
        if verbose:
            log.removeFilter(_DROP)
        elif _DROP not in log.filters:
            log.addFilter(_DROP)
    if not verbose:
        for message in _WARNINGS:
            warnings.filterwarnings("ignore", message=message)


class QuietRanks(Callback):
    """The same filters in every process the strategy starts (ddp_spawn's are fresh ones)."""

    def __init__(self, verbose: bool = False):
        self.verbose = verbose

    def setup(self, trainer, pl_module, stage):
        quiet_lightning(self.verbose)


# -- the network's summary -------------------------------------------------------------------------

def _count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)}"


def summary_rows(model: torch.nn.Module, spec: dict | None, max_rows: int = 24):
    """(rows, total MACs or None): name, kind, output, params, MACs per block of the network.

    netspec's analysis of ``spec`` gives the MACs when it describes ``model`` (the same
    parameter count; a search's supernet is not its spec); two levels deep when that fits in
    ``max_rows``, else one."""
    params = sum(p.numel() for p in model.parameters())
    report = None
    if spec is not None:
        from ..compile import analyze
        report = analyze(spec)
        if report.params != params:
            report = None
    if report is None:
        rows = [(name, type(child).__name__, "", sum(p.numel() for p in child.parameters()),
                 None) for name, child in model.named_children()]
        return rows, None
    layers = report.at_depth(2)
    if len(layers) > max_rows:
        layers = report.at_depth(1)
    rows = [(lay.name, lay.kind, "x".join(map(str, lay.out_shape)), lay.params, lay.macs)
            for lay in layers]
    return rows, report.macs


class NetworkSummary(ModelSummary):
    """Lightning's model summary of the network alone (not the metric objects beside it), with
    netspec's MACs in place of Lightning's FLOPs (which it counts only with an example input)."""

    def on_fit_start(self, trainer, pl_module):
        if not self._max_depth or not trainer.is_global_zero:
            return
        from rich import get_console
        from rich.table import Table
        model = getattr(pl_module, "model", pl_module)
        spec = getattr(pl_module, "hparams", {}).get("spec")
        rows, macs = summary_rows(model, spec)
        table = Table(header_style="bold magenta")
        for column in ("Name", "Type", "Output", "Params", "MACs"):
            table.add_column(column, justify="right" if column in ("Params", "MACs") else "left")
        for name, kind, out, n, m in rows:
            table.add_row(name, kind, out, _count(n), "" if m is None else _count(m))
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        console = get_console()
        console.print(table)
        console.print(f"params {_count(total)} ({_count(trainable)} trainable, "
                      f"{total * 4 / 1e6:.1f} MB)  MACs {'n/a' if macs is None else _count(macs)}"
                      f" per image (netspec's count)")


def console_callbacks(cfg) -> list[Callback]:
    """The summary (unless trainer.enable_model_summary=false) and the warning filters."""
    quiet_lightning(bool(cfg.get("verbose", False)))
    cbs: list[Callback] = [QuietRanks(bool(cfg.get("verbose", False)))]
    if cfg.trainer.get("enable_model_summary") is not False:
        cbs.append(NetworkSummary())
    return cbs


# -- the composed config, as a tree ----------------------------------------------------------------

def _plain(value) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _group_text(group: str, values: dict) -> str:
    """``key=value`` pairs of one group: unset keys left out, and the trainer's flags only where
    they differ from Lightning's defaults."""
    defaults = {k: p.default for k, p in trainer_flags().items()} if group == "trainer" else {}
    head = values.pop("name", None)
    pairs = [f"{k}={_plain(v)}" for k, v in values.items()
             if v is not None and not isinstance(v, dict)
             and not (k in defaults and defaults[k] == v and type(defaults[k]) is type(v))]
    return " ".join([*([f"[bold]{head}[/]"] if head else []), *pairs])


def config_tree(cfg: DictConfig, width: int = WIDTH):
    """A rich Tree: one branch per config group, its values wrapped to ``width``."""
    from rich.markup import escape
    from rich.tree import Tree
    tree = Tree("[bold]config[/]")
    top = {}
    for key in cfg:
        node = cfg[key]
        if key == "spec":
            spec = node or {}
            tree.add(f"[cyan]spec[/] [bold]{escape(str(spec.get('name')))}[/]")
        elif isinstance(node, DictConfig):
            text = _group_text(key, OmegaConf.to_container(node, resolve=True))
            text = "\n".join(textwrap.wrap(text, width - 16, break_on_hyphens=False))
            tree.add(f"[cyan]{key}[/] {text}")
        elif node is not None:
            top[key] = node
    tree.add(" ".join(f"{k}={_plain(v)}" for k, v in top.items()))
    return tree


def config_text(cfg: DictConfig) -> str:
    """The tree as plain text (for the run's log file)."""
    from rich.console import Console
    console = Console(width=WIDTH, no_color=True, record=True, file=io.StringIO())
    console.print(config_tree(cfg))
    return console.export_text()


def print_config(cfg: DictConfig) -> None:
    """The tree on the console, and in the run's log file; rank zero only (DDP reruns the
    command once per rank)."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only
    from rich import get_console
    if getattr(rank_zero_only, "rank", 0) != 0:
        return
    console = get_console()
    console.print(config_tree(cfg, min(console.width, WIDTH)))
    from .report import to_log_files
    to_log_files(config_text(cfg).rstrip())
