"""Neural architecture search: spaces (specs with choices), strategies (Optuna samplers, the
REINFORCE controller), the runner (`python -m netspec.search`) and its results, and the
one-shot strategies on a weight-sharing supernet (oneshot/)."""
from .sampling import Sample, Sampler
from .space import Space, load_space, shipped_spaces

__all__ = ["Space", "Sampler", "Sample", "load_space", "shipped_spaces", "run_search"]


def run_search(cfg, log=print):
    """Run or resume the search configured by ``cfg`` (conf/search.yaml): a trial search
    (runner.py), or a one-shot one for strategy=enas/spos (oneshot/)."""
    from .strategies import ONESHOT
    if cfg.strategy.name in ONESHOT:
        from .oneshot.runner import OneShotSearch
        return OneShotSearch(cfg, log=log).run()
    from .runner import Search
    return Search(cfg, log=log).run()
