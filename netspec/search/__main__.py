"""`python -m netspec.search space=... strategy=... n_trials=... data=... budget.epochs=...`"""
from __future__ import annotations

import json
import sys

from omegaconf import DictConfig


def _task(cfg: DictConfig) -> float | None:
    from ..cli import user_errors
    from .runner import run_search
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
    best = result.best_trials[0] if result.best_trials else None
    return best.values[0] if best is not None and best.values else None


def main(argv: list[str] | None = None) -> None:
    import hydra

    from ..cli import user_errors
    from ..train.config import config_dir, register_spec_paths
    from .config import register_search_configs
    register_search_configs()
    args = sys.argv[1:] if argv is None else argv
    with user_errors():
        sys.argv[1:] = register_spec_paths(args)
    hydra.main(version_base=None, config_path=config_dir(), config_name="search")(_task)()


if __name__ == "__main__":
    main()
