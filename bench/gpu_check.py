"""One command that checks netspec's GPU paths and prints a table (see bench/README.md).

    python bench/gpu_check.py            # on 1+ NVIDIA GPUs: under 5 minutes
    python bench/gpu_check.py --cpu      # the same paths on the CPU at toy size (CI, no GPU)

Every row is a command line as a user types it (``python -m netspec.train ...``) in its own
process, so a crash, hang or DDP relaunch of one row can't take the others down; the last row
times ResNet-50 training steps of netspec.train against a hand-written loop in one process.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def toy_or_real(gpus: int) -> dict:
    """The command-line pieces of a GPU run, or of the same run at toy size on the CPU."""
    if gpus:
        return {"trainer": ["trainer=gpu"], "data": ["data=fake", "data.num_samples=2048",
                                                     "data.image_size=64", "data.batch_size=128"],
                "spec": "resnet20", "ddp": [f"trainer.devices={gpus}", "trainer.accelerator=gpu"],
                "trials": gpus}
    return {"trainer": ["trainer=cpu"], "data": ["data=fake", "data.num_samples=64",
                                                 "data.image_size=32", "data.batch_size=16"],
            "spec": "lenet5", "ddp": ["trainer.devices=2", "trainer.accelerator=cpu"],
            "trials": 1}


def rows(gpus: int, run_root: Path) -> list[tuple[str, list[str] | None, str]]:
    """(name, arguments of `python -m ...`, or None and why it is skipped)."""
    t = toy_or_real(gpus)
    quiet = ["aug=none", "callbacks=minimal", "logger=none", "trainer.max_epochs=1",
             "trainer.enable_model_summary=false"]

    def train(name, *extra):
        return ["-m", "netspec.train", f"spec={t['spec']}", *t["trainer"], *t["data"], *quiet,
                f"run_dir={run_root / name}", *extra]

    def ddp(strategy, *extra):
        return train(strategy, "trainer.strategy=" + strategy, *t["ddp"], *extra)

    out = [
        ("gpu preset trains" if gpus else "cpu preset trains (toy)", train("preset"), ""),
        ("precision bf16-mixed", train("bf16", "trainer.precision=bf16-mixed"), ""),
        ("channels_last", train("channels_last", "channels_last=true"), ""),
        ("compile=true", train("compile", "compile=true"), ""),
        (f"DDP ddp x{gpus or 2}", ddp("ddp"), ""),
        (f"DDP ddp_spawn x{gpus or 2}", ddp("ddp_spawn"), ""),
    ]
    if gpus:
        out.append(("sync_batchnorm (ddp)", ddp("sync_bn", "trainer.sync_batchnorm=true"), ""))
    else:
        out.append(("sync_batchnorm (ddp)", None, "needs CUDA GPUs"))
    out.append((f"search: {t['trials']} trial(s), jobs=auto",
                ["-m", "netspec.search", "space=mobile_stages", "strategy=random",
                 f"n_trials={t['trials']}", "jobs=auto", "budget.epochs=1", *t["trainer"],
                 *t["data"], "aug=none", f"run_dir={run_root / 'search'}"], ""))
    out.append(("resnet50 img/s: netspec.train vs loop",
                [str(Path(__file__).resolve()), "--throughput", *(["--cpu"] if not gpus else [])],
                ""))
    return out


def run_row(args: list[str], timeout: float) -> tuple[str, float, str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    start = time.time()
    try:
        p = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "FAIL", time.time() - start, f"no end after {timeout:.0f} s"
    seconds = time.time() - start
    if p.returncode != 0:
        lines = (p.stderr or p.stdout).strip().splitlines() or [f"exit {p.returncode}"]
        return "FAIL", seconds, lines[-1][:100]
    result = [ln for ln in p.stdout.splitlines() if ln.startswith("throughput:")]
    return "OK", seconds, result[-1].removeprefix("throughput:").strip() if result else ""


# -- ResNet-50 training throughput -----------------------------------------------------------------

def throughput(cpu: bool) -> str:
    """img/s of netspec.train's steps and of a hand-written loop on the same network and data."""
    import torch
    from pytorch_lightning import Callback

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_training import cfg_of

    from netspec.compile import resolve
    from netspec.train.app import train
    size, batch, steps, warm = (32, 8, 6, 2) if cpu else (224, 128, 40, 10)
    device = "cpu" if cpu else "cuda"
    precision = "32-true" if cpu else "bf16-mixed"

    class Clock(Callback):
        def __init__(self):
            self.times = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch_, batch_idx):
            if device == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = cfg_of("spec=resnet50", f"trainer={'cpu' if cpu else 'gpu'}",
                     f"trainer.precision={precision}", "data=fake",
                     f"data.num_samples={batch * (steps + 1)}", f"data.image_size={size}",
                     f"data.batch_size={batch}", "data.val_fraction=0.01", "aug=none",
                     "callbacks=minimal", "callbacks.checkpoint=false", "logger=none",
                     "trainer.max_epochs=1", "trainer.enable_model_summary=false",
                     "optim=sgd", "sched=none", f"run_dir={tmp}")
        train(cfg, extra_callbacks=[clock])
    ours = batch * (len(clock.times) - warm - 1) / (clock.times[-1] - clock.times[warm])

    # the loop a user writes by hand: the same network, optimizer and precision
    net = resolve("resnet50", [f"input.size=[{size}, {size}]"])
    from netspec.compile import build
    model = build(net.spec).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, int(net.spec["num_classes"]), (batch,), device=device)
    times = []
    for _ in range(steps):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=not cpu):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())
    loop = batch * (len(times) - warm - 1) / (times[-1] - times[warm])
    return f"{ours:.0f} vs {loop:.0f} img/s ({ours / loop:.2f}x; batch {batch} at {size}px)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="toy size on the CPU, even with GPUs")
    parser.add_argument("--throughput", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=150, help="seconds per row")
    args = parser.parse_args()
    if args.throughput:
        print("throughput:", throughput(args.cpu))
        return
    import torch
    gpus = 0 if args.cpu else torch.cuda.device_count()
    print(f"netspec GPU check: {gpus} CUDA GPU(s)" + ("" if gpus else "; CPU toy mode"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, row, why in rows(gpus, Path(tmp)):
            if row is None:
                results.append((name, f"SKIPPED({why})", 0.0, ""))
            else:
                status, seconds, note = run_row(row, args.timeout)
                results.append((name, status, seconds, note))
            print(f"  {name:<40} {results[-1][1]:<8} {results[-1][2]:6.1f} s  {results[-1][3]}",
                  flush=True)
    width = max(len(r[0]) for r in results)
    print("\n" + f"{'check':<{width}}  {'result':<26} {'seconds':>7}  note")
    for name, status, seconds, note in results:
        print(f"{name:<{width}}  {status:<26} {seconds:7.1f}  {note}")
    sys.exit(1 if any(r[1] == "FAIL" for r in results) else 0)


if __name__ == "__main__":
    main()
