"""The REINFORCE controller of Zoph & Le (2016) as an Optuna sampler: ``strategy=rl``.

An LSTM emits the search space's decisions one after the other, each as a softmax over its
options; the sampled token's embedding is the next step's input. After each finished trial the
controller takes one policy-gradient step (with an entropy bonus and the imitation of the best
trials so far) on the trial's reward. Its parts:

    options.py      the values a decision chooses among, for each kind of Optuna distribution
    tree.py         the tree of tried samples: no sample is drawn twice while untried ones remain
    network.py      the LSTM, each decision's head, embedding and query
    policy.py       what is learnt: the network, its vocabulary of decisions, Adam, the baseline;
                    the REINFORCE update
    persistence.py  the state kept in the study's system attributes (resume, parallel workers)
    sampler.py      ReinforceSampler: Optuna's sampler interface, the reward, the priority queue

**Repeatability.** ``seed`` fixes the initial weights and each trial's draws (the generator of
trial *n* is seeded from ``(seed, n)``), so a study run twice with the same seed samples the
same architectures, whatever the number of workers' interleaving does to the update order.

**Defaults.** lr 0.02 (Adam), entropy_weight 0.1 (against an advantage of unit RMS), baseline
decay 0.9, LSTM of 32 units, unique, top_k 5 with imitation_weight 0.5: chosen on the 540
networks of bench/bench_search.py's space, each trained once per training seed (0, 1, 2) and
looked up, by the number of trials the controller needs to reach the best of 50 random ones.
Over 90 simulated searches (sampler seeds 20-49 on the three tables) the median was 18.5
(48 of 90 within 20); without the priority queue and with entropy_weight 0.3, 20.5 (45 of 90);
TPE on the same tables needed 19 (seeds 0-19). On a synthetic reward (6 decisions of 4 options,
noisy) the mean reward of 200 trials is 0.54-0.58 on every seed tried, random sampling's 0.25.
A higher learning rate learns faster but more often settles early on a wrong option.

Single-objective studies only: for accuracy against MACs use ``target_macs`` (the MnasNet reward),
or NSGA-II for a Pareto front.
"""
from .options import options_of
from .persistence import KEY
from .sampler import MULTI_OBJECTIVE, REWARD, ReinforceSampler
from .tree import PATH

__all__ = ["ReinforceSampler", "options_of", "MULTI_OBJECTIVE", "KEY", "PATH", "REWARD"]
