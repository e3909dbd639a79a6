"""What the search tests share: tiny spaces, a tiny fake task, and a search run in-process
with Hydra's compose API."""
from __future__ import annotations

import os

import optuna
from hydra import compose, initialize_config_dir

from netspec.search import run_search
from netspec.search.config import register_search_configs
from netspec.search.trials import finished_trials
from netspec.train.config import config_dir, register_spec_paths

# two decisions at the top, one that exists only under the first option of another (conditional)
TINY = """\
input: {channels: 3, size: 8}
num_classes: 10
stem: [conv: {c: {choice: [4, 8]}, k: 3}]
stages:
  - {choice: [{conv: {c: 8, k: {choice: [1, 3]}, s: 2}}, {pool: max}]}
head: [pool: global_avg, linear: {c: num_classes}]
"""
# integer and float ranges only: what CMA-ES can search
NUMERIC = """\
input: {channels: 3, size: 8}
num_classes: 10
stem: [conv: {c: {int: [4, 16], step: 4}, k: 3}]
stages: [conv: {c: {int: [4, 12]}, s: 2}]
head: [pool: global_avg, dropout: {float: [0.0, 0.5]}, linear: {c: num_classes}]
"""
BASE = """\
input: {channels: 3, size: 8}
num_classes: 10
stem: [conv: {c: 8, k: 3}]
stages: [conv: {c: 16, s: 2, n: 1}]
head: [pool: global_avg, linear: {c: num_classes}]
"""
FAST = ["data=fake", "data.num_samples=48", "data.image_size=8", "data.batch_size=16",
        "aug=none", "callbacks.checkpoint=false", "trainer.enable_model_summary=false",
        "sched=cosine", "sched.warmup_epochs=0", "budget.epochs=1", "heartbeat=0"]



optuna.logging.set_verbosity(optuna.logging.WARNING)


def write_spaces(tmp_path):
    """The tiny spaces as files: tiny.yaml, numeric.yaml, base.yaml."""
    for name, text in (("tiny", TINY), ("numeric", NUMERIC), ("base", BASE)):
        (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


def cfg_of(*overrides, name="search"):
    register_search_configs()          # idempotent
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose(name, overrides=register_spec_paths(list(overrides)))


def search(tmp_path, *overrides, run="run", log=None):
    cfg = cfg_of(*FAST, f"run_dir={tmp_path / run}", *overrides)
    lines = []
    result = run_search(cfg, log=lines.append if log is None else log)
    # the fake data's random labels put every trial at chance, which the search warns of
    result.lines = [line for line in lines if not line.startswith("warning: ")]
    result.warnings = [line for line in lines if line.startswith("warning: ")]
    return result


def states(study):
    return [t.state for t in finished_trials(study.trials)]


def cli_env() -> dict:
    """The environment of a search command run in a subprocess: one thread, no warnings."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
