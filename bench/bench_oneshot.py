"""Benchmark of the one-shot strategies (strategy=enas, strategy=spos) against random search.

One space (`mobile_stages`: per-stage kernel, expansion, SE, repeats and an optional fifth stage),
one task (`--data`, default `shapes`: netspec's offline task where the architectures' accuracies
spread; digits at a few epochs ranks how fast a network trains, not what it learns), `aug=none`
(`--aug`), one per-trial budget (`--epochs`, default 8), 3 seeds. For each seed, each as the CLI
command a user types:

    random   netspec.search strategy=random n_trials=50                 (50 standalone trainings)
    spos     netspec.search strategy=spos oneshot.epochs=E oneshot.retrain_top=1
    enas     netspec.search strategy=enas oneshot.epochs=E oneshot.retrain_top=1

(E: `--oneshot-epochs`, default 8) and prints
(a) compute: the CPU seconds of each one-shot command (supernet, scoring, retraining the one it
    returns: everything) over random search's 50 trials. Goal: at most 1/10;
(b) the standalone accuracy of what each returns (retrained with the same budget) against random
    search's best of 50. Goal: equal or better within the seed-to-seed spread;
(c) Kendall's tau between the accuracy estimated on the trained supernet (spos's) and the
    standalone accuracy, over the 50 architectures random search trained: weight sharing's known
    weakness, reported as it is;
and, first, the spread of the 50 standalone accuracies (best minus median: at least 5 points for
a task where the architecture matters).

    python bench/bench_oneshot.py                    # the run in bench/README.md: ~2 CPU hours
    python bench/bench_oneshot.py --seeds 1          # one seed (a run per seed, same --out, then
                                                     # all seeds: the finished commands are reused)
    python bench/bench_oneshot.py --data digits --aug digits --epochs 2 --oneshot-epochs 4
    python bench/bench_oneshot.py --quick            # a smoke run (1 seed, 6 trials, 1 epoch)

CPU seconds are the children's (resource.getrusage), so the load of other processes does not
count. Every command uses one torch thread. A finished command's CPU seconds are kept beside its
log (NAME.cpu): a rerun with the same --out reuses it.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], log: Path) -> float:
    """One netspec.search command; its CPU seconds (user + system, children included), kept
    beside its log so that a rerun of the benchmark reuses a finished command."""
    kept = log.with_suffix(".cpu")
    if kept.is_file():
        return float(kept.read_text())
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, "-m", "netspec.search", *args], cwd=ROOT, env=env,
                            stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        sys.exit(f"failed ({rc}): {' '.join(args)}; see {log}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    kept.write_text(f"{cpu}\n")
    return cpu


def trials_of(run_dir: Path) -> list[dict]:
    import csv
    with open(run_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def estimates_on_supernet(spos_dir: Path, common: list[str], archs: list[dict]) -> list[float]:
    """The accuracy each architecture (its decisions) gets on spos's trained supernet."""
    from hydra import compose, initialize_config_dir

    from netspec.search.config import register_search_configs
    from netspec.search.oneshot.phases import make_estimator, train_supernet
    from netspec.search.oneshot.runner import OneShotSearch
    from netspec.search.sampling import FixedTrial
    from netspec.train.config import config_dir, register_spec_paths
    register_search_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("search", overrides=register_spec_paths(
            [*common, "strategy=spos", f"run_dir={spos_dir}", "oneshot.eval_batches=null"]))
    # (any seed: the supernet is the space's)
    search = OneShotSearch(cfg, log=lambda line: None)
    search.open_study()
    train_supernet(search)                   # done already: loads the weights
    estimate = make_estimator(search)
    return [estimate(search.supernet.path(FixedTrial(a))) for a in archs]


def retrained_with_seeds(rdir: Path, a, epochs: int, seeds: list[int]) -> list[float]:
    """Random search's best network trained again as its trial trained (netspec.train with the
    search's defaults for the budget) with each training seed: the first is the search's own
    (it must give the trial's accuracy again), the others show how far a seed moves it. Each
    accuracy is kept beside the run (random{S}_seed{T}.acc) for a rerun."""
    from hydra import compose, initialize_config_dir

    from netspec.search.objective import logged_to
    from netspec.train.app import train
    from netspec.train.config import config_dir, register_configs, register_spec_paths
    register_configs()
    accs = []
    for seed in seeds:
        kept = rdir.parent / f"{rdir.name}_seed{seed}.acc"
        if not kept.is_file():
            with initialize_config_dir(config_dir=config_dir(), version_base=None):
                cfg = compose("train", overrides=register_spec_paths(
                    [f"spec={rdir / 'best.yaml'}", f"data={a.data}", f"aug={a.aug}",
                     f"trainer.max_epochs={epochs}", f"seed={seed}", "callbacks=minimal",
                     "logger=none", "test=false", "trainer.enable_model_summary=false",
                     f"run_dir={rdir.parent / f'{rdir.name}_seed{seed}'}"]))
            with logged_to(rdir.parent / f"{rdir.name}_seed{seed}.log"):
                kept.write_text(f"{train(cfg).best_val_acc}\n")
        accs.append(float(kept.read_text()))
    return accs


def kendall(xs, ys) -> float:
    from scipy.stats import kendalltau
    return float(kendalltau(xs, ys).statistic)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, nargs="*", default=None)
    ap.add_argument("--data", default="shapes", help="the task (data=NAME), e.g. digits")
    ap.add_argument("--epochs", type=int, default=None, help="the per-trial budget")
    ap.add_argument("--oneshot-epochs", type=int, default=None)
    ap.add_argument("--aug", default="none", help="aug=NAME for every command")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    seeds = a.seeds or ([0] if a.quick else [0, 1, 2])
    n_trials = 6 if a.quick else 50
    epochs = a.epochs or (1 if a.quick else 8)
    oneshot_epochs = a.oneshot_epochs or (1 if a.quick else 8)
    out = a.out or Path(tempfile.mkdtemp(prefix="bench_oneshot_"))
    out.mkdir(parents=True, exist_ok=True)
    common = ["space=mobile_stages", f"data={a.data}", f"budget.epochs={epochs}",
              "callbacks.progress_bar=none", "logger=none", "heartbeat=0",
              f"aug={a.aug}"]
    print(f"space mobile_stages on {a.data}, budget {epochs} epochs per training, "
          f"{n_trials} random trials, one-shot: oneshot.epochs={oneshot_epochs}, "
          f"retrain_top=1; seeds {seeds}; runs in {out}", flush=True)
    rows = []
    for seed in seeds:
        r = {"seed": seed}
        for strategy in ("spos", "enas"):      # first: the cheaper runs say early how it goes
            sdir = out / f"{strategy}{seed}"
            r[f"{strategy}_cpu"] = run([*common, f"strategy={strategy}", f"seed={seed}",
                                        f"oneshot.epochs={oneshot_epochs}",
                                        "oneshot.retrain_top=1", f"run_dir={sdir}"],
                                       out / f"{strategy}{seed}.log")
            info = json.loads((sdir / "best.json").read_text())
            r[f"{strategy}_acc"] = info["standalone_acc"]
            r[f"{strategy}_est"] = info["estimated_acc"]
        rdir = out / f"random{seed}"
        r["random_cpu"] = run([*common, "strategy=random", f"n_trials={n_trials}", f"seed={seed}",
                               f"run_dir={rdir}"], out / f"random{seed}.log")
        trials = [t for t in trials_of(rdir) if t["state"] == "COMPLETE"]
        accs = [float(t["acc"]) for t in trials]
        r["random_best"], r["median"] = max(accs), statistics.median(accs)
        r["random_reseeded"] = retrained_with_seeds(rdir, a, epochs,
                                                    [seed, seed + 100, seed + 200])
        skip = {"number", "state", "acc", "rescored_acc", "standalone_acc", "macs", "params",
                "latency_ms", "seconds", "reason", "retried", "worker", "spec"}
        archs = [{k: _value(v) for k, v in t.items() if k not in skip and v != ""}
                 for t in trials]
        est = estimates_on_supernet(out / f"spos{seed}", common, archs)
        r["tau"], r["n_tau"] = kendall(est, accs), len(accs)
        rows.append(r)
        print(json.dumps(r), flush=True)
    report(rows, n_trials)


def _value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def report(rows, n_trials) -> None:
    print(f"\n(0) spread of the {n_trials} standalone accuracies (goal: best - median >= 0.05)")
    for r in rows:
        print(f"  seed {r['seed']}: best {r['random_best']:.4f}, median {r['median']:.4f}, "
              f"best - median {r['random_best'] - r['median']:.4f}")
    print(f"\n(a) CPU seconds against random search of {n_trials} trials (goal <= 0.10)")
    for r in rows:
        print(f"  seed {r['seed']}: random {r['random_cpu']:.0f} s; spos {r['spos_cpu']:.0f} s "
              f"({r['spos_cpu'] / r['random_cpu']:.3f}); enas {r['enas_cpu']:.0f} s "
              f"({r['enas_cpu'] / r['random_cpu']:.3f})")
    print(f"\n(b) standalone accuracy of what each returns against random search's best of "
          f"{n_trials} (goal: equal or better within the seeds' spread)")
    for r in rows:
        print(f"  seed {r['seed']}: random best {r['random_best']:.4f}; spos {r['spos_acc']:.4f} "
              f"(estimated {r['spos_est']:.4f}); enas {r['enas_acc']:.4f} (estimated "
              f"{r['enas_est']:.4f})")
    print("  random search's best trained again with training seeds S, S+100, S+200 (the first "
          "repeats its trial):")
    for r in rows:
        again = r["random_reseeded"]
        print(f"  seed {r['seed']}: {', '.join(f'{v:.4f}' for v in again)} (max - min "
              f"{max(again) - min(again):.4f})")
    if len(rows) > 1:
        for key in ("random_best", "spos_acc", "enas_acc"):
            vals = [r[key] for r in rows]
            print(f"  {key}: mean {statistics.mean(vals):.4f}, spread (max - min) "
                  f"{max(vals) - min(vals):.4f}")
    print("\n(c) Kendall's tau, supernet estimate (spos) against standalone accuracy")
    for r in rows:
        print(f"  seed {r['seed']}: tau {r['tau']:.3f} over {r['n_tau']} architectures")


if __name__ == "__main__":
    main()
