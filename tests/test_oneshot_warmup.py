"""The supernet's warm-up (oneshot.warmup): each decision drawn with a probability that rises
from warmup_from to 1, else the anchor path's; no controller steps until it is over."""
from __future__ import annotations

import random

import pytest
import torch
from test_oneshot import SPACE, _configs, one_shot, sampler_of  # noqa: F401 (_configs: autouse)

from netspec.errors import ConfigError
from netspec.search.oneshot.paths import AnchoredTrial, UniformTrial
from netspec.search.oneshot.supernet import Supernet
from netspec.search.oneshot.training import UniformPaths, Widening


@pytest.fixture
def space_file(tmp_path):
    f = tmp_path / "small.yaml"
    f.write_text(SPACE)
    return f


@pytest.fixture(scope="module")
def nasnet():
    return Supernet(sampler_of("nasnet_cell", 32, 1), seed=0)


def _options(supernet) -> dict:
    return {c.path: len(c.labels()) for c in supernet.space.index.values()}


def _distance(params: dict, anchor: dict) -> int:
    return sum(params[k] != anchor[k] for k in anchor)


def test_the_drawn_fraction_rises_geometrically_to_one_at_the_warm_ups_end():
    w = Widening(0.5, 0.05)
    total = 200                                   # the warm-up ends at step 100
    assert w.p(0, total) == pytest.approx(0.05)
    assert w.p(50, total) == pytest.approx(0.05 ** 0.5)       # halfway: the geometric mean
    assert w.p(99, total) == pytest.approx(0.05 ** 0.01)
    assert w.p(100, total) == 1.0 and w.p(199, total) == 1.0
    ps = [w.p(t, total) for t in range(100)]
    assert all(a < b for a, b in zip(ps, ps[1:]))


def test_an_anchored_trial_draws_each_decision_with_probability_p(nasnet):
    options = _options(nasnet)
    anchor = nasnet.resolve(UniformTrial(random.Random(1)))[0]
    assert set(anchor) == set(options)              # every nasnet decision is always there
    for p, n in ((0.0, 5), (0.25, 80), (1.0, 40)):
        rng = random.Random(2)
        mean = sum(_distance(nasnet.resolve(AnchoredTrial(UniformTrial(rng), anchor, p, rng))[0],
                             anchor) for _ in range(n)) / n
        # a drawn decision leaves the anchor's value with probability 1 - 1/k
        expected = sum(p * (1 - 1 / k) for k in options.values())
        assert mean == pytest.approx(expected, abs=0.1 + 0.1 * expected), p


def test_the_warm_up_trains_the_anchors_neighbours_first_then_the_whole_space(nasnet):
    paths = UniformPaths(nasnet, lambda path: True, seed=0, widening=Widening(0.5, 0.05))
    anchor = paths.anchor()
    assert anchor == paths.val_path(0).params
    uniform = sum(1 - 1 / k for k in _options(nasnet).values())
    total = 40
    early = [_distance(paths.train_path(t, total).params, anchor) for t in range(4)]
    late = [_distance(paths.train_path(t, total).params, anchor) for t in range(20, 40)]
    assert sum(early) / 4 < 0.15 * uniform
    assert sum(late) / 20 == pytest.approx(uniform, rel=0.2)
    # the same step draws the same path (DDP ranks, resume)
    assert paths.train_path(3, total).params == paths.train_path(3, total).params
    no_warmup = UniformPaths(nasnet, lambda path: True, seed=0)
    assert sum(_distance(no_warmup.train_path(t, total).params, anchor)
               for t in range(4)) / 4 > 0.6 * uniform


def test_the_controller_takes_no_steps_while_the_supernet_warms_up(tmp_path, space_file):
    # 3 steps an epoch: warmup=0.5 of 2 epochs ends before the second epoch's end only
    res = one_shot(tmp_path, space_file, "strategy=enas", "oneshot.epochs=2",
                   "oneshot.warmup=0.5", "oneshot.candidates=2", "oneshot.rescore=0",
                   "strategy.options.controller_steps=3")
    ckpt = torch.load(res.run_dir / "supernet" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["netspec_oneshot"]["updates"] == 3


def test_the_warm_up_keys_are_checked(tmp_path, space_file):
    for bad, says in (("oneshot.warmup=1.5", "oneshot.warmup=1.5: the fraction"),
                      ("oneshot.warmup=-0.1", "oneshot.warmup=-0.1: the fraction"),
                      ("oneshot.warmup_from=0", "oneshot.warmup_from=0.0: the probability")):
        with pytest.raises(ConfigError, match=says):
            one_shot(tmp_path, space_file, "strategy=spos", bad)
