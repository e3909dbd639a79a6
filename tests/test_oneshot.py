"""The weight-sharing supernet and the one-shot strategies (strategy=enas, strategy=spos).

A path must be the standalone network it stands for, an option's weights must be one tensor in
every path that uses it, the constraints must hold for every path drawn, what can't be shared is
refused where it is written, and a killed run resumes. The CLI runs in subprocesses; the DDP
test trains the supernet on 2 CPU processes (slow)."""
from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from optuna.trial import TrialState
from parity import randomize

import netspec
from netspec.errors import ConfigError, SpecError
from netspec.search import run_search
from netspec.search.config import register_search_configs
from netspec.search.oneshot.paths import UniformTrial
from netspec.search.oneshot.supernet import OutsideSupernet, Supernet, draw_path
from netspec.search.sampling import FixedTrial, Sampler
from netspec.search.space import load_space
from netspec.train.config import config_dir, register_spec_paths

# a kernel, a width, a repeat count, a choice between layers and an op choice in a block
SPACE = """\
input: {channels: 3, size: 8}
num_classes: 10
blocks:
  unit:
    args: {c: required}
    residual: [{conv: {c: c, k: {choice: [1, 3]}}}, {conv: {c: c, act: none}}]
stem: [conv: {c: 8, k: 3}]
stages:
  - conv: {c: {choice: [8, 16]}, k: {choice: [3, 5]}, n: {int: [1, 3]}}
  - {choice: [{unit: {c: 16}}, identity]}
head: [pool: global_avg, linear: {c: num_classes}]
"""
FAST = ["data=fake", "data.num_samples=64", "data.image_size=8", "data.batch_size=16",
        "aug=none", "trainer.enable_model_summary=false", "sched=cosine",
        "sched.warmup_epochs=0", "heartbeat=0", "callbacks.progress_bar=none", "logger=none"]


@pytest.fixture(scope="module", autouse=True)
def _configs():
    register_search_configs()


@pytest.fixture
def space_file(tmp_path):
    f = tmp_path / "small.yaml"
    f.write_text(SPACE)
    return f


def sampler_of(space, size=8, channels=3):
    sp = load_space(space)
    base = sp.base_spec(None, [], ["num_classes=10", f"input.channels={channels}",
                                   f"input.size=[{size}, {size}]"])
    return Sampler(sp, base, sp.name)


@pytest.fixture(scope="module")
def shipped():
    """The shipped spaces' supernets at 32x32 (built once: NASNet's coverage takes seconds)."""
    return {name: Supernet(sampler_of(name, 32, 1), seed=0)
            for name in ("mobile_stages", "nasnet_cell")}


def _paths(supernet, n, seed):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        try:
            out.append(supernet.path(UniformTrial(rng)))
        except OutsideSupernet:
            continue
    return out


# -- a path is its standalone network ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["mobile_stages", "nasnet_cell", "small"])
def test_a_path_computes_what_its_standalone_network_computes(name, shipped, space_file):
    supernet = shipped.get(name) or Supernet(sampler_of(space_file), seed=0)
    torch.manual_seed(0)
    randomize(supernet)                  # weights, norm affines and running statistics
    size = 32 if name in shipped else 8
    x = torch.randn(4, 1 if name in shipped else 3, size, size)
    for path in _paths(supernet, 4, seed=1):
        sample = supernet.space.sample(FixedTrial(path.params))
        alone = netspec.build(sample.spec)           # the spec best.yaml would hold
        alone.load_state_dict(path.state_dict())
        supernet.activate(path)
        supernet.eval(), alone.eval()
        ours, theirs = supernet(x), alone(x)
        scale = theirs.abs().max()
        assert scale > 1e-3
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5 * float(scale))
        assert (path.n_params, path.macs) == (sample.report.params, sample.report.macs)


def test_paths_one_decision_apart_are_each_their_own_network(space_file):
    """For every decision, two paths that differ in it alone (the built paths are cached: a
    cache that confused them would run the wrong network)."""
    supernet = Supernet(sampler_of(space_file), seed=0)
    randomize(supernet)
    base = {"stages[0].conv.c": 16, "stages[0].conv.k": 3, "stages[0].conv.n": 2,
            "stages[1]": "unit", "blocks.unit.residual[0].conv.k": 3}
    other = {"stages[0].conv.c": 8, "stages[0].conv.k": 5, "stages[0].conv.n": 3,
             "stages[1]": "identity", "blocks.unit.residual[0].conv.k": 1}
    assert set(base) == {c.path for c in supernet.space.index.values()}
    x = torch.randn(2, 3, 8, 8)
    for name in base:
        for params in (base, {**base, name: other[name]}):
            path = supernet.path(FixedTrial(params))
            alone = netspec.build(supernet.space.sample(FixedTrial(params)).spec)
            alone.load_state_dict(path.state_dict())
            supernet.activate(path)
            supernet.eval(), alone.eval()
            torch.testing.assert_close(supernet(x), alone(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("share", ["module", "slice"])
def test_the_supernet_holds_every_standalone_networks_weights_once(space_file, share):
    """Its weights are the union of the weights of every network of the space, each built
    standalone (the space enumerated here, not sampled as the supernet is): by place and shape
    (share=module), or by place and structure at the largest size (share=slice)."""
    import itertools
    import math

    from netspec.search.oneshot.slicing import structure
    sampler = sampler_of(space_file)
    supernet = Supernet(sampler, seed=0, share=share)
    choices = list(sampler.index.values())
    grids = [c.labels() if c.kind == "choice" else list(range(c.raw["int"][0],
                                                               c.raw["int"][1] + 1))
             for c in choices]
    union = {}
    for combo in itertools.product(*grids):
        sample = sampler.sample(FixedTrial(dict(zip((c.path for c in choices), combo))))
        net = netspec.build(sample.spec)
        for name, m in net.named_modules():
            for pname, p in m.named_parameters(recurse=False):
                form = structure(m) if share == "slice" else None
                if form is None:
                    union[(name, pname, m.extra_repr(), tuple(p.shape))] = tuple(p.shape)
                else:
                    had = union.get((name, pname, form), p.shape)
                    union[(name, pname, form)] = tuple(map(max, had, p.shape))
    assert len(grids) == 5 and len(union) > (40 if share == "module" else 15)
    assert supernet.shared_params() == sum(math.prod(s) for s in union.values())
    assert len(list(supernet.weights.parameters())) == len(union)
    assert supernet.outside == 0


# -- sharing is real ---------------------------------------------------------------------------------

def _storages(path) -> dict:
    """(place, module kind, tensor) -> the storage of the shared tensor it is (or is a slice
    of), for every tensor the path uses; the kind is what slicing can't bridge (a conv's
    stride or groups, a pool against a conv), or the exact shape where nothing is sliced."""
    from netspec.search.oneshot.slicing import structure
    views = {}
    for m, t, full, _ in path.views.items:
        views.setdefault(id(m), []).append((t, full))
    out = {}
    for name, m in path.module.named_modules():
        own = [(t, x) for t, x in [*m._parameters.items(), *m._buffers.items()] if x is not None]
        for t, x in own + views.get(id(m), []):
            kind = structure(m) or (m.extra_repr(), tuple(x.shape))
            out[(name, type(m).__name__, kind, t)] = x.untyped_storage().data_ptr()
    return out


@pytest.mark.parametrize("name", ["nasnet_cell", "mobile_stages"])
def test_an_options_weights_are_one_tensor_in_every_path_that_uses_it(shipped, name):
    supernet = shipped[name]
    a, b = _paths(supernet, 2, seed=7)
    sa, sb = _storages(a), _storages(b)
    common = sa.keys() & sb.keys()
    assert common and sa != sb
    assert all(sa[k] == sb[k] for k in common)
    store = {t.untyped_storage().data_ptr() for t in supernet.weights.parameters()}
    store |= {t.untyped_storage().data_ptr() for t in supernet.weights.buffers()}
    assert set(sa.values()) <= store                        # nothing of its own
    # a step on path a changes path b's output through what they share, and only that
    x = torch.randn(8, 1, 32, 32)
    supernet.activate(b), supernet.eval()
    before = supernet(x).detach().clone()
    supernet.activate(a), supernet.train()
    F.cross_entropy(supernet(x), torch.arange(8) % 10).backward()
    with torch.no_grad():
        for p in supernet.weights.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    touched = {p.untyped_storage().data_ptr() for p in supernet.weights.parameters()
               if p.grad is not None}
    assert touched and touched <= set(sa.values())
    supernet.activate(b), supernet.eval()
    assert not torch.allclose(supernet(x), before)
    supernet.zero_grad(set_to_none=True)


BASE = {"stages[0].conv.c": 8, "stages[0].conv.k": 3, "stages[1]": "unit",
        "blocks.unit.residual[0].conv.k": 1}


def _first_conv(path, i):
    return getattr(path.module.stages[0], f"block{i}").conv.weight


def test_repeats_share_their_first_blocks_and_kernels_have_weights_of_their_own(space_file):
    supernet = Supernet(sampler_of(space_file), seed=0, share="module")
    one = supernet.path(FixedTrial({**BASE, "stages[0].conv.n": 1}))
    three = supernet.path(FixedTrial({**BASE, "stages[0].conv.n": 3}))
    five = supernet.path(FixedTrial({**BASE, "stages[0].conv.n": 3, "stages[0].conv.k": 5}))
    assert _first_conv(one, 0) is _first_conv(three, 0)
    assert _first_conv(three, 0) is not _first_conv(five, 0)
    assert _first_conv(five, 0).shape[-1] == 5


def test_sliced_kernels_and_widths_are_the_centre_and_first_channels_of_one_tensor(space_file):
    supernet = Supernet(sampler_of(space_file), seed=0, share="slice")
    randomize(supernet)
    small = supernet.path(FixedTrial({**BASE, "stages[0].conv.n": 2}))
    wide = supernet.path(FixedTrial({**BASE, "stages[0].conv.n": 2, "stages[0].conv.k": 5,
                                     "stages[0].conv.c": 16}))
    k3, k5 = _first_conv(small, 1), _first_conv(wide, 1)    # block 1: 8 -> 8 and 16 -> 16
    assert tuple(k3.shape) == (8, 8, 3, 3) and tuple(k5.shape) == (16, 16, 5, 5)
    torch.testing.assert_close(k3, k5[:8, :8, 1:4, 1:4], rtol=0, atol=0)
    assert k3.untyped_storage().data_ptr() == k5.untyped_storage().data_ptr()
    # and a 3x3 path's step trains the centre of the 5x5
    supernet.activate(small), supernet.train()
    F.cross_entropy(supernet(torch.randn(4, 3, 8, 8)), torch.arange(4)).backward()
    full = next(p for n, p in supernet.weights.named_parameters()
                if n.startswith("stages/0/block1/conv") and n.endswith("weight"))
    assert full.grad[:8, :8, 1:4, 1:4].abs().sum() > 0
    assert full.grad[:, :, 0].abs().sum() == 0 and full.grad[8:].abs().sum() == 0


# -- constraints and refusals -----------------------------------------------------------------------

def test_every_path_drawn_keeps_the_constraints(space_file):
    supernet = Supernet(sampler_of(space_file), seed=0)
    lo, hi = supernet.macs_range
    limit = (lo + hi) / 2
    rng = random.Random(3)
    drawn = [draw_path(supernet, lambda: UniformTrial(rng), lambda p: p.macs <= limit)[0]
             for _ in range(30)]
    assert all(p.macs <= limit for p in drawn)
    assert len({p.macs for p in drawn}) > 3          # not one path over and over
    with pytest.raises(Exception, match="no path of 200 drawn satisfies the constraints"):
        draw_path(supernet, lambda: UniformTrial(rng), lambda p: p.macs < lo)


def test_a_training_choice_is_refused_where_it_is_written():
    with pytest.raises(SpecError, match=r"hparams\.yaml.*'train\.optim.*training-config choice"):
        Supernet(sampler_of("hparams", 32, 1), seed=0)


def test_a_choice_of_the_input_size_is_refused_with_trial_search_suggested():
    with pytest.raises(SpecError, match=r"compound\.yaml.*changes the input size.*trial strategy"):
        Supernet(sampler_of("compound", 32, 1), seed=0)


def test_a_choice_that_changes_the_resolution_by_scale_is_refused(tmp_path):
    f = tmp_path / "res.yaml"
    f.write_text(SPACE.replace("num_classes: 10\n", "num_classes: 10\nscale: {resolution: "
                                                    "{choice: [1.0, 2.0]}}\n"))
    with pytest.raises(SpecError, match=r"res\.yaml:3.*scale\.resolution.*input size"):
        Supernet(sampler_of(f), seed=0)


# -- the strategies, in process ----------------------------------------------------------------------

def cfg_of(*overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("search", overrides=register_spec_paths(list(overrides)))


def one_shot(tmp_path, space_file, *overrides, run="run"):
    cfg = cfg_of(*FAST, f"space={space_file}", f"run_dir={tmp_path / run}", *overrides)
    lines = []
    result = run_search(cfg, log=lines.append)
    result.lines = lines
    return result


@pytest.mark.parametrize("strategy", ["spos", "enas"])
def test_a_one_shot_search_writes_a_spec_that_trains_as_is(tmp_path, space_file, strategy):
    res = one_shot(tmp_path, space_file, f"strategy={strategy}", "oneshot.epochs=2",
                   "oneshot.candidates=12", "oneshot.retrain_top=2", "budget.epochs=1",
                   "strategy.options.controller_steps=3" if strategy == "enas" else "seed=0")
    out = res.run_dir
    study = res.study
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) >= (12 if strategy == "spos" else 1)
    info = json.loads((out / "best.json").read_text())
    retrained = json.loads(json.dumps(study.user_attrs["standalone"]))
    assert len(retrained) == 2
    assert info["standalone_acc"] == max(retrained.values())
    top = max(retrained.values())             # ties: the earlier trial
    assert info["trial"] == min(int(n) for n, a in retrained.items() if a == top)
    header = (out / "best.yaml").read_text()
    assert "estimated on the supernet" in header and "python -m netspec.train" in header
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("number,state,acc,rescored_acc,standalone_acc,macs,params")
    assert sum(1 for r in rows[1:] if r.split(",")[4]) == 2      # two standalone accuracies
    assert (out / "history.png").is_file() and (out / "estimates.png").is_file()
    ckpt = torch.load(out / "supernet" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["netspec_oneshot"]["strategy"] == strategy
    if strategy == "enas":
        assert ckpt["netspec_oneshot"]["updates"] == 2 * 3       # controller steps per epoch
    # what best.yaml says trains as it is
    from netspec.train.app import train
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        tcfg = compose("train", overrides=register_spec_paths(
            [f"spec={out / 'best.yaml'}", *FAST[:5], "trainer.max_epochs=1",
             f"run_dir={tmp_path / 'retrain'}", "callbacks.progress_bar=none", "logger=none"]))
    assert train(tcfg).best_val_acc is not None


def test_the_one_shot_keys_are_checked(tmp_path, space_file):
    for bad, says in (("oneshot.search=annealing", "oneshot.search=annealing: use evolution"),
                      ("oneshot.epochs=0", "oneshot.epochs must be at least 1"),
                      ("oneshot.share=cell", "oneshot.share=cell: use slice"),
                      ("pruner=median", "pruner=median: a one-shot search"),
                      ("constraints.max_latency_ms=3", "not a measured latency")):
        with pytest.raises(ConfigError, match=says):
            one_shot(tmp_path, space_file, "strategy=spos", bad)
    with pytest.raises(Exception, match="strategy=enas has no option 'lr_rate'"):
        one_shot(tmp_path, space_file, "strategy=enas", "+strategy.options.lr_rate=1",
                 "oneshot.epochs=1", "oneshot.candidates=1")


# -- the CLI: kill -9, then the same command ---------------------------------------------------------

def _cli(space_file, run_dir, *args):
    return [sys.executable, "-m", "netspec.search", f"space={space_file}", f"run_dir={run_dir}",
            *FAST, *args]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _wait_for(predicate, proc, seconds=180):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"the search ended (exit {proc.returncode}) before the kill")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("the search did not get there")


def _study_trials(run_dir, name):
    import optuna
    import sqlalchemy
    try:
        return optuna.load_study(study_name=name,
                                 storage=f"sqlite:///{run_dir / 'study.db'}").trials
    except (KeyError, sqlalchemy.exc.OperationalError):
        return []


def test_killed_in_training_then_in_scoring_the_same_command_finishes(space_file, tmp_path):
    run_dir = tmp_path / "killed"
    cmd = _cli(space_file, run_dir, "strategy=enas", "oneshot.epochs=30", "oneshot.candidates=80",
               "strategy.options.controller_steps=2", "data.num_samples=256",
               "oneshot.eval_batches=null", "oneshot.recalibrate=8")
    last = run_dir / "supernet" / "checkpoints" / "last.ckpt"
    # 1. killed while the supernet trains
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(last.is_file, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert torch.load(last, weights_only=True)["epoch"] < 29
    # 2. the same command resumes the supernet; killed while it scores the candidates
    log = tmp_path / "second.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=_env(), stdout=f, stderr=subprocess.STDOUT)
        _wait_for(lambda: sum(t.state == TrialState.COMPLETE
                              for t in _study_trials(run_dir, "small-enas")) >= 5, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert f"supernet: resuming from {last}" in log.read_text()
    scored = {t.number: t.value for t in _study_trials(run_dir, "small-enas")
              if t.state == TrialState.COMPLETE}
    # 3. the same command scores the rest
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "supernet: trained already" in out.stdout
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["epoch"] == 29 and ckpt["netspec_oneshot"]["updates"] == 30 * 2
    trials = _study_trials(run_dir, "small-enas")
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert all(t.value == scored[t.number] for t in done if t.number in scored)  # none lost
    distinct = {tuple(sorted(t.params.items())) for t in done}
    assert len(done) == len(distinct)                 # the killed one scored once, not twice
    assert (run_dir / "best.yaml").is_file()


@pytest.mark.slow
def test_the_supernet_trains_with_ddp_on_two_cpu_processes(space_file, tmp_path):
    """2 ranks, one path per step for both (checked at every step: a rank that drew another
    path stops the run), the controller's state back in the main process."""
    run_dir = tmp_path / "ddp"
    cmd = _cli(space_file, run_dir, "strategy=enas", "oneshot.epochs=2", "oneshot.candidates=8",
               "strategy.options.controller_steps=2", "trainer.strategy=ddp_spawn",
               "trainer.devices=2", "trainer.accelerator=cpu")
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = torch.load(run_dir / "supernet" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["netspec_oneshot"]["updates"] == 4
    assert (run_dir / "best.yaml").is_file()
    assert "supernet epoch 2/2" in out.stdout


def test_cli_help_lists_the_one_shot_strategies():
    out = subprocess.run([sys.executable, "-m", "netspec.search", "--help"], env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "enas" in out.stdout and "spos" in out.stdout
    assert Path(config_dir(), "strategy", "enas.yaml").is_file()


def test_scoring_with_batch_statistics_leaves_the_shared_running_statistics_alone(space_file):
    from netspec.search.oneshot.training import batch_statistics
    supernet = Supernet(sampler_of(space_file), seed=0)
    randomize(supernet)
    path = _paths(supernet, 1, seed=2)[0]
    supernet.activate(path)
    before = {k: v.clone() for k, v in supernet.weights.named_buffers()}
    x = torch.randn(16, 3, 8, 8)
    supernet.eval()
    with batch_statistics(path.module), torch.no_grad():
        scored = supernet(x)
    after = dict(supernet.weights.named_buffers())
    assert all(torch.equal(before[k], after[k]) for k in before if "running" in k)
    supernet.train()                 # the same batch statistics (no dropout in this space)
    with torch.no_grad():
        torch.testing.assert_close(scored, supernet(x))
    assert not torch.allclose(scored, supernet.eval()(x))      # not the running statistics


def test_candidates_are_scored_alike_whatever_the_process_drew_before(tmp_path, space_file):
    # a rerun loads the trained supernet instead of training it, so the global RNG (which
    # augments the recalibration batches) stands elsewhere: the scores must not depend on it
    from netspec.search.oneshot.phases import make_estimator, train_supernet
    from netspec.search.oneshot.runner import OneShotSearch
    cfg = cfg_of(*FAST, "aug=digits", f"space={space_file}", f"run_dir={tmp_path / 'run'}",
                 "strategy=spos", "oneshot.epochs=1")
    search = OneShotSearch(cfg, log=lambda line: None)
    search.open_study()
    train_supernet(search)
    path = _paths(search.supernet, 1, seed=3)[0]

    def recalibrated(rng_seed):
        torch.manual_seed(rng_seed)
        make_estimator(search)(path)
        return {k: v.clone() for k, v in path.module.named_buffers() if "running" in k}

    first, second = recalibrated(1), recalibrated(2)
    assert first and all(torch.equal(first[k], second[k]) for k in first)


def test_the_best_screening_estimates_are_rescored_on_all_validation_batches(tmp_path, space_file):
    # screened on one validation batch, the best three are scored again on all of them: those
    # scores (not the screening ones) rank the pick, in the study and in what is written out
    from netspec.search.oneshot.phases import make_estimator
    from netspec.search.oneshot.runner import OneShotSearch
    small = [o for o in FAST if not o.startswith(("data.num_samples", "data.batch_size"))]
    cfg = cfg_of(*small, "data.num_samples=160", "data.batch_size=8", f"space={space_file}",
                 f"run_dir={tmp_path / 'run'}", "strategy=spos", "seed=0", "oneshot.epochs=1",
                 "oneshot.candidates=8", "oneshot.eval_batches=1", "oneshot.rescore=3")
    search = OneShotSearch(cfg, log=lambda line: None)
    search.run()
    assert len(list(search.dm.val_dataloader())) > 1          # more than the screening batch
    done = sorted(search.study.get_trials(states=(TrialState.COMPLETE,)),
                  key=lambda t: (-t.value, t.number))
    rescored = {int(n): a for n, a in search.study.user_attrs["rescored"].items()}
    assert sorted(rescored) == sorted(t.number for t in done[:3])
    every_batch = make_estimator(search, all_batches=True)
    one_batch = make_estimator(search)
    for t in done[:3]:
        path = search.supernet.path(FixedTrial(t.params))
        assert rescored[t.number] == every_batch(path)
        assert t.value == one_batch(path)
    assert any(rescored[t.number] != t.value for t in done[:3])
    pick = max(done[:3], key=lambda t: (rescored[t.number], -t.number))
    info = json.loads((search.out / "best.json").read_text())
    assert info["trial"] == pick.number
    assert info["estimated_acc"] == rescored[pick.number]
    assert info["screening_acc"] == pick.value
    rows = (search.out / "trials.csv").read_text().splitlines()
    assert sum(1 for r in rows[1:] if r.split(",")[3]) == 3       # three rescored accuracies
    # an architecture proposed again takes no slot of its own: not rescored, not ranked twice
    from optuna.trial import create_trial

    from netspec.search.oneshot.phases import rescore_best
    search.study.add_trial(create_trial(params=done[0].params,
                                        distributions=done[0].distributions,
                                        value=done[0].value))
    rescore_best(search)
    assert {int(n) for n in search.study.user_attrs["rescored"]} == set(rescored)
    assert [t.params for t in search.ranked()].count(done[0].params) == 1
    with pytest.raises(ConfigError, match="oneshot.rescore must be >= 0"):
        one_shot(tmp_path, space_file, "strategy=spos", "oneshot.rescore=-1")


def test_a_supernet_that_does_not_learn_is_said_not_to(tmp_path, space_file):
    # random labels (data=fake) leave nothing to learn; digits do
    common = ["strategy=spos", "oneshot.epochs=3", "oneshot.candidates=4", "oneshot.rescore=0",
              "seed=0"]
    noise = one_shot(tmp_path, space_file, *common, run="noise")
    digits = one_shot(tmp_path, space_file, *common, "data=digits", "data.size=8",
                      "data.batch_size=32", "optim=adamw", "optim.weight_decay=0", run="digits")
    warned = [line for line in noise.lines if "the supernet did not learn" in line]
    assert len(warned) == 1 and "ln(10) = 2.303" in warned[0] and "strategy=tpe" in warned[0]
    assert not any("did not learn" in line for line in digits.lines)
    for res in (noise, digits):
        losses = json.loads((res.run_dir / "best.json").read_text())["supernet_train_loss"]
        assert len(losses) == 3
    learned = json.loads((digits.run_dir / "best.json").read_text())["supernet_train_loss"]
    assert learned[-1] < learned[0] and learned[-1] < 0.9 * math.log(10)
    # the run that finds the supernet trained already says it again
    again = one_shot(tmp_path, space_file, *common, run="noise")
    assert any("the supernet did not learn" in line for line in again.lines)
