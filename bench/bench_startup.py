"""Start-up of the command lines against importing their stack, measured side by side in one run.

Reference: ``python -c "import torch, torchvision, pytorch_lightning, optuna, hydra"`` (what any
command must load). Against it, each as a fresh process:
    netspec.train --help, a misspelt spec (the error path), netspec.search --help, a misspelt
    search space, netspec.summary --help, and the time to the end of the first training step of
    ``netspec.train spec=lenet5`` (an upper bound: the whole command with trainer.max_steps=1, no
    validation, no checkpoints, no logger).
Goal: --help and the error paths within 1.3x of the reference, the first step within 1.5x.

The commands take turns (a rotating order) for N rounds; the table has the median wall-clock and
CPU time (user + system of the child process) of each, and their ratios to the reference's.

    python bench/bench_startup.py             # 5 rounds, about 5 minutes on 2 CPU cores
    python bench/bench_startup.py --rounds 2  # a quicker look
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

PY = sys.executable
IMPORT = "import torch, torchvision, pytorch_lightning, optuna, hydra"
COMMANDS = {
    "import the stack (reference)": ([PY, "-c", IMPORT], 0, None),
    "netspec.train --help": ([PY, "-m", "netspec.train", "--help"], 0, 1.3),
    "netspec.train spec=resnt50 (error)": ([PY, "-m", "netspec.train", "spec=resnt50"], 2, 1.3),
    "netspec.search --help": ([PY, "-m", "netspec.search", "--help"], 0, 1.3),
    "netspec.search space=mobile_stage (error)":
        ([PY, "-m", "netspec.search", "space=mobile_stage"], 2, 1.3),
    "netspec.summary --help": ([PY, "-m", "netspec.summary", "--help"], 0, 1.3),
    "netspec.train spec=lenet5, first step": (
        [PY, "-m", "netspec.train", "spec=lenet5", "trainer.max_steps=1",
         "trainer.limit_val_batches=0", "callbacks=minimal", "logger=none", "run_dir=RUN"], 0, 1.5),
}


def run(argv: list[str], status: int, folder: str) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one run; fails loudly on an unexpected exit status."""
    argv = [a.replace("RUN", os.path.join(folder, f"run{time.monotonic_ns()}")) for a in argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != status:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode} (expected {status}):\n"
                         f"{proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds of every command (default 5)")
    args = ap.parse_args(argv)
    names = list(COMMANDS)
    times: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    print(f"netspec start-up bench: {args.rounds} rounds, python {sys.version.split()[0]}, "
          f"load average at start {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as folder:
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                cmd, status, _ = COMMANDS[n]
                times[n].append(run(cmd, status, folder))
            print(f"  round {r + 1} done", flush=True)
    med = {n: (statistics.median(w for w, _ in ts), statistics.median(c for _, c in ts))
           for n, ts in times.items()}
    ref_wall, ref_cpu = med[names[0]]
    print(f"\n  {'command':<44}{'wall':>8}{'ratio':>7}{'CPU':>8}{'ratio':>7}  goal")
    for n in names:
        wall, cpu = med[n]
        goal = COMMANDS[n][2]
        verdict = "" if goal is None else \
            f"<= {goal:.1f}x: {'ok' if cpu / ref_cpu <= goal else 'MISSED'}"
        print(f"  {n:<44}{wall:7.2f}s{wall / ref_wall:7.2f}{cpu:7.2f}s{cpu / ref_cpu:7.2f}  {verdict}")
    print(f"\n  (ratios against the first row; the verdict reads the CPU-time ratio; load average "
          f"at the end {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
