"""`python -m netspec.search space=... strategy=... n_trials=... data=... budget.epochs=...`"""
from __future__ import annotations

import json
import sys

from omegaconf import DictConfig

INCOMPLETE = 3       # exit status of a search that ended short of n_trials (it said why)


def _task(cfg: DictConfig) -> float | None:
    from ..cli import user_errors
    from . import run_search
    try:
        with user_errors():
            result = run_search(cfg)
    except KeyboardInterrupt:
        print("interrupted: the same command resumes the study (the interrupted trial is "
              "trained again)", file=sys.stderr)
        sys.exit(130)
    info = result.run_dir / "best.json"
    if result.best_spec is not None and info.is_file():
        print(f"best: {result.best_spec}")
        print(f"train it: {json.loads(info.read_text())['command']}")
    if not result.complete:
        sys.exit(INCOMPLETE)
    best = result.best_trials[0] if result.best_trials else None
    return best.values[0] if best is not None and best.values else None


USAGE = """\
usage: python -m netspec.search [space=NAME_OR_PATH] [strategy=...] [n_trials=N] [group=option ...]
                                [key.path=value ...]

Searches a space of networks (a spec with choices) with Optuna: each trial samples a network,
checks its constraints, trains it for the budget and reports its validation accuracy. The study
and its results (best.yaml, trials.csv, history.png) are in outputs/search/SPACE-STRATEGY/; the
same command resumes it. Every training option applies to each trial."""


def main(argv: list[str] | None = None) -> None:
    from ..cli import emit, run_hydra, user_errors
    from ..plugins import load_plugins
    from ..train.config import config_dir, register_spec_paths
    from .config import register_search_configs
    register_search_configs()
    args = sys.argv[1:] if argv is None else argv
    with user_errors():
        load_plugins()
        sys.argv[1:] = register_spec_paths(args)
    if "--help" in args or "-h" in args:
        from pathlib import Path

        from ..train.app import GROUPS
        from ..train.help import help_text
        from .space import shipped_spaces
        rest = [a for a in sys.argv[1:] if a not in ("--help", "-h")]
        emit(help_text("netspec.search", USAGE, Path(config_dir()), "search",
                        GROUPS + ["strategy", "pruner"], rest,
                        {"space": shipped_spaces() + ["path/to/space.yaml"]}))
        return
    from .config import SearchConfig
    run_hydra(config_dir(), "search", _task, schema=SearchConfig)


if __name__ == "__main__":
    main()
