"""The supernet's warm-up (oneshot.warmup) against none, on bench_oneshot.py's task.

For each seed, spos and enas as bench_oneshot.py runs them (mobile_stages, `shapes`, aug=none,
8 epochs per training and for the supernet, retrain_top=1), once with `oneshot.warmup=0` and
once with `oneshot.warmup=F` (`--warmup`, default 0.5). Prints, per run: the standalone accuracy
of what it returns, its estimate, the supernet's last training loss, the CPU seconds, and the
warm-up's bias: Kendall's tau between the candidates' estimates and their closeness to the
warm-up's anchor path (minus the number of decisions that differ from it), over every scored
candidate. Random search is bench_oneshot.py's (deterministic: its figures in bench/README.md
hold for these seeds).

    python bench/bench_warmup.py                     # 3 seeds: ~25 CPU minutes
    python bench/bench_warmup.py --seeds 0 --warmup 0.25
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench_oneshot import kendall, run, trials_of


def anchor_of(seed: int, data: str) -> dict:
    """The warm-up's anchor path for a search of mobile_stages with this seed."""
    from hydra import compose, initialize_config_dir

    from netspec.search.config import register_search_configs
    from netspec.search.oneshot.runner import OneShotSearch
    from netspec.search.oneshot.training import UniformPaths
    from netspec.train.config import config_dir, register_spec_paths
    register_search_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("search", overrides=register_spec_paths(
            ["space=mobile_stages", f"data={data}", "strategy=spos", f"seed={seed}",
             f"run_dir={tempfile.mkdtemp()}"]))
    search = OneShotSearch(cfg, log=lambda line: None)
    return UniformPaths(search.supernet, search.allowed, search.seed).anchor()


def anchor_bias(run_dir: Path, anchor: dict) -> float:
    rows = [t for t in trials_of(run_dir) if t["state"] == "COMPLETE"]
    closeness = [-sum(str(v) != t.get(k, "") for k, v in anchor.items()) for t in rows]
    return kendall([float(t["acc"]) for t in rows], closeness)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--data", default="shapes")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="bench_warmup_"))
    out.mkdir(parents=True, exist_ok=True)
    common = ["space=mobile_stages", f"data={a.data}", f"budget.epochs={a.epochs}",
              f"oneshot.epochs={a.epochs}", "oneshot.retrain_top=1", "aug=none",
              "callbacks.progress_bar=none", "logger=none", "heartbeat=0"]
    print(f"mobile_stages on {a.data}, {a.epochs} epochs; oneshot.warmup 0 against {a.warmup}; "
          f"runs in {out}", flush=True)
    print("seed strategy warmup | standalone estimate | last loss | CPU s | "
          "tau(estimate, closeness to the anchor)")
    for seed in a.seeds:
        anchor = anchor_of(seed, a.data)
        for strategy in ("spos", "enas"):
            for warmup in (0.0, a.warmup):
                name = f"{strategy}{seed}_w{warmup:g}"
                cpu = run([*common, f"strategy={strategy}", f"seed={seed}",
                           f"oneshot.warmup={warmup}", f"run_dir={out / name}"],
                          out / f"{name}.log")
                info = json.loads((out / name / "best.json").read_text())
                print(f"{seed} {strategy} {warmup:g} | {info['standalone_acc']:.4f} "
                      f"{info['estimated_acc']:.4f} | {info['supernet_train_loss'][-1]:.3f} | "
                      f"{cpu:.0f} | {anchor_bias(out / name, anchor):.3f}", flush=True)


if __name__ == "__main__":
    main()
