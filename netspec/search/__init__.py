"""Neural architecture search: spaces (specs with choices), strategies (Optuna samplers, the
REINFORCE controller), the runner (`python -m netspec.search`) and its results, and the
one-shot strategies on a weight-sharing supernet (oneshot/)."""
from .sampling import Sample, Sampler
from .space import Space, load_space, shipped_spaces

__all__ = ["Space", "Sampler", "Sample", "load_space", "shipped_spaces", "run_search"]


def run_search(cfg, log=print, results: bool = True):
    """Run or resume the search configured by ``cfg`` (conf/search.yaml): a trial search
    (runner.py), or a one-shot one for strategy=enas/spos (oneshot/)."""
    from .strategies import ONESHOT
    if cfg.strategy.name in ONESHOT:
        from ..errors import ConfigError
        from .jobs import job_count
        if job_count(cfg.get("jobs", 1)) > 1:
            raise ConfigError(f"jobs={cfg.jobs} runs trials at once; strategy="
                              f"{cfg.strategy.name} trains one supernet: spread it over "
                              f"devices with trainer.devices=N trainer.strategy=ddp_spawn")
        from .oneshot.runner import OneShotSearch
        return OneShotSearch(cfg, log=log).run()
    from .runner import Search
    return Search(cfg, log=log, results=results).run()
