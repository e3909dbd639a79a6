"""The REINFORCE controller (netspec.search.rl) on its own: synthetic rewards, no training."""
import base64
import io
import math
import random
import statistics

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from netspec.search import rl
from netspec.search.rl import ReinforceSampler, options_of, persistence

optuna.logging.set_verbosity(optuna.logging.WARNING)

TARGET = [1, 3, 0, 2, 2, 1]        # the hidden best architecture: 6 decisions of 4 options


def hidden_target(seed: int):
    """Reward: the fraction of decisions equal to the hidden target, plus N(0, 0.05) noise."""
    noise = random.Random(seed)

    def objective(trial):
        xs = [trial.suggest_categorical(f"d{i}", [0, 1, 2, 3]) for i in range(len(TARGET))]
        return sum(x == t for x, t in zip(xs, TARGET)) / len(TARGET) + noise.gauss(0, 0.05)
    return objective


def values(study):
    return [t.value for t in study.trials]


def test_controller_beats_random_sampling():
    # Random sampling matches each decision with probability 1/4: its expected reward is 0.25
    # on every trial (std of a trial's reward ~0.18), so the mean of 200 random trials lies
    # within ~0.03 of 0.25. By default the controller never repeats a sample, so once it has
    # found the target it goes on with its neighbours (5 of 6 right: 0.83, 4 of 6: 0.67, ...);
    # over 5 seeds its mean over 200 trials was 0.54-0.58.
    rand = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    rand.optimize(hidden_target(0), n_trials=200)
    ctrl = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=0))
    ctrl.optimize(hidden_target(0), n_trials=200)
    random_mean = statistics.mean(values(rand))
    assert abs(random_mean - 0.25) < 0.05
    assert statistics.mean(values(ctrl)) > random_mean + 0.2
    assert statistics.mean(values(ctrl)[100:]) > random_mean + 0.2     # still near the target
    assert max(values(ctrl)) > 0.9 > max(values(rand))                # the target was sampled
    assert len({tuple(sorted(t.params.items())) for t in ctrl.trials}) == 200
    assert ctrl.sampler.policy.updates == 200
    # the controller's most likely choice is the target on most decisions
    probs = ctrl.sampler.probabilities()
    greedy = [max(range(4), key=lambda k: probs[f"d{i}"][k]) for i in range(6)]
    assert sum(g == t for g, t in zip(greedy, TARGET)) >= 4, probs

    # allowed to repeat itself, it settles on the target: nearly every late sample is it
    again = optuna.create_study(direction="maximize",
                                sampler=ReinforceSampler(seed=0, unique=False))
    again.optimize(hidden_target(0), n_trials=200)
    assert statistics.mean(values(again)[-50:]) > random_mean + 0.6


def test_seeded_repeatable():
    runs = []
    for _ in range(2):
        s = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=3))
        s.optimize(hidden_target(1), n_trials=15)
        runs.append([t.params for t in s.trials])
    assert runs[0] == runs[1]
    s = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=4))
    s.optimize(hidden_target(1), n_trials=15)
    assert [t.params for t in s.trials] != runs[0]


def _tensors_equal(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_tensors_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_state_persists_in_the_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = ReinforceSampler(seed=5)
    study = optuna.create_study(direction="maximize", sampler=first, storage=url,
                                study_name="s")
    objective = hidden_target(2)      # one noise stream through both halves
    study.optimize(objective, n_trials=20)
    assert first.policy.updates == 20

    # rerunning the command: a new sampler on the loaded study continues the same controller
    again = optuna.load_study(study_name="s", storage=url)
    second = ReinforceSampler(seed=5, study=again)          # loads on construction
    assert second.policy.updates == 20
    assert second.policy.baseline == first.policy.baseline and second.policy.adv_sq == first.policy.adv_sq
    assert second.policy.vocab == first.policy.vocab
    assert _tensors_equal(second.policy.model.state_dict(), first.policy.model.state_dict())
    assert _tensors_equal(second.policy.optimizer.state_dict(), first.policy.optimizer.state_dict())
    again.sampler = second
    again.optimize(objective, n_trials=20)
    assert second.policy.updates == 40

    # 20 + 20 trials with a restart in between sample exactly what one run of 40 samples
    whole = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=5))
    whole.optimize(hidden_target(2), n_trials=40)
    resumed = optuna.load_study(study_name="s", storage=url)
    assert [t.params for t in resumed.trials] == [t.params for t in whole.trials]
    assert whole.sampler.policy.baseline == pytest.approx(second.policy.baseline, abs=1e-12)

    # the state is plain data: its chunks load with torch.load(weights_only=True)
    attrs = resumed._storage.get_study_system_attrs(resumed._study_id)
    header = attrs[rl.KEY]
    assert header["updates"] == 40
    text = "".join(attrs[f"{rl.KEY}:{header['slot']}:{i}"] for i in range(header["chunks"]))
    state = torch.load(io.BytesIO(base64.b64decode(text)), weights_only=True)
    assert state["updates"] == 40 and state["vocab"] == second.policy.vocab
    assert _tensors_equal(state["model"], second.policy.model.state_dict())


def test_chunks_and_parallel_workers(monkeypatch):
    monkeypatch.setattr(persistence, "CHUNK", 1000)          # many chunks
    storage = optuna.storages.InMemoryStorage()
    a = optuna.create_study(direction="maximize", storage=storage, study_name="w",
                            sampler=ReinforceSampler(seed=1))
    b = optuna.load_study(study_name="w", storage=storage, sampler=ReinforceSampler(seed=2))
    for _ in range(3):                               # two workers taking turns
        a.optimize(hidden_target(3), n_trials=2)
        b.optimize(hidden_target(3), n_trials=2)
    header = storage.get_study_system_attrs(a._study_id)[rl.KEY]
    assert header["chunks"] > 10
    # each worker read the other's updates before sampling: one controller, 12 updates
    assert header["updates"] == 12
    assert a.sampler.policy.updates in (10, 12) and b.sampler.policy.updates == 12
    c = ReinforceSampler(seed=9, study=b)
    assert _tensors_equal(c.policy.model.state_dict(), b.sampler.policy.model.state_dict())

    # a state whose chunks do not match the header (a clash of writers) does not stop a worker:
    # it goes on with its own controller, and its next update writes a whole state again
    storage.set_study_system_attr(a._study_id, f"{rl.KEY}:{header['slot']}:0", "garbage")
    with pytest.warns(UserWarning, match="does not match its header"):
        assert not ReinforceSampler(seed=9, study=b).load(b, attempts=2)
    b.optimize(hidden_target(3), n_trials=1)
    assert ReinforceSampler(seed=9, study=b).policy.updates == 13


def test_numeric_distributions():
    assert options_of(IntDistribution(1, 4)) == [1, 2, 3, 4]
    assert options_of(IntDistribution(0, 12, step=4)) == [0, 4, 8, 12]
    many = options_of(IntDistribution(0, 1000), bins=5)
    assert many == [0, 250, 500, 750, 1000]
    assert options_of(IntDistribution(1, 1024, log=True), bins=11) == [2 ** k for k in range(11)]
    assert options_of(FloatDistribution(0.0, 1.0, step=0.25)) == [0.0, 0.25, 0.5, 0.75, 1.0]
    lr = options_of(FloatDistribution(1e-4, 1e-1, log=True), bins=4)
    assert lr == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert options_of(FloatDistribution(0.0, 1.0), bins=3) == [0.0, 0.5, 1.0]
    assert options_of(CategoricalDistribution(["a", None, 3])) == ["a", None, 3]

    def objective(trial):
        k = trial.suggest_int("k", 1, 4)
        c = trial.suggest_int("c", 8, 64, step=8)
        n = trial.suggest_int("n", 0, 1000)
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        p = trial.suggest_float("p", 0.0, 0.5, step=0.1)
        act = trial.suggest_categorical("act", ["relu", "swish"])
        assert isinstance(k, int) and isinstance(c, int) and isinstance(n, int)
        assert isinstance(lr, float) and 1e-4 <= lr <= 1e-1 and isinstance(p, float)
        # best: lr = 1e-2, k = 3, the rest irrelevant
        return -abs(math.log10(lr) + 2) - abs(k - 3) + (0.01 if act == "relu" else 0.0)

    study = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=0))
    study.optimize(objective, n_trials=120)
    seen = {name: {t.params[name] for t in study.trials} for name in study.trials[0].params}
    # the long ranges are proposed at their points only: n at 10 of its 1001 values, lr at 10
    # log-spaced ones
    assert seen["n"] <= {round(x * 1000 / 9) for x in range(10)} and len(seen["n"]) > 3
    points = options_of(FloatDistribution(1e-4, 1e-1, log=True))
    assert all(min(abs(v - q) for q in points) < 1e-12 for v in seen["lr"]) and len(seen["lr"]) > 3
    assert len(seen["c"]) > 3 and len(seen["p"]) > 3
    last = study.trials[-30:]
    assert statistics.mean(t.value for t in last) > statistics.mean(
        t.value for t in study.trials[:30]) + 0.5
    assert sum(t.params["k"] == 3 for t in last) > 15          # it learnt the best k


def test_conditional_and_enqueued_trials():
    def objective(trial):
        kind = trial.suggest_categorical("kind", ["conv", "pool"])
        if kind == "conv":
            k = trial.suggest_categorical("conv.k", [3, 5, 7])
            return 1.0 if k == 5 else 0.5
        return 0.2 + 0.01 * trial.suggest_int("pool.s", 1, 2)

    study = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=0))
    study.enqueue_trial({"kind": "pool", "pool.s": 2})
    study.enqueue_trial({"kind": "conv"})             # conv.k sampled after a fixed kind
    study.optimize(objective, n_trials=60)
    assert study.sampler.policy.updates == 60
    names = [v["name"] for v in study.sampler.policy.vocab]
    assert names[:2] == ["kind", "pool.s"] and "conv.k" in names
    assert study.trials[1].params["kind"] == "conv" and "conv.k" in study.trials[1].params
    assert statistics.mean(t.value for t in study.trials[-20:]) > 0.75


def test_mnasnet_reward_and_rejected_samples():
    T = 1e6

    def objective(trial):
        width = trial.suggest_categorical("width", [1, 2, 4])
        trial.set_user_attr("macs", width * T)
        if width == 4:
            raise optuna.TrialPruned("over the MACs budget")   # rejected: no value
        return 0.5 + 0.1 * width

    study = optuna.create_study(direction="maximize",
                                sampler=ReinforceSampler(seed=0, target_macs=T))
    study.optimize(objective, n_trials=30)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    rejected = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert completed and rejected
    for t in completed:
        assert t.system_attrs[rl.REWARD] == pytest.approx(
            t.value * (t.user_attrs["macs"] / T) ** -0.07)
    for t in rejected:      # the lowest reward seen before it (none before the first reward)
        earlier = [u.system_attrs[rl.REWARD] for u in study.trials[:t.number]
                   if rl.REWARD in u.system_attrs]
        assert t.system_attrs.get(rl.REWARD) == (min(earlier) if earlier else None)
    assert any(rl.REWARD in t.system_attrs for t in rejected)


def test_multi_objective_refused():
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=ReinforceSampler())
    with pytest.raises(ValueError, match="single objective.*target_macs.*nsga2"):
        study.optimize(lambda t: (t.suggest_int("a", 0, 3), 1.0), n_trials=1)
    with pytest.raises(ValueError, match="maximized accuracy"):
        optuna.create_study(direction="minimize", sampler=ReinforceSampler(target_macs=1e6)) \
            .optimize(lambda t: t.suggest_int("a", 0, 3), n_trials=1)


def test_no_sample_is_tried_twice_until_the_space_is_exhausted():
    # 2 x (3 options, or none under "pool") = 4 networks, a conditional decision among them
    def objective(trial):
        kind = trial.suggest_categorical("kind", ["conv", "pool"])
        k = trial.suggest_categorical("k", [1, 3, 5]) if kind == "conv" else 0
        return {1: 0.2, 3: 0.9, 5: 0.5, 0: 0.4}[k]

    study = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=0))
    study.optimize(objective, n_trials=4)
    seen = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(seen)) == 4                        # every network once, none repeated
    study.optimize(objective, n_trials=3)              # exhausted: samples freely again
    assert all(math.isfinite(p.detach().sum()) for p in study.sampler.policy.model.parameters())
    assert study.sampler.policy.updates == 7
    # the masked draws are learnt from with their masks: the gradient stays finite
    for t in study.trials[:4]:
        assert t.system_attrs[rl.PATH] == list(t.params)

    free = optuna.create_study(direction="maximize",
                               sampler=ReinforceSampler(seed=0, unique=False))
    free.optimize(objective, n_trials=12)
    assert len({tuple(sorted(t.params.items())) for t in free.trials}) < 12


def test_the_best_trials_are_imitated():
    study = optuna.create_study(direction="maximize",
                                sampler=ReinforceSampler(seed=1, top_k=3, imitation_weight=1.0))
    study.optimize(hidden_target(4), n_trials=12)
    sampler = study.sampler
    last = study.trials[-1]
    elite = sampler.elite(study, last, last.state, last.system_attrs[rl.REWARD])
    best = sorted(study.trials, key=lambda t: (-t.system_attrs[rl.REWARD], t.number))[:3]
    assert [[tok for _, tok, _ in seq] for seq in elite] == \
        [[t.params[f"d{i}"] for i in range(6)] for t in best]
    # imitation alone (no policy gradient: a constant reward) makes the best trial likelier
    before = sampler.policy.log_prob([(sampler.policy.add(e), tok) for e, tok, _ in elite[0]])[0].item()
    steps = [(sampler.policy.add(e), tok) for e, tok, _ in elite[0]]
    for _ in range(5):
        sampler.policy.update(steps, sampler.policy.baseline, [steps])
    after = sampler.policy.log_prob(steps)[0].item()
    assert after > before + 0.5, (before, after)
