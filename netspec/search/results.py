"""What a search leaves in its run directory, and the progress line of each trial.

    study.db           the Optuna study (SQLite; open it with `optuna-dashboard sqlite:///...`)
    trials/NNNN/       each trial: spec.yaml (the concrete spec it trained), train.log,
                       error.txt (a failed trial's traceback), checkpoints/ (the best
                       keep_checkpoints trials only: disk.py)
    trials.csv         every trial: state, accuracy, MACs, params, latency, seconds, reason, params
    best.yaml          the best network as a concrete spec: `python -m netspec.train spec=best.yaml`
    best.json          its trial, values, decisions, training overrides and the command to train it
    history.png        accuracy per trial and the best so far
    pareto/, pareto.png  multi-objective runs: the Pareto set as specs, accuracy against the cost
    emit/              compound scaling: the best coefficients applied with each phi (B1..Bn)
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..lang.source import load_file, plain
from .chance import signal_of
from .disk import keep_best_checkpoints
from .figures import plot_history, plot_pareto
from .formatting import si
from .sampling import FixedTrial, bake_resolution, resolve
from .trials import finished_trials, replaced_trials
from .writing import write_spec


class Progress:
    """Optuna callback: one line per finished trial (best so far, time per trial); and the
    results files (trials.csv, best.yaml) kept current after each trial."""

    def __init__(self, search, log=print):
        self.search = search
        self.log = log
        self.times: list[float] = []
        self.started = time.time()
        self.warned = False

    def __call__(self, study: optuna.Study, t, done: int | None = None) -> None:
        s = self.search
        seconds = t.user_attrs.get("seconds")
        if seconds is None and t.datetime_complete and t.datetime_start:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        self.times.append(seconds or 0.0)
        if done is None:
            done = len(finished_trials(study.get_trials(deepcopy=False)))
        ua = t.user_attrs
        if t.state == TrialState.COMPLETE:
            what = f"acc {ua.get('acc', float('nan')):.4f}"
        elif t.state == TrialState.PRUNED:
            what = f"({ua.get('rejected') or ua.get('pruned') or 'pruned'})"
        else:
            what = f"({ua.get('fail_reason', 'failed')})"
        cost = f"MACs {si(ua.get('macs'))} params {si(ua.get('params'))}"
        if ua.get("latency_ms") is not None:
            cost += f" {ua['latency_ms']:.2f} ms"
        if len(study.directions) == 1:
            try:
                b = study.best_trial
                best = f"best {b.value:.4f} (#{b.number})"
            except ValueError:
                best = "best -"
        else:
            best = f"Pareto front {len(study.best_trials)}"
        avg = sum(self.times) / len(self.times)
        self.log(f"[{done}/{s.target}] trial {t.number} {t.state.name:<8} {what}  {cost}  "
                 f"{seconds or 0:.1f} s | {best}  {avg:.1f} s/trial")
        if not s.results:              # a jobs= worker: the command that started it writes
            return
        try:
            keep_best_checkpoints(s, study.get_trials(deepcopy=False))
            files = write_results(s, final=False)
            signal = files.get("signal")
            if signal and signal["at_chance"] and not self.warned:
                self.log(f"warning: {signal['advice']}")
                self.warned = True
        except OSError as e:       # pragma: no cover - a full disk must not stop the search
            self.log(f"warning: could not write the results: {e}")


# -- the files -------------------------------------------------------------------------------------

def _trials(study):
    trials = study.get_trials(deepcopy=False)
    gone = replaced_trials(trials)
    return trials, gone


def write_trials_csv(search, path: Path, extra: dict[str, dict] | None = None) -> Path:
    """Every trial's row; ``extra``: more columns after acc, each a dict trial number -> value
    (a one-shot search's standalone accuracies)."""
    extra = extra or {}
    study = search.study
    trials, gone = _trials(study)
    names = []
    for t in trials:
        for k in t.params:
            if k not in names:
                names.append(k)
    cols = ["number", "state", "acc", *extra, "macs", "params", "latency_ms", "seconds", "reason",
            "retried", "worker", "spec", *names]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for t in trials:
            ua = t.user_attrs
            row = {"number": t.number, "state": t.state.name,
                   "acc": ua.get("acc", ""),
                   "macs": ua.get("macs", ""), "params": ua.get("params", ""),
                   "latency_ms": ua.get("latency_ms", ""), "seconds": ua.get("seconds", ""),
                   "reason": ua.get("rejected") or ua.get("pruned") or ua.get("fail_reason")
                   or ("worker died" if t.state == TrialState.FAIL else ""),
                   "retried": "yes" if t.number in gone else "",
                   "worker": ua.get("worker", ""), "spec": ua.get("spec", "")}
            row.update({col: values.get(t.number, "") for col, values in extra.items()})
            row.update({k: v for k, v in t.params.items()})
            w.writerow([row.get(c, "") for c in cols])
    return path


def best_trials(study) -> list:
    """The best trial (single objective), or the Pareto set by accuracy (multi-objective)."""
    try:
        if len(study.directions) == 1:
            return [study.best_trial]
        return sorted(study.best_trials, key=lambda t: -t.values[0])
    except ValueError:
        return []


def train_command(search, trial, spec_path: Path) -> str:
    parts = [f"python -m netspec.train spec={spec_path}", f"data={search.cfg.data.name}"]
    if trial.user_attrs.get("data_size") is not None:
        parts.append(f"data.size={trial.user_attrs['data_size']}")
    for k, v in (trial.user_attrs.get("train") or {}).items():
        parts.append(f"{k}={_override_value(v)}")
    return " ".join(parts)


def _override_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v).replace(" ", "")
    return str(v).lower() if isinstance(v, bool) else str(v)


def copy_spec(search, trial, dest: Path, title: str, note: str = "") -> Path | None:
    """The trial's concrete spec at ``dest``, under a header: what it is (``title``, ``note``),
    its values and decisions, the command that trains it."""
    rel = trial.user_attrs.get("spec")
    if rel and (search.out / rel).is_file():
        spec = plain(load_file(search.out / rel))
    elif trial.params:       # trained by another worker, in its own run dir: sample it again
        spec = search.sampler_space.sample(FixedTrial(trial.params),
                                           f"{search.space.name}_{trial.number}").spec
    else:
        return None
    ua = trial.user_attrs
    values = ", ".join(f"{o} {_fmt(v)}" for o, v in zip(search.objectives, trial.values or []))
    header = "\n".join([
        f"{title} of netspec.search study '{search.study_name}' (space {search.space.name}, "
        f"strategy {search.cfg.strategy.name}): trial {trial.number}, {values}",
        *([note] if note else []),
        f"params {ua.get('params', 0):,}, MACs {ua.get('macs', 0):,}",
        *(f"  {k}: {v}" for k, v in trial.params.items()),
        "train it:",
        f"  {train_command(search, trial, dest)}",
    ])
    return write_spec(spec, dest, header)


def _fmt(v) -> str:
    if isinstance(v, float) and abs(v) < 10:
        return f"{v:.4f}"
    return si(v) if isinstance(v, (int, float)) else str(v)


def write_results(search, final: bool = False) -> dict:
    out: Path = search.out
    study = search.study
    files: dict = {"trials_csv": write_trials_csv(search, out / "trials.csv")}
    best = best_trials(study)
    files["best_trials"] = best
    files["signal"] = signal_of(search, study.get_trials(deepcopy=False))
    if best:
        b = best[0]
        path = copy_spec(search, b, out / "best.yaml", "the best network")
        if path is not None:
            files["best"] = path
            info = {"study": search.study_name, "storage": search.url, "trial": b.number,
                    "values": dict(zip(search.objectives, b.values or [])),
                    "params": b.params, "train": b.user_attrs.get("train", {}),
                    "macs": b.user_attrs.get("macs"), "n_params": b.user_attrs.get("params"),
                    "command": train_command(search, b, path)}
            if files["signal"] is not None:
                info["signal"] = files["signal"]
            (out / "best.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    if not final:
        return files
    files["history"] = plot_history(search, out / "history.png")
    if len(study.directions) > 1:
        pdir = out / "pareto"
        pdir.mkdir(exist_ok=True)
        for old in pdir.glob("trial_*.yaml"):
            old.unlink()
        files["pareto"] = [p for t in best
                           if (p := copy_spec(search, t, pdir / f"trial_{t.number:04d}.yaml",
                                               "a Pareto-optimal network")) is not None]
        files["pareto_png"] = plot_pareto(search, out / "pareto.png")
    if search.space.emit and best:
        files["emit"] = emit_scaled(search, best[0], out / "emit")
    return files


# -- compound scaling, step 2 ---------------------------------------------------------------------

def emit_scaled(search, trial, folder: Path) -> list[Path]:
    """The best sample with each phi of the space's `emit:` (EfficientNet's B1..Bn), written with
    the scaled resolution as its input size (the data's size times gamma^phi)."""
    from ..analyze import report_of
    spec = search.unbaked(trial.params)
    scale = dict(spec.get("scale") or {})
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for phi in search.space.emit["phi"]:
        s = dict(spec)
        s["scale"] = {**scale, "phi": phi}
        s["name"] = f"{search.space.name}_b{phi}"
        baked, size = bake_resolution(s)
        rep = report_of(resolve(s))
        if size is not None and report_of(resolve(baked)).macs == rep.macs:
            s = baked
        a, b, g = (scale.get(k) for k in ("alpha", "beta", "gamma"))
        path = folder / f"b{phi}.yaml"
        cmd = f"python -m netspec.train spec={path}" + (f" data.size={size}" if size else "")
        header = "\n".join([
            f"compound scaling (Tan & Le 2019) of the best sample of study '{search.study_name}' "
            f"(trial {trial.number}): phi = {phi}",
            f"alpha {a} (depth), beta {b} (width), gamma {g} (resolution): depth x{a}^{phi}, "
            f"width x{b}^{phi}, resolution x{g}^{phi}",
            f"params {rep.params:,}, MACs {rep.macs:,} at input "
            f"{'x'.join(map(str, rep.input_shape))}",
            "train it:", f"  {cmd}"])
        out.append(write_spec(s, path, header))
    return out
