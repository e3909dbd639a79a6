"""One trial of a search: sample the space -> write the concrete spec (``trials/NNNN/spec.yaml``)
-> static checks (a rejected sample is PRUNED in milliseconds with its reason) -> measured latency
where asked -> train the spec file with netspec.train's machinery for the budget -> its values
(the best validation accuracy, and MACs, params or latency for multi-objective runs).

A trial that fails keeps its reason (``fail_reason``) and its traceback (``error.txt``); one that
is interrupted (Ctrl-C) is enqueued again, so that the rerun trains the same sample.
"""
from __future__ import annotations

import contextlib
import gc
import math
import os
import socket
import time
import traceback
import warnings
from pathlib import Path

import optuna

from .constraints import latency_violations, reject_if_violated, static_violations
from .latency import measure_latency
from .pruning import OptunaPruning
from .sampling import Sample
from .trial_config import spawned, trial_cfg
from .writing import write_spec


def run_trial(search, trial: optuna.Trial):
    """The study's objective: the trial's values, its bookkeeping in its user attributes."""
    start = time.time()
    tdir = search.trial_dir(trial.number)
    tdir.mkdir(parents=True, exist_ok=True)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    try:
        sample = search.sampler_space.sample(trial, f"{search.space.name}_{trial.number}")
        values = evaluate(search, trial, sample, tdir)
        trial.set_user_attr("seconds", round(time.time() - start, 3))
        return values
    except optuna.TrialPruned:
        trial.set_user_attr("seconds", round(time.time() - start, 3))
        raise
    except (KeyboardInterrupt, SystemExit) as e:   # Ctrl-C (Lightning turns it into exit 1)
        trial.set_user_attr("fail_reason", "interrupted")
        trial.set_user_attr("seconds", round(time.time() - start, 3))
        if trial.params:                  # the rerun trains this sample again
            search.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        if isinstance(e, SystemExit):     # recorded FAIL by Optuna, then re-raised
            raise KeyboardInterrupt from e
        raise
    except Exception as e:
        trial.set_user_attr("fail_reason", reason_of(e))
        trial.set_user_attr("seconds", round(time.time() - start, 3))
        (tdir / "error.txt").write_text(traceback.format_exc())
        free_memory()
        raise


def evaluate(search, trial, sample: Sample, tdir: Path):
    """Write, check, measure and train one sample; its objective values."""
    spec_file = write_spec(sample.spec, tdir / "spec.yaml", header=header(search, trial, sample))
    record(search, trial, sample, spec_file)
    violations = static_violations(search.sampler_space, search.constraints, sample.params,
                                   sample.report.macs, sample.report.params)
    latency = None
    if not violations and search.measures_latency:
        latency = measure_latency(sample.spec, search.cfg.latency)
        trial.set_user_attr("latency_ms", round(latency, 4))
        violations += latency_violations(latency, search.constraints)
    reject_if_violated(trial, violations)
    acc = train_and_score(search, trial, trial_cfg(search.cfg, spec_file, sample, tdir), tdir)
    rep = sample.report
    values = [{"acc": acc, "macs": float(rep.macs), "params": float(rep.params),
               "latency": latency}[o] for o in search.objectives]
    return values[0] if len(values) == 1 else values


def record(search, trial, sample: Sample, spec_file: Path) -> None:
    """What the results files need of a sample, kept on its trial before it is checked."""
    trial.set_user_attr("spec", str(spec_file.relative_to(search.out)))
    trial.set_user_attr("macs", int(sample.report.macs))
    trial.set_user_attr("params", int(sample.report.params))
    if sample.train:
        trial.set_user_attr("train", sample.train)
    if sample.data_size is not None:
        trial.set_user_attr("data_size", sample.data_size)


def train_and_score(search, trial, tcfg, tdir: Path) -> float:
    """Train the trial's config (pruned by the study's pruner, where there is one); the best
    validation accuracy."""
    pruning = OptunaPruning(trial) if search.cfg.pruner.name != "none" else None
    result = train_trial(tcfg, [pruning] if pruning else [], tdir / "train.log")
    acc = result.best_val_acc
    if pruning is not None:
        pruned = pruning.pruned_at is not None
        if not pruned and spawned(tcfg):     # decided in the spawned rank 0: stopped early?
            steps = search.study._storage.get_trial(trial._trial_id).intermediate_values
            pruned = max(steps, default=0) < search.cfg.budget.epochs and trial.should_prune()
            if pruned:                      # what the rank's callback knew, for the reason
                pruning.pruned_at, pruning.value = max(steps) - 1, steps[max(steps)]
        if pruned:
            trial.set_user_attr("pruned", pruning.reason())
            if acc is not None:
                trial.set_user_attr("acc", float(acc))
            raise optuna.TrialPruned(pruning.reason())
    if acc is None or not math.isfinite(acc):
        raise RuntimeError(f"training reported no validation accuracy (val/acc): {acc}")
    trial.set_user_attr("acc", float(acc))
    if result.best_checkpoint:
        trial.set_user_attr("checkpoint", str(result.best_checkpoint))
    return float(acc)


def train_trial(tcfg, callbacks, log_file: Path):
    """netspec.train's train(), its printing and warnings sent to the trial's train.log."""
    from ..train.app import train
    with logged_to(log_file):
        return train(tcfg, callbacks)


@contextlib.contextmanager
def logged_to(log_file: Path):
    """Printing and warnings sent to ``log_file`` (a trial's or the supernet's train.log)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as f, contextlib.redirect_stdout(f), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                f.write(f"warning: {w.category.__name__}: {w.message}\n")


def header(search, trial, sample: Sample) -> str:
    """The comment a trial's spec.yaml starts with: where it comes from and what was chosen."""
    lines = [f"sampled by netspec.search: space {search.space.name}, study "
             f"'{search.study_name}', trial {trial.number}",
             f"params {sample.report.params:,}, MACs {sample.report.macs:,} at input "
             f"{'x'.join(map(str, sample.report.input_shape))}"]
    for k, v in sample.params.items():
        lines.append(f"  {k}: {v}")
    if sample.train:
        lines.append("training: " + " ".join(f"{k}={v}" for k, v in sample.train.items()))
    if sample.data_size is not None:
        lines.append(f"trained at data.size={sample.data_size} (the scaled resolution)")
    return "\n".join(lines)


def reason_of(e: BaseException) -> str:
    """A failed trial's reason: the exception's name and first line (out of memory said so)."""
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    name = type(e).__name__
    if "out of memory" in first.lower() and "OutOfMemory" not in name:
        name = f"{name} (out of memory)"
    msg = f"{name}: {first}" if first else name
    return msg if len(msg) <= 500 else msg[:497] + "..."


def free_memory() -> None:
    """After a failed trial (an out-of-memory one above all): what it held, given back."""
    gc.collect()
    try:
        import torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:   # pragma: no cover
        pass
