"""Neural architecture search: spaces (specs with choices), strategies (Optuna samplers, the
REINFORCE controller), the runner (`python -m netspec.search`) and its results."""
from .sampling import Sample, Sampler
from .space import Space, load_space, shipped_spaces

__all__ = ["Space", "Sampler", "Sample", "load_space", "shipped_spaces", "run_search"]


def run_search(cfg, log=print):
    """Run or resume the search configured by ``cfg`` (conf/search.yaml); see runner.py."""
    from .runner import run_search as _run
    return _run(cfg, log=log)
