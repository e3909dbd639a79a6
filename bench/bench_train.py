"""Benchmark of ``netspec.train``'s machinery against a minimal hand-written PyTorch loop.

Both train the same network (the spec compiled by ``netspec.build``, the same initial weights) on
the same batches (the train loader of the same data module) with the same optimizer and learning
rate schedule, for the same number of steps. ``netspec.train`` runs as ``train(cfg)`` sets it up
(the config composed by Hydra, the LightningModule, the Trainer, its callbacks and logger), in two
settings: as the default command has them (rich progress bar drawn to a terminal, checkpointing,
learning-rate monitor, CSV log) and lean (no progress bar, no checkpoints). Each repetition
rotates the order of the three; the median over repetitions is reported, with the ratio of
throughputs (samples/s of netspec.train over the hand loop; goal >= 0.95). Then the default
command ``python -m netspec.train spec=mobilenet_v2`` runs once as a subprocess: its time and
validation top-1.

    python bench/bench_train.py            # about 3 minutes on 2 CPU cores
    python bench/bench_train.py --quick    # a smoke run (2 repetitions of 4 steps, no default command)
"""
from __future__ import annotations

import os

# spinning OpenMP threads make a shared machine's timings meaningless (see bench/README.md)
_OMP_SET = "OMP_WAIT_POLICY" not in os.environ
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from netspec.compile import build  # noqa: E402
from netspec.train import app  # noqa: E402
from netspec.train.config import config_dir, register_configs, register_spec_paths  # noqa: E402
from netspec.train.optim import make_optimizer, make_scheduler  # noqa: E402

METHODS = ("hand", "netspec", "netspec-lean")
LABELS = {"hand": "hand-written loop",
          "netspec": "netspec.train (default callbacks)",
          "netspec-lean": "netspec.train (no bar, no ckpt)"}


class StepTimer(pl.Callback):
    """Wall and process CPU time from the start of batch ``first`` to the start of batch
    ``first + steps``: ``steps`` whole cycles of fetch + step + everything Lightning does around
    it. The losses of every step are kept (as tensors: no extra work in the timed steps)."""

    def __init__(self, first: int, steps: int):
        self.first, self.steps = first, steps
        self.t0 = self.t1 = None
        self.losses: list[torch.Tensor] = []
        self.hparams = self.datamodule = None

    def on_train_start(self, trainer, pl_module):
        self.hparams, self.datamodule = pl_module.hparams, trainer.datamodule

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.first:
            self.t0 = (time.perf_counter(), time.process_time())
        elif batch_idx == self.first + self.steps:
            self.t1 = (time.perf_counter(), time.process_time())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].detach())


def _quiet():
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning.fabric",
                 "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def netspec_run(spec: str, variant: str, first: int, steps: int, run_dir: Path) -> dict:
    """One ``train(cfg)`` of ``first + steps + 1`` batches (no validation), timed by StepTimer."""
    over = [f"spec={spec}", "trainer.max_epochs=1", f"trainer.limit_train_batches={first + steps + 1}",
            "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
            "callbacks.curves=false", f"run_dir={run_dir}"]
    if variant == "netspec-lean":
        over += ["callbacks.progress_bar=none", "callbacks.checkpoint=false"]
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("train", overrides=register_spec_paths(over))
    timer = StepTimer(first, steps)
    # the progress bar draws as in a terminal (TTY_COMPATIBLE), into /dev/null
    env_before = os.environ.get("TTY_COMPATIBLE")
    os.environ["TTY_COMPATIBLE"] = "1"
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            app.train(cfg, extra_callbacks=[timer])   # the last callback: after the progress bar
    finally:
        if env_before is None:
            os.environ.pop("TTY_COMPATIBLE", None)
        else:
            os.environ["TTY_COMPATIBLE"] = env_before
    if timer.t0 is None or timer.t1 is None:
        raise RuntimeError(f"{variant}: the timed batches did not run (too few train batches?)")
    return {"wall": timer.t1[0] - timer.t0[0], "cpu": timer.t1[1] - timer.t0[1],
            "losses": [float(v) for v in timer.losses], "hparams": timer.hparams,
            "datamodule": timer.datamodule, "cfg": cfg}


def hand_run(ref: dict, first: int, steps: int) -> dict:
    """The same training, written by hand: seed, build, optimizer, schedule, loop."""
    hp, dm, cfg = ref["hparams"], ref["datamodule"], ref["cfg"]
    pl.seed_everything(cfg.seed, workers=True, verbose=False)   # as train() does before building
    model = build(hp.spec)
    model.train()
    optimizer = make_optimizer(model, SimpleNamespace(**hp.optim))
    sched = make_scheduler(optimizer, SimpleNamespace(**hp.sched),
                           steps_per_epoch=first + steps + 1, epochs=1)
    per_step = sched is not None and sched["interval"] == "step"
    losses = []
    t0 = None
    for i, (x, y) in enumerate(dm.train_dataloader()):
        if i == first:
            t0 = (time.perf_counter(), time.process_time())
        elif i == first + steps:
            t1 = (time.perf_counter(), time.process_time())
            break
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if per_step:
            sched["scheduler"].step()
        losses.append(loss.detach())
    return {"wall": t1[0] - t0[0], "cpu": t1[1] - t0[1], "losses": [float(v) for v in losses]}


def compare(spec: str, reps: int, first: int, steps: int, work: Path) -> dict:
    results = {m: [] for m in METHODS}
    # a warm-up round, not counted: imports, lazy initialisation, allocator, file caches
    print("  warm-up round ...", flush=True)
    ref = netspec_run(spec, "netspec", first, steps, work / "warmup")
    hand_run(ref, first, steps)
    netspec_run(spec, "netspec-lean", first, steps, work / "warmup-lean")
    for rep in range(reps):
        t = time.perf_counter()
        # rotate the order, so that every method runs first, second and third equally often
        for m in METHODS[rep % 3:] + METHODS[:rep % 3]:
            if m == "hand":
                results[m].append(hand_run(ref, first, steps))
            else:
                results[m].append(netspec_run(spec, m, first, steps, work / f"{m}-{rep}"))
        walls = "  ".join(f"{m} {results[m][-1]['wall'] / steps * 1e3:6.1f}" for m in METHODS)
        print(f"  rep {rep + 1}/{reps}: ms/step  {walls}   ({time.perf_counter() - t:.0f} s)",
              flush=True)
    results["batch"] = ref["cfg"].data.batch_size
    results["data"] = ref["datamodule"].describe()
    results["ref"] = ref
    return results


def report(res: dict, steps: int) -> dict:
    batch = res["batch"]
    med = {m: {k: statistics.median(r[k] for r in res[m]) for k in ("wall", "cpu")}
           for m in METHODS}
    print(f"\n  {'':36s} {'ms/step':>8s} {'samples/s':>10s} {'CPU ms/step':>12s} "
          f"{'ratio':>7s} {'CPU ratio':>10s} {'per-rep ratio':>14s}")
    ratios = {}
    for m in METHODS:
        w, c = med[m]["wall"] / steps, med[m]["cpu"] / steps
        line = f"  {LABELS[m]:36s} {w * 1e3:8.1f} {batch / w:10.1f} {c * 1e3:12.1f}"
        if m != "hand":
            ratio = med["hand"]["wall"] / med[m]["wall"]          # samples/s over samples/s
            cpu_ratio = med["hand"]["cpu"] / med[m]["cpu"]
            per = [h["wall"] / r["wall"] for h, r in zip(res["hand"], res[m], strict=True)]
            ratios[m] = (ratio, cpu_ratio)
            line += f" {ratio:7.3f} {cpu_ratio:10.3f}   {min(per):.3f}-{max(per):.3f}"
        print(line)
    # the same training? the per-step losses of the first repetition
    h = res["hand"][0]["losses"]
    for m in METHODS[1:]:
        n = res[m][0]["losses"][:len(h)]
        diff = max(abs(a - b) for a, b in zip(h, n, strict=True))
        print(f"  same training, {m} vs hand: {len(h)} step losses, largest difference {diff:.2e}"
              f" (first {h[0]:.4f}, last {h[-1]:.4f})")
    return ratios


def _children_cpu() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def default_command(spec: str, policy: str | None = None) -> None:
    """``python -m netspec.train spec=...`` with every default, once, as a user runs it (netspec
    sets OMP_WAIT_POLICY=PASSIVE itself unless the user set it), or with OMP_WAIT_POLICY=policy."""
    env = dict(os.environ)
    if _OMP_SET:
        env.pop("OMP_WAIT_POLICY", None)      # the user's environment, not the benchmark's
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    env.pop("TTY_COMPATIBLE", None)
    with tempfile.TemporaryDirectory(prefix="netspec-bench-") as cwd:
        load = os.getloadavg()[0]
        t, c = time.perf_counter(), _children_cpu()
        r = subprocess.run([sys.executable, "-m", "netspec.train", f"spec={spec}"], cwd=cwd,
                           env=env, capture_output=True, text=True)
        wall, cpu = time.perf_counter() - t, _children_cpu() - c
    out = r.stdout + r.stderr
    prefix = f"OMP_WAIT_POLICY={policy} " if policy else ""
    print(f"\n(b) the default command: {prefix}python -m netspec.train spec={spec}  (exit status "
          f"{r.returncode})")
    acc = re.search(r"best val/acc ([0-9.]+) at epoch (\S+)", out)
    secs = re.search(r"run dir .*\((\d+) s\)", out)
    if r.returncode != 0 or not acc:
        print("  it failed; the end of its output:\n" + out[-3000:])
        return
    lines = r.stdout[r.stdout.index("netspec.train: "):].splitlines()
    print("  " + "\n  ".join(lines[:5]))
    top1 = float(acc.group(1))
    print(f"  wall-clock {wall:.0f} s (with Python start-up and imports; train() itself "
          f"{secs.group(1) if secs else '?'} s), CPU time {cpu:.0f} s, best val top-1 {top1:.4f}")
    end, cores = os.getloadavg()[0], os.cpu_count() or 1
    busy = (": other programs shared the cores, and the wall-clock time grew with them"
            if max(load, end) > cores + 0.5 else "")
    print(f"  (load average {load:.2f} when it started, {end:.2f} at its end, on {cores} cores{busy})")
    print(f"  goals: under 180 s: {'ok' if wall < 180 else 'MISSED'}; top-1 >= 0.90: "
          f"{'ok' if top1 >= 0.90 else 'MISSED'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 2 repetitions of 4 steps, no default command")
    ap.add_argument("--spec", default="mobilenet_v2", help="zoo spec or path.yaml (default mobilenet_v2)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 6; quick 2)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 12; quick 4)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed steps first in every run (default 3; quick 1)")
    ap.add_argument("--no-default", action="store_true", help="skip the default command")
    ap.add_argument("--also-active", action="store_true",
                    help="run the default command a second time with OMP_WAIT_POLICY=ACTIVE "
                         "(spinning OpenMP threads)")
    args = ap.parse_args(argv)
    reps = args.reps or (2 if args.quick else 6)
    steps = args.steps or (4 if args.quick else 12)
    first = args.warmup if args.warmup is not None else (1 if args.quick else 3)

    _quiet()
    register_configs()
    start = time.perf_counter()
    print(f"netspec bench_train{' --quick' if args.quick else ''}: torch {torch.__version__}, "
          f"lightning {pl.__version__}, python {platform.python_version()}, "
          f"{torch.get_num_threads()} torch threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}, load average {os.getloadavg()[0]:.2f}")
    print(f"\n(a) throughput: {args.spec}, the default config (data, aug, optim, sched), "
          f"{steps} timed steps after {first} untimed, {reps} repetitions, order rotating")
    with tempfile.TemporaryDirectory(prefix="netspec-bench-") as work:
        res = compare(args.spec, reps, first, steps, Path(work))
    print(f"  data: {res['data']}, batch {res['batch']}; median of {reps}; ratio = samples/s of "
          f"netspec.train / samples/s of the hand loop (goal >= 0.95)")
    ratios = report(res, steps)
    for m, (ratio, cpu_ratio) in ratios.items():
        print(f"  {LABELS[m]}: throughput ratio {ratio:.3f} (CPU time {cpu_ratio:.3f}): "
              f"{'ok' if ratio >= 0.95 else 'MISSED'}")
    if not (args.quick or args.no_default):
        default_command(args.spec)
        if args.also_active:
            default_command(args.spec, "ACTIVE")
    print(f"\ntotal {time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
