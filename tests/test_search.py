"""netspec.search: spaces, strategies, constraints, pruning, faults, resume and workers.

Tiny spaces on tiny fake images, one epoch per trial: a trial takes a fraction of a second, so
the strategies run in-process with Hydra's compose API; the resume and two-worker tests run the
real command in subprocesses.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from omegaconf import OmegaConf
from optuna.trial import TrialState
from tiny_search import BASE, TINY, cfg_of, cli_env, search, states

import netspec
from netspec.errors import ConfigError, SearchFailed, SpecError, StrategyError
from netspec.search import objective
from netspec.search.latency import measure_latency
from netspec.search.rl import KEY as RL_STATE
from netspec.search.sampling import FixedTrial, Sampler
from netspec.search.space import load_space, shipped_spaces
from netspec.search.strategies import make_sampler
from netspec.search.trials import finished_trials
from netspec.train.config import config_dir, register_configs

ROOT = Path(__file__).resolve().parents[1]

# -- spaces ----------------------------------------------------------------------------------------

def test_choice_options_log_and_step_are_choices(files):
    space = files / "opts.yaml"
    space.write_text(TINY.replace("{choice: [4, 8]}", "{int: [4, 12], step: 4}").replace(
        "head: [", "head: [dropout: {float: [0.01, 0.5], log: true}, "))
    sampler = Sampler(load_space(space), load_space(space).base_spec(), "opts")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(10):
        trial = study.ask()
        s = sampler.sample(trial)
        seen.add(s.params["stem[0].conv.c"])
        dist = trial.distributions["head[0].dropout"]
        assert dist.log and 0.01 <= s.params["head[0].dropout"] <= 0.5
    assert seen <= {4, 8, 12} and len(seen) > 1
    with pytest.raises(SpecError, match="log or step, not both"):
        bad = files / "bad.yaml"
        bad.write_text(TINY.replace("{choice: [4, 8]}", "{int: [4, 12], step: 4, log: true}"))
        Sampler(load_space(bad), load_space(bad).base_spec(), "bad")


def test_conditional_choice_exists_only_under_its_option(files):
    sp = load_space(files / "tiny.yaml")
    sampler = Sampler(sp, sp.base_spec(), "tiny")
    cond = [c for c in sampler.choices if c.conditional]
    assert [c.path for c in cond] == ["stages[0].choice[0].conv.k"]
    pool = sampler.sample(FixedTrial({"stages[0]": "pool"}))
    assert "stages[0].choice[0].conv.k" not in pool.params
    assert pool.spec["stages"] == [{"pool": "max"}]
    conv = sampler.sample(FixedTrial({"stages[0]": "conv", "stages[0].choice[0].conv.k": 1}))
    assert conv.spec["stages"] == [{"conv": {"c": 8, "k": 1, "s": 2}}]
    # the written sample is a plain spec: no choice left, and it resolves to what was measured
    assert netspec.analyze(conv.spec).macs == conv.report.macs


def test_a_choice_in_a_block_body_is_one_decision_for_every_call(files):
    space = files / "block.yaml"
    space.write_text(BASE.replace("stages: [conv: {c: 16, s: 2, n: 1}]", """\
blocks:
  pair:
    args: {c: required}
    body: [conv: {c: c, k: {choice: [1, 3, 5]}}]
stages: [pair: {c: 8, n: 3}]"""))
    sp = load_space(space)
    s = Sampler(sp, sp.base_spec(), "block").sample(FixedTrial({"blocks.pair.body[0].conv.k": 5}))
    assert list(s.params) == ["blocks.pair.body[0].conv.k"]
    assert s.spec["blocks"]["pair"]["body"] == [{"conv": {"c": "c", "k": 5}}]


@pytest.mark.parametrize("name", ["mobile_stages", "nasnet_cell", "compound", "hparams",
                                  "numeric"])
def test_shipped_spaces_sample_resolve_and_write_concrete_specs(name):
    assert name in shipped_spaces()
    sp = load_space(name)
    spec = sp.base_spec(extra_overrides=["num_classes=10", "input.channels=1",
                                         "input.size=[32, 32]"])
    sampler = Sampler(sp, spec, name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(3):
        s = sampler.sample(study.ask(), name)
        text = yaml.safe_dump(s.spec)
        assert "choice:" not in text and "{int:" not in text
        rep = netspec.analyze(s.spec)
        assert (rep.params, rep.macs) == (s.report.params, s.report.macs)
    if name == "hparams":
        assert {"optim.name", "optim.lr", "aug.rotation"} <= set(s.train)
    if name == "compound":
        points = sampler.grid()
        assert {"scale.alpha": 1.2, "scale.beta": 1.1, "scale.gamma": 1.15} in points
        for p in points:
            a, b, g = p["scale.alpha"], p["scale.beta"], p["scale.gamma"]
            assert abs(a * b * b * g * g - 2) <= 0.08 and min(a, b, g) >= 1.0
    if name == "nasnet_cell":       # two cells of five blocks: 2 inputs + 2 ops each
        assert len(sampler.choices) == 40


# -- strategies ------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["random", "tpe"])
def test_strategy_runs_a_conditional_space_and_writes_results(files, strategy):
    r = search(files, f"space={files / 'tiny.yaml'}", f"strategy={strategy}", "n_trials=4",
               "strategy.options.n_startup_trials=2" if strategy == "tpe" else "seed=0")
    assert states(r.study) == [TrialState.COMPLETE] * 4
    for f in ("trials.csv", "best.yaml", "best.json", "history.png", "study.db"):
        assert (r.run_dir / f).is_file(), f
    header = (r.run_dir / "trials.csv").read_text().splitlines()[0].split(",")
    assert {"number", "state", "acc", "macs", "params", "seconds", "stem[0].conv.c"} <= set(header)
    assert len(r.lines) == 5 and "[4/4]" in r.lines[-1] and "best" in r.lines[-1]
    assert "s/trial" in r.lines[-1]


def test_the_shipped_numeric_space_is_one_cmaes_searches(files):
    sp = load_space("numeric")
    sampler = Sampler(sp, sp.base_spec(), "numeric")
    assert sampler.categorical() == [] and len(sampler.choices) == 5
    make_sampler("cmaes", {}, seed=0, n_objectives=1, categorical=sampler.categorical())
    for name in ("mobile_stages", "nasnet_cell", "hparams"):    # every other one has choices
        sp = load_space(name)
        assert Sampler(sp, sp.base_spec(), name).categorical()


def test_cmaes_on_a_numeric_space_and_refused_on_categorical_choices(files):
    r = search(files, f"space={files / 'numeric.yaml'}", "strategy=cmaes", "n_trials=3")
    assert states(r.study) == [TrialState.COMPLETE] * 3
    assert isinstance(r.study.sampler, optuna.samplers.CmaEsSampler)
    with pytest.raises(StrategyError, match="numeric spaces only.*stem"):
        search(files, f"space={files / 'tiny.yaml'}", "strategy=cmaes", "n_trials=2", run="c")


def test_nsga2_multi_objective_writes_the_pareto_set(files):
    # digits, where a larger network learns more: a Pareto front of several trials
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=nsga2", "n_trials=4",
               "objectives=[acc,macs]", "strategy.options.population_size=2", *DIGITS)
    assert len(r.study.directions) == 2
    assert states(r.study) == [TrialState.COMPLETE] * 4
    pareto = sorted((r.run_dir / "pareto").glob("trial_*.yaml"))
    front = {t.number: t for t in r.study.best_trials}
    assert len(front) >= 2, [(t.number, t.values) for t in r.study.trials]
    assert [p.name for p in pareto] == [f"trial_{n:04d}.yaml" for n in sorted(front)]
    assert (r.run_dir / "pareto.png").is_file() and (r.run_dir / "best.yaml").is_file()
    for p in pareto:                  # each file is its trial's network
        t = front[int(p.stem.split("_")[1])]
        rep = netspec.analyze(p)
        assert (rep.params, rep.macs) == (t.user_attrs["params"], t.user_attrs["macs"])
        assert rep.macs == t.values[1]


def _fake_latency(spec, lat) -> float:
    """A stand-in for the measurement: a number of the network alone, so each sample has its own."""
    return netspec.analyze(spec).params / 1000 + lat.batch


def test_latency_objective_is_the_measured_latency(files, monkeypatch):
    monkeypatch.setattr(objective, "measure_latency", _fake_latency)
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=nsga2", "n_trials=3",
               "objectives=[acc,latency]", "strategy.options.population_size=2", "latency.batch=2")
    for t in r.study.trials:
        spec = yaml.safe_load((r.run_dir / t.user_attrs["spec"]).read_text())
        assert t.values[1] == pytest.approx(_fake_latency(spec, OmegaConf.create({"batch": 2})))


class _Probe(torch.nn.Module):
    """A network that records the torch threads each forward ran with."""

    input_shape = (3, 32, 32)

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 32, 3)
        self.threads: set[int] = set()

    def forward(self, x):
        self.threads.add(torch.get_num_threads())
        return self.conv(x)


def test_measure_latency_times_forwards_on_its_threads(monkeypatch):
    import netspec.compile
    probe = _Probe()
    monkeypatch.setattr(netspec.compile, "build", lambda spec: probe)
    lat = OmegaConf.create({"batch": 1, "runs": 3, "warmup": 1, "threads": 2, "device": "cpu"})
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        measure_latency({}, lat)
        assert probe.threads == {2}                  # Timer's num_threads: latency.threads
        assert torch.get_num_threads() == 1          # the caller's setting back
        # one thread: two would wait for each other on a busy machine, whatever the batch
        lat.threads, lat.runs = 1, 7
        one = measure_latency({}, lat)
        lat.batch = 64
        assert measure_latency({}, lat) > 4 * one > 0    # 64 images take longer than one
    finally:
        torch.set_num_threads(before)


def test_grid_compound_scaling_then_the_scaled_family(files):
    space = files / "compound.yaml"
    space.write_text(f"""\
spec:
  base: {files / 'base.yaml'}
  scale:
    phi: 1
    alpha: {{choice: [1.0, 2.0]}}
    beta: {{choice: [1.0, 1.2, 1.4]}}
    gamma: {{choice: [1.0, 1.2]}}
where: "abs(alpha * beta**2 * gamma**2 - 2) <= 0.1"
emit: {{phi: [1, 2]}}
""")
    r = search(files, f"space={space}", "strategy=grid", "n_trials=null")
    points = {(t.params["scale.alpha"], t.params["scale.beta"], t.params["scale.gamma"])
              for t in r.study.trials}
    assert points == {(1.0, 1.4, 1.0), (1.0, 1.2, 1.2), (2.0, 1.0, 1.0)}
    assert states(r.study) == [TrialState.COMPLETE] * 3
    # a trial with gamma > 1 trained at the scaled resolution, written into its spec
    t = next(t for t in r.study.trials if t.params["scale.gamma"] == 1.2)
    assert t.user_attrs["data_size"] == round(8 * 1.2)
    spec = yaml.safe_load((r.run_dir / t.user_attrs["spec"]).read_text())
    assert spec["input"]["size"] == [10, 10] and "phi" not in spec["scale"]
    b1, b2 = (r.run_dir / "emit" / "b1.yaml"), (r.run_dir / "emit" / "b2.yaml")
    assert b1.is_file() and b2.is_file()
    assert netspec.analyze(b2).macs > netspec.analyze(b1).macs
    assert "data.size=" in b2.read_text()


def _rl_updates(study) -> int:
    return study._storage.get_study_system_attrs(study._study_id)[RL_STATE]["updates"]


def test_rl_strategy_runs_and_resumes(files):
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=rl", "n_trials=3")
    assert states(r.study) == [TrialState.COMPLETE] * 3
    assert _rl_updates(r.study) == 3
    r2 = search(files, f"space={files / 'tiny.yaml'}", "strategy=rl", "n_trials=5")
    assert len(finished_trials(r2.study.trials)) == 5
    assert "(3 of 5 trials done)" in r2.lines[0] and len(r2.lines) == 3   # two more trials ran
    assert _rl_updates(r2.study) == 5          # the controller went on from the saved one


def test_hparams_space_sets_training_keys(files):
    space = files / "hp.yaml"
    space.write_text(f"""\
spec: {files / 'base.yaml'}
train:
  optim:
    choice:
      - {{name: sgd, lr: {{float: [0.01, 0.1], log: true}}, momentum: {{float: [0.8, 0.95]}}}}
      - {{name: adam, lr: {{float: [0.0001, 0.01], log: true}}}}
  aug.rotation: {{float: [0.0, 10.0]}}
""")
    r = search(files, f"space={space}", "strategy=random", "n_trials=4", "seed=3")
    for t in r.study.trials:
        opt = t.params["train.optim"]
        assert opt in ("sgd", "adam")
        assert ("train.optim.choice[0].momentum" in t.params) == (opt == "sgd")
        train = t.user_attrs["train"]
        assert train["optim.name"] == opt and "aug.rotation" in train
        hp = yaml.safe_load((r.run_dir / t.user_attrs["spec"]).read_text())
        assert hp["stem"] == [{"conv": {"c": 8, "k": 3}}]     # the fixed network
    info = (r.run_dir / "best.json").read_text()
    assert "optim.name=" in info and "optim.lr=" in info
    bad = files / "typo.yaml"
    bad.write_text(space.read_text().replace("aug.rotation", "aug.rotaton"))
    with pytest.raises(ConfigError, match="aug.rotaton"):
        search(files, f"space={bad}", "n_trials=1", run="typo")


def test_spec_on_the_command_line_replaces_the_base(files):
    r = search(files, "space=hparams", f"spec={files / 'base.yaml'}", "strategy=random",
               "n_trials=1")
    spec = yaml.safe_load((r.run_dir / "best.yaml").read_text())
    assert spec["stages"] == [{"conv": {"c": 16, "s": 2, "n": 1}}]


# -- constraints, pruning, faults ------------------------------------------------------------------

@pytest.mark.parametrize("key, attr", [("max_macs", "macs"), ("max_params", "params")])
def test_static_constraint_rejects_over_budget_samples_in_milliseconds(files, key, attr):
    sp = load_space(files / "tiny.yaml")
    sampler = Sampler(sp, sp.base_spec(), "tiny")
    costs = sorted({getattr(sampler.sample(FixedTrial({"stem[0].conv.c": c, "stages[0]": o})).report,
                            attr) for c in (4, 8) for o in ("conv", "pool")})
    limit = (costs[0] + costs[-1]) // 2
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=8",
               f"constraints.{key}={limit}", "seed=0")
    rejected = [t for t in r.study.trials if "rejected" in t.user_attrs]
    kept = [t for t in r.study.trials if t.state == TrialState.COMPLETE]
    assert rejected and kept
    for t in rejected:
        assert t.state == TrialState.PRUNED and t.user_attrs[attr] > limit
        assert f"> {key}" in t.user_attrs["rejected"]
        assert t.user_attrs["seconds"] < 1.0
        assert not (r.run_dir / "trials" / f"{t.number:04d}" / "train.log").exists()
    assert all(t.user_attrs[attr] <= limit for t in kept)
    assert not any("latency_ms" in t.user_attrs for t in r.study.trials)    # nothing measured
    csv = (r.run_dir / "trials.csv").read_text()
    assert f"> {key}" in csv


def test_max_latency_ms_rejects_the_samples_measured_over_it(files, monkeypatch):
    # measured for real: no network runs a forward in a nanosecond
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=2",
               "constraints.max_latency_ms=0.000001", "latency.runs=2", run="real")
    for t in r.study.trials:
        assert t.state == TrialState.PRUNED and t.user_attrs["latency_ms"] > 0
        assert "> max_latency_ms 1e-06" in t.user_attrs["rejected"]
        assert not (r.run_dir / "trials" / f"{t.number:04d}" / "train.log").exists()
    # a limit between the networks' latencies (a measurement of their own, to be repeatable):
    # exactly those over it are rejected, before training
    monkeypatch.setattr(objective, "measure_latency", _fake_latency)
    sp = load_space(files / "tiny.yaml")
    sampler = Sampler(sp, sp.base_spec(), "tiny")
    lat = OmegaConf.create({"batch": 1})
    times = sorted({_fake_latency(sampler.sample(FixedTrial({"stem[0].conv.c": c, "stages[0]": o}))
                                  .spec, lat) for c in (4, 8) for o in ("conv", "pool")})
    limit = (times[0] + times[-1]) / 2
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=8",
               f"constraints.max_latency_ms={limit}", "seed=0")
    rejected = [t for t in r.study.trials if "rejected" in t.user_attrs]
    kept = [t for t in r.study.trials if t.state == TrialState.COMPLETE]
    assert rejected and kept and len(rejected) + len(kept) == 8
    for t in rejected:
        assert t.state == TrialState.PRUNED and t.user_attrs["latency_ms"] > limit
        assert "> max_latency_ms" in t.user_attrs["rejected"]
        assert not (r.run_dir / "trials" / f"{t.number:04d}" / "train.log").exists()
    assert all(t.user_attrs["latency_ms"] <= limit for t in kept)


def _lr_space(files, lrs):
    space = files / "lr.yaml"
    space.write_text(f"spec: {files / 'base.yaml'}\ntrain:\n  optim.lr: {{choice: {lrs}}}\n")
    return space


DIGITS = ["data=digits", "data.size=8", "data.batch_size=64", "budget.epochs=3",
          "optim=adamw", "optim.weight_decay=0"]


def test_median_pruner_stops_a_poor_trial(files):
    space = _lr_space(files, "[0.01, 0.02, 1.0e-7]")      # two good learning rates, then a poor one
    r = search(files, f"space={space}", "strategy=grid", "n_trials=null", "pruner=median",
               "pruner.options.n_startup_trials=2", *DIGITS)
    by_lr = {t.params["train.optim.lr"]: t for t in r.study.trials}
    assert by_lr[0.01].state == TrialState.COMPLETE
    poor = by_lr[1e-7]
    assert poor.state == TrialState.PRUNED and "pruned after 1 epoch:" in poor.user_attrs["pruned"]
    assert len(poor.intermediate_values) == 1 < len(by_lr[0.01].intermediate_values)


def test_no_trial_is_pruned_at_its_last_epoch(files):
    # the median pruner stops the poor trial after its one epoch (the whole budget) when the
    # last step is not exempt
    space = _lr_space(files, "[0.02, 0.05, 1.0e-7]")
    r = search(files, f"space={space}", "strategy=grid", "n_trials=null", "pruner=median",
               "pruner.options.n_startup_trials=2", *DIGITS, "budget.epochs=1")
    poor = next(t for t in r.study.trials if t.params["train.optim.lr"] == 1e-7)
    assert poor.state == TrialState.COMPLETE and list(poor.intermediate_values) == [1]
    assert poor.value == poor.intermediate_values[1]          # its full result recorded


def test_hyperband_prunes_poor_trials_at_its_first_rung(files):
    # 3 epochs, reduction factor 3: two brackets, one with rungs at epochs 1 and 3, one that only
    # stops at 3. A trial's bracket is crc32("<study>_<number>"): in study lr-grid, trials 0
    # (lr 0.01), 3 and 4 (the poor ones) share the first, 1 and 2 the second
    space = _lr_space(files, "[0.01, 0.02, 0.03, 1.0e-7, 3.0e-7]")
    r = search(files, f"space={space}", "strategy=grid", "n_trials=null", "pruner=hyperband",
               *DIGITS)
    assert isinstance(r.study.pruner, optuna.pruners.HyperbandPruner)
    by_lr = {t.params["train.optim.lr"]: t for t in r.study.trials}
    for lr in (0.01, 0.02, 0.03):
        assert by_lr[lr].state == TrialState.COMPLETE
        assert list(by_lr[lr].intermediate_values) == [1, 2, 3]     # a step is an epoch trained
    for lr in (1e-7, 3e-7):
        assert by_lr[lr].state == TrialState.PRUNED
        assert list(by_lr[lr].intermediate_values) == [1]
        assert "pruned after 1 epoch:" in by_lr[lr].user_attrs["pruned"]


def test_asha_promotes_the_top_third_at_each_rung(files):
    space = _lr_space(files, "[0.01, 0.02, 1.0e-7, 3.0e-7]")
    r = search(files, f"space={space}", "strategy=grid", "n_trials=null", "pruner=asha", *DIGITS)
    assert isinstance(r.study.pruner, optuna.pruners.SuccessiveHalvingPruner)
    by_lr = {t.params["train.optim.lr"]: t for t in r.study.trials}
    assert by_lr[0.01].state == TrialState.COMPLETE        # the first at its rung is promoted
    for lr in (1e-7, 3e-7):                                 # below the best third after 1 epoch
        assert by_lr[lr].state == TrialState.PRUNED
        assert list(by_lr[lr].intermediate_values) == [1]


def test_pruning_is_refused_with_several_objectives(files):
    with pytest.raises(StrategyError, match="single objective"):
        search(files, f"space={files / 'tiny.yaml'}", "strategy=nsga2", "objectives=[acc,macs]",
               "pruner=median")


def test_rl_is_refused_with_several_objectives_before_any_trial(files):
    with pytest.raises(StrategyError, match="single objective.*target_macs.*nsga2"):
        search(files, f"space={files / 'tiny.yaml'}", "strategy=rl", "objectives=[acc,macs]")
    assert not (files / "run" / "trials").exists()
    with pytest.raises(StrategyError, match="temperature must be > 0"):
        search(files, f"space={files / 'tiny.yaml'}", "strategy=rl",
               "+strategy.options.temperature=0")


def test_a_failing_trial_is_recorded_with_its_reason_and_the_study_goes_on(files):
    # an invalid sample (a 16x16 pool on an 8x8 map: SpecError) and a NaN loss (lr 1e30)
    space = files / "faults.yaml"
    space.write_text(f"""\
spec:
  base: {files / 'base.yaml'}
  stages: [pool: {{type: max, k: {{choice: [2, 16]}}}}]
train:
  optim.lr: {{choice: [0.01, 1.0e+30]}}
""")
    r = search(files, f"space={space}", "strategy=grid", "n_trials=null", "max_fail_rate=1.0",
               "optim=sgd", "data.num_samples=96")
    by = {(t.params["stages[0].pool.k"], t.params["train.optim.lr"]): t for t in r.study.trials}
    assert by[(2, 0.01)].state == TrialState.COMPLETE
    for k in ((16, 0.01), (16, 1e30)):
        assert by[k].state == TrialState.FAIL
        assert "SpecError" in by[k].user_attrs["fail_reason"]
    nan = by[(2, 1e30)]
    assert nan.state == TrialState.FAIL and "NonFiniteLoss" in nan.user_attrs["fail_reason"]
    assert (r.run_dir / "trials" / f"{nan.number:04d}" / "error.txt").is_file()
    assert "NonFiniteLoss" in (r.run_dir / "trials.csv").read_text()
    assert (r.run_dir / "best.yaml").is_file()


def test_a_search_that_only_fails_stops(files):
    space = files / "broken.yaml"
    space.write_text(BASE.replace("stages: [conv: {c: 16, s: 2, n: 1}]",
                                  "stages: [pool: {type: max, k: {int: [9, 20]}}]"))
    with pytest.raises(SearchFailed, match="3 of 3 trials failed"):
        search(files, f"space={space}", "strategy=random", "n_trials=10", "fail_rate_after=3")
    study = optuna.load_study(study_name="broken-random",
                              storage=f"sqlite:///{files / 'run' / 'study.db'}")
    assert len(study.trials) == 3


def test_ddp_that_relaunches_the_command_is_refused(files):
    with pytest.raises(ConfigError, match="ddp_spawn"):
        search(files, f"space={files / 'tiny.yaml'}", "trainer=ddp", "trainer.accelerator=cpu")


@pytest.mark.slow
def test_a_trial_trains_with_ddp_spawn_on_every_rank(files):
    """Sampled once here; the two spawned ranks train the module built from the trial's spec and
    rank 0 reports each epoch to the storage (the pruner reads it)."""
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=2",
               "trainer.strategy=ddp_spawn", "trainer.devices=2", "trainer.accelerator=cpu",
               "budget.epochs=2", "pruner=median", "data.batch_size=8")
    assert states(r.study) == [TrialState.COMPLETE] * 2
    for t in r.study.trials:
        assert sorted(t.intermediate_values) == [1, 2]


# -- the exported network trains -------------------------------------------------------------------

def test_best_yaml_trains_with_netspec_train(files):
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=2")
    best = r.run_dir / "best.yaml"
    register_configs()
    cfg = cfg_of(f"spec={best}", "data=fake", "data.num_samples=48", "data.image_size=8",
                 "aug=none", "callbacks=minimal", "logger=none", "trainer.max_epochs=1",
                 f"run_dir={files / 'retrain'}", name="train")
    from netspec.train.app import train
    result = train(cfg)
    assert result.best_val_acc is not None
    assert netspec.analyze(best).params == r.best_trials[0].user_attrs["params"]


def test_search_config_shares_the_training_groups():
    train = yaml.safe_load((ROOT / "conf" / "train.yaml").read_text())
    search_defaults = yaml.safe_load((ROOT / "conf" / "search.yaml").read_text())["defaults"]
    assert "train" in search_defaults            # conf/train.yaml's defaults list, included
    cfg = cfg_of("optim=sgd", "optim.lr=0.05", "data=fake", "trainer.max_epochs=2")
    assert cfg.optim.name == "sgd" and cfg.optim.lr == 0.05 and cfg.data.name == "fake"
    assert cfg.spec is None and cfg.strategy.name == "tpe" and cfg.n_trials == 20
    assert cfg.seed == train.get("seed", 0)
    for group in ("strategy", "pruner"):
        for option in sorted(Path(config_dir(), group).glob("*.yaml")):
            assert cfg_of(f"{group}={option.stem}")[group].name == option.stem


def test_hydra_sweep_of_netspec_train(tmp_path):
    """`python -m netspec.train -m optim.lr=0.1,0.05 spec=resnet20,resnet56` (tiny: fast_dev_run)."""
    out = subprocess.run(
        [sys.executable, "-m", "netspec.train", "-m", "optim.lr=0.1,0.05",
         "spec=resnet20,resnet56", "debug=fast_dev_run", "data=fake", "data.num_samples=32",
         "data.image_size=16", "data.batch_size=8", "callbacks=minimal", "logger=none",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = [line for line in out.stdout.splitlines() if "[HYDRA]" in line and "\t#" in line]
    assert len(jobs) == 4
    assert any("resnet56" in j and "optim.lr=0.05" in j for j in jobs)
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == \
        ["0", "1", "2", "3"]


@pytest.mark.slow
def test_the_wheel_ships_the_search_spaces_and_configs(tmp_path):
    # from a clean copy: setuptools reuses a build/ folder, whose stale files would hide a
    # package missing from pyproject.toml (and the checkout gets none)
    src, target = tmp_path / "src", tmp_path / "site"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "__pycache__", ".*_cache", "outputs"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(src)],
                   check=True, cwd=tmp_path)
    pkg = target / "netspec"
    for f in ("search_spaces/mobile_stages.yaml", "search_spaces/nasnet_cell.yaml",
              "search_spaces/compound.yaml", "search_spaces/hparams.yaml",
              "search_spaces/numeric.yaml", "search/runner.py",
              "search/rl/sampler.py",
              "conf/search.yaml", "conf/strategy/tpe.yaml", "conf/pruner/median.yaml"):
        assert (pkg / f).is_file(), f
    code = ("import pathlib, netspec.search.space as s; "
            "print(s.space_dir(), sorted(s.shipped_spaces()))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(target)},
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(pkg / "search_spaces") in out and "nasnet_cell" in out


def test_only_the_best_trials_keep_their_checkpoints(files):
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=5",
               "callbacks.checkpoint=true", "keep_checkpoints=2", "data=digits", "data.size=8",
               "optim=adamw", "optim.lr=0.02")
    kept = {int(p.parent.name) for p in (r.run_dir / "trials").glob("*/checkpoints")}
    ranked = sorted((t for t in r.study.trials if t.state == TrialState.COMPLETE),
                    key=lambda t: (-t.value, t.number))
    assert len(ranked) == 5 and kept == {t.number for t in ranked[:2]}
    assert all(list((r.run_dir / "trials" / f"{n:04d}" / "checkpoints").glob("*.ckpt"))
               for n in kept)
    assert all((r.run_dir / "trials" / f"{t.number:04d}" / "spec.yaml").is_file()
               for t in ranked)


def test_a_search_at_chance_level_says_so(files):
    # fake data has random labels: nothing to learn, every trial at chance (1/10)
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=3")
    signal = json.loads((r.run_dir / "best.json").read_text())["signal"]
    assert signal["at_chance"] and signal["chance"] == 0.1 and signal["trials"] == 3
    assert "budget.epochs=1 now" in signal["advice"]
    assert len(r.warnings) == 2                       # when it became clear, and at the end
    assert all(w.startswith("warning: all 3 trained trials score at chance") for w in r.warnings)
    r = search(files, f"space={files / 'tiny.yaml'}", "strategy=random", "n_trials=3",
               "data=digits", "data.size=8", "optim=adamw", "optim.lr=0.02", "budget.epochs=2",
               run="learns")
    signal = json.loads((r.run_dir / "best.json").read_text())["signal"]
    assert not signal["at_chance"] and signal["best_acc"] > 0.3 and "advice" not in signal
    assert not r.warnings
