"""Benchmark of the search strategies and of pruning, on `digits`, through `netspec.search`'s runner.

One small search space (a conditional CNN space with the learning rate as a choice: 540
networks), the same per-trial budget for every trial (3 epochs of digits at 16x16), 3 seeds.
For each seed it runs `random`, `tpe` and `rl` for 50 trials each and prints:

(a) how many trials each strategy needs to reach the best validation accuracy random search finds
    in 50 trials (of the same seed). Goal: TPE and RL within 20. Random search samples with its
    own sampler seed (seed + 1000; the training seed is the same), so that TPE's random start-up
    trials are not a copy of the run it is measured against.
(b) the training compute that pruning saves at equal best accuracy: random search again with
    each pruner (median, asha, hyperband; the same seed draws the same 50 samples, since random
    sampling does not look at results), against the same run without pruning: epochs trained,
    training seconds, and both best accuracies. Goal: at least 40% saved. Its per-trial budget
    is 6 epochs (`--prune-epochs`): with 3 there is little to cut, and the accuracy after one
    epoch of a one-cycle schedule predicts the final one poorly.

    python bench/bench_search.py            # the full run: about 14 minutes on 2 CPU cores
    python bench/bench_search.py --quick    # a smoke run: about 50 s

(--quick: 1 seed, 10 trials, 2 epochs; 3 for pruning.)

Each trial trains with one torch thread (the networks are tiny: a second thread mostly waits).
A network that was trained before in the same run with the same seed and configuration (the
controller and TPE sample some architectures repeatedly) is not trained again: training is
deterministic (the same seed, one thread), so the cached accuracy is the one it would get. The
compute figures charge every trial its full training as measured the first time.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # see bench_compile.py

import argparse  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import optuna  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from netspec.search import (  # noqa: E402
    objective,
    run_search,  # noqa: E402
    runner,
)
from netspec.search.config import register_search_configs  # noqa: E402
from netspec.search.trials import finished_trials  # noqa: E402
from netspec.train.config import config_dir, register_spec_paths  # noqa: E402

# 4 x 3 x 3 x 3 x 5 = 540 networks; `stages[0]` is a choice between a strided conv (with its own
# kernel choice: a conditional decision) and a max pool
SPACE = """\
doc: netspec bench space (bench/bench_search.py)
spec:
  name: bench_cnn
  input: {channels: 1, size: 16}
  num_classes: 10
  defaults: {norm: bn, act: relu}
  stem: [conv: {c: {choice: [4, 8, 16, 32]}, k: {choice: [1, 3, 5]}}]
  stages:
    - {choice: [{conv: {c: 32, k: {choice: [1, 3]}, s: 2}}, {pool: max}]}
    - conv: {c: {choice: [16, 32, 64]}, k: 3, s: 2}
  head: [pool: global_avg, linear: {c: num_classes}]
train:
  optim.lr: {choice: [0.0003, 0.001, 0.003, 0.01, 0.03]}
"""
STRATEGIES = ("random", "tpe", "rl")
RANDOM_SEED_OFFSET = 1000


class SamplerSeeds:
    """Random search draws with sampler seed SEED + 1000 (its trials still train with SEED): with
    the same sampler seed, TPE's 10 random start-up trials would be random search's first 10, and
    TPE would share every early lucky find of the run it is measured against."""

    def __init__(self):
        self.enabled = hasattr(runner, "make_sampler")
        if self.enabled:
            self.original = runner.make_sampler
            runner.make_sampler = self

    def __call__(self, name, options, *, seed, **kwargs):
        if name == "random" and seed is not None:
            seed = seed + RANDOM_SEED_OFFSET
        return self.original(name, options, seed=seed, **kwargs)

    def close(self):
        if self.enabled:
            runner.make_sampler = self.original


# -- a cache of trainings: the same network, seed and configuration is trained once ---------------

class TrainCache:
    """Wraps the runner's training call: an identical configuration (but for the trial's spec name
    and run dir) returns the first training's result; trainings with callbacks (pruning) always
    run. ``seconds[trial_dir]`` is the training time charged to each trial."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and hasattr(objective, "train_trial")
        self.results: dict[str, tuple] = {}
        self.seconds: dict[str, float] = {}
        self.trained = self.hits = 0
        if self.enabled:
            self.original = objective.train_trial
            objective.train_trial = self

    def key(self, tcfg) -> str:
        c = OmegaConf.to_container(tcfg, resolve=True)
        c["spec"] = {k: v for k, v in c["spec"].items() if k != "name"}
        c.pop("run_dir", None)
        return OmegaConf.to_yaml(OmegaConf.create(c))

    def __call__(self, tcfg, callbacks, log_file: Path):
        tdir = str(Path(log_file).parent)
        key = None if callbacks else self.key(tcfg)
        if key is not None and key in self.results:
            result, seconds, first = self.results[key]
            Path(log_file).write_text(f"bench cache: the same training as {first}\n")
            self.hits += 1
            self.seconds[tdir] = seconds
            return result
        start = time.perf_counter()
        result = self.original(tcfg, callbacks, log_file)
        self.seconds[tdir] = time.perf_counter() - start
        self.trained += 1
        if key is not None:
            self.results[key] = (result, self.seconds[tdir], tdir)
        return result

    def close(self):
        if self.enabled:
            objective.train_trial = self.original


# -- runs ---------------------------------------------------------------------------------------------

def search(out: Path, space: Path, strategy: str, seed: int, args, pruner: str = "none",
           epochs: int | None = None):
    epochs = epochs or args.epochs
    run_dir = out / f"{strategy}-{pruner}-e{epochs}-seed{seed}"
    overrides = [f"space={space}", "data=digits", f"data.size={args.size}", "aug=none",
                 "callbacks.checkpoint=false", "trainer.enable_model_summary=false",
                 "heartbeat=0", f"n_trials={args.trials}", f"budget.epochs={epochs}",
                 f"strategy={strategy}", f"pruner={pruner}", f"seed={seed}",
                 f"run_dir={run_dir}", f"study_name=bench-{strategy}-{pruner}-{epochs}-{seed}"]
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("search", overrides=register_spec_paths(overrides))
    start = time.time()
    result = run_search(cfg, log=(print if args.verbose else lambda line: None))
    trials = sorted(finished_trials(result.study.get_trials(deepcopy=False)),
                    key=lambda t: t.number)
    return trials, run_dir, time.time() - start


def accuracy(t) -> float | None:
    return t.value if t.state == TrialState.COMPLETE else None


def best_of(trials) -> float:
    return max((a for a in map(accuracy, trials) if a is not None), default=float("nan"))


def trials_to_reach(trials, target: float) -> int | None:
    for i, t in enumerate(trials, 1):
        a = accuracy(t)
        if a is not None and a >= target - 1e-12:
            return i
    return None


def epochs_trained(t, budget: int) -> int:
    if t.state == TrialState.COMPLETE:
        return budget
    return len(t.intermediate_values)


def fmt(n, trials: int) -> str:
    return str(n) if n is not None else f">{trials}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 seed, 10 trials, 2 epochs")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--size", type=int, default=16, help="digits resized to size x size")
    p.add_argument("--prune-epochs", type=int, default=6,
                   help="the per-trial budget of (b): pruning needs epochs to cut")
    p.add_argument("--pruners", default="median,asha,hyperband",
                   help="comma-separated: median, asha, hyperband")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="keep the run dirs here")
    p.add_argument("--no-cache", action="store_true", help="train every trial")
    p.add_argument("--verbose", action="store_true", help="the runner's line per trial")
    args = p.parse_args(argv)
    pruners = [x.strip() for x in args.pruners.split(",") if x.strip()]
    if args.quick:
        args.seeds, args.trials, args.epochs, args.prune_epochs = 1, 10, 2, 3
    goal_trials = 20 if args.trials == 50 else max(1, round(args.trials * 0.4))

    torch.set_num_threads(max(1, args.threads))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    register_search_configs()

    out = args.out or Path(tempfile.mkdtemp(prefix="netspec-bench-search-"))
    out.mkdir(parents=True, exist_ok=True)
    space = out / "bench_space.yaml"
    space.write_text(SPACE)
    cache = TrainCache(not args.no_cache)
    sampler_seeds = SamplerSeeds()
    started = time.time()
    seeds = list(range(args.seeds))
    runs: dict[tuple[str, int], list] = {}
    dirs: dict[tuple[str, int], Path] = {}
    print(f"netspec bench_search: {len(seeds)} seeds x ({', '.join(STRATEGIES)}, random + "
          f"{'/'.join(pruners)} pruner) x {args.trials} trials; digits {args.size}x{args.size}, "
          f"{args.epochs} epochs per trial, {torch.get_num_threads()} thread(s)", flush=True)
    if sampler_seeds.enabled:
        print(f"seed s: every trial trains with seed s; tpe and rl sample with seed s, random "
              f"search with s + {RANDOM_SEED_OFFSET} (else tpe's random start-up would copy it)", flush=True)
    try:
        for seed in seeds:
            for strategy in STRATEGIES:
                trials, run_dir, sec = search(out, space, strategy, seed, args)
                runs[strategy, seed], dirs[strategy, seed] = trials, run_dir
                print(f"  seed {seed} {strategy:<7} best {best_of(trials):.4f}  {sec:6.1f} s",
                      flush=True)
            for pruner in ["none", *pruners]:
                trials, run_dir, sec = search(out, space, "random", seed, args, pruner=pruner,
                                              epochs=args.prune_epochs)
                runs[pruner, seed], dirs[pruner, seed] = trials, run_dir
                print(f"  seed {seed} random + {pruner} pruner: best {best_of(trials):.4f}  "
                      f"{sec:6.1f} s", flush=True)
    finally:
        cache.close()
        sampler_seeds.close()

    # (a) trials to reach random's best ------------------------------------------------------------
    n = args.trials
    w = 9

    def row(label, cells, spec="", total=None):
        """A table's line: the label, a cell per seed, and the total column when given."""
        line = f"{label:<28}" + "".join(f"{c:>{w}{spec}}" for c in cells)
        return line + (f"{total:>{w}{spec}}" if total is not None else "")
    head = "".join(f"{'seed ' + str(s):>{w}}" for s in seeds)
    print(f"\n(a) trials needed to reach the best accuracy random search finds in {n} trials "
          f"(same seed); goal: tpe and rl within {goal_trials}")
    print(f"{'':<28}{head}{'median':>{w}}{'goal':>{w}}")
    targets = {s: best_of(runs["random", s]) for s in seeds}
    print(row(f"random best in {n}", [targets[s] for s in seeds], ".4f"))
    verdict = []
    for strategy in STRATEGIES:
        counts = [trials_to_reach(runs[strategy, s], targets[s]) for s in seeds]
        med = statistics.median([c if c is not None else n + 1 for c in counts])
        med_s = fmt(int(med) if med == int(med) else med, n) if med <= n else f">{n}"
        goal = "" if strategy == "random" else \
            ("ok" if med <= goal_trials else "missed")
        if strategy != "random":
            verdict.append((strategy, med <= goal_trials))
        print(f"{'  ' + strategy:<28}" + "".join(f"{fmt(c, n):>{w}}" for c in counts) +
              f"{med_s:>{w}}{goal:>{w}}")
    print(f"{'best in ' + str(n) + ' trials:':<28}")
    for strategy in STRATEGIES:
        print(row(f"  {strategy}", [best_of(runs[strategy, s]) for s in seeds], ".4f"))
    print(f"{'distinct networks sampled:':<28}")
    for strategy in STRATEGIES:
        print(row(f"  {strategy}", [len({repr(sorted(t.params.items())) for t in runs[strategy, s]})
                                    for s in seeds]))

    # (b) pruning ---------------------------------------------------------------------------------
    def train_seconds(key, s):
        return sum(cache.seconds.get(str(dirs[key, s] / "trials" / f"{t.number:04d}"), 0.0)
                   for t in runs[key, s])
    pe = args.prune_epochs
    b_full = [best_of(runs["none", s]) for s in seeds]
    e_full = [sum(epochs_trained(t, pe) for t in runs["none", s]) for s in seeds]
    s_full = [train_seconds("none", s) for s in seeds]
    outcome = {}
    for pruner in pruners:
        print(f"\n(b) pruning: random search with and without the {pruner} pruner "
              f"(the same {n} samples per seed, {pe} epochs per trial); goal: at least 40% of "
              f"the training saved at equal best accuracy")
        print(f"{'':<28}{head}{'total':>{w}}")
        same = [[t.params for t in runs["none", s]] == [t.params for t in runs[pruner, s]]
                for s in seeds]
        e_pruned = [sum(epochs_trained(t, pe) for t in runs[pruner, s]) for s in seeds]
        s_pruned = [train_seconds(pruner, s) for s in seeds]
        n_pruned = [sum(t.state == TrialState.PRUNED for t in runs[pruner, s]) for s in seeds]
        b_pruned = [best_of(runs[pruner, s]) for s in seeds]
        equal_per_seed = [abs(a - b) < 1e-9 for a, b in zip(b_full, b_pruned)]
        print(row("same samples", ["yes" if x else "NO" for x in same]))
        print(row("trials pruned", n_pruned, total=sum(n_pruned)))
        print(row("epochs trained, no pruning", e_full, total=sum(e_full)))
        print(row("epochs trained, pruning", e_pruned, total=sum(e_pruned)))
        total_e = 1 - sum(e_pruned) / sum(e_full)
        print(row("epochs saved", [1 - b / a for a, b in zip(e_full, e_pruned)], ".0%", total_e))
        if cache.enabled and all(s_full) and all(s_pruned):   # (not when a rerun resumed)
            print(row("train seconds, no pruning", s_full, ".1f", sum(s_full)))
            print(row("train seconds, pruning", s_pruned, ".1f", sum(s_pruned)))
            print(row("seconds saved", [1 - b / a for a, b in zip(s_full, s_pruned)], ".0%",
                      1 - sum(s_pruned) / sum(s_full)))
        print(row("best acc, no pruning", b_full, ".4f"))
        print(row("best acc, pruning", b_pruned, ".4f"))
        print(row("equal best accuracy", ["yes" if x else "no" for x in equal_per_seed]))
        equal = all(equal_per_seed)
        outcome[pruner] = (total_e, equal)

    print("\nsummary: " + ", ".join(f"{s} {'reaches' if ok else 'does not reach'} random's "
                                      f"best within {goal_trials} trials (median)"
                                      for s, ok in verdict) + "; pruning saves " +
          ", ".join(f"{total:.0%} ({p}{', equal best accuracy' if equal else ', best differs'}"
                    f": {'ok' if total >= 0.4 and equal else 'missed'})"
                    for p, (total, equal) in outcome.items()) + " of the training epochs")
    where = f"run dirs kept in {out}" if args.out is not None else "run dirs removed"
    trained = f"{cache.trained} trainings, {cache.hits} cached repeats; " if cache.enabled else ""
    print(f"{trained}{time.time() - started:.0f} s in all; {where}")
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
