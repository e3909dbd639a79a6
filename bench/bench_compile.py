"""Benchmark of the compiled models and of the static analysis, each against its reference.

(a) Training step (forward + backward) of the netspec-compiled model over the torchvision model
    with the same weights (``port_weights``): train mode, the same input, interleaved runs (the
    order alternates every repetition), median of N repetitions. Goal: ratio <= 1.00.
(b) ``netspec.analyze`` on every zoo spec (at its default size) against FlopCounterMode on the
    torchvision models named by the specs' ``reference:`` key. Goal: the zoo in under 2 s.
(c) The resolve pass's scale: ``netspec.analyze`` of a spec of 600, 6,000 and 19,990 stage rows
    (the last at the layer limit). Goal: linear time, the same time per row at every size.

    python bench/bench_compile.py            # the full run, about 2-3 minutes on 2 CPU cores
    python bench/bench_compile.py --quick    # a smoke run (small input, few repetitions)
"""
from __future__ import annotations

import os

# OpenMP threads that spin while they wait make a shared machine's timings meaningless: with
# another process on one of 2 cores, a 2-thread step took 8x longer than a 1-thread one. Passive
# waiting (set before torch loads its OpenMP runtime) keeps both models on the same footing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import netspec  # noqa: E402
from netspec.lang.loader import load_spec  # noqa: E402

NETS = ("resnet50", "mobilenet_v2", "densenet121", "efficientnet_b0")
# torchvision constructors that need arguments to match the spec (no auxiliary heads)
TV_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": True},
             "inception_v3": {"aux_logits": False, "init_weights": True}}


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def torchvision_model(name: str) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(torchvision.models, name)(**TV_KWARGS.get(name, {}))


def reference_name(spec: str) -> str | None:
    """The torchvision model a zoo spec names in ``reference: torchvision.NAME``, if any."""
    ref = load_spec(spec).get("reference")
    if isinstance(ref, str) and ref.startswith("torchvision."):
        name = ref.split(".", 1)[1]
        return name if hasattr(torchvision.models, name) else None
    return None


# -- (a) training step ------------------------------------------------------------------------

def train_step(model, x, y):
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()


def time_step(model, x, y) -> tuple[float, float]:
    """(wall seconds, process CPU seconds over all threads) of one training step."""
    w, c = time.perf_counter(), time.process_time()
    train_step(model, x, y)
    return time.perf_counter() - w, time.process_time() - c


def bench_train(name: str, batch: int, size: int, reps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    ref = torchvision_model(name).train()
    ours = netspec.build(name, [f"input.size={size}"]).train()
    netspec.port_weights(ours, ref)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 1000, (batch,))
    for _ in range(warmup):
        train_step(ours, x, y)
        train_step(ref, x, y)
    t_ours, t_ref = [], []
    for rep in range(reps):
        pair = ((ours, t_ours), (ref, t_ref))
        for model, times in (pair if rep % 2 == 0 else pair[::-1]):
            times.append(time_step(model, x, y))
    med = lambda ts, i: statistics.median(t[i] for t in ts)
    return {"wall": (med(t_ours, 0), med(t_ref, 0)), "cpu": (med(t_ours, 1), med(t_ref, 1)),
            "spread": (min(a[0] / b[0] for a, b in zip(t_ours, t_ref, strict=True)),
                       max(a[0] / b[0] for a, b in zip(t_ours, t_ref, strict=True)))}


# -- (b) analysis ------------------------------------------------------------------------------

def flop_count(ref: str, shape: tuple, device: str) -> tuple[float, float, int]:
    """(build CPU s, count CPU s, MACs) of FlopCounterMode on a torchvision model."""
    t = time.process_time()
    with torch.device(device):
        model = torchvision_model(ref).eval()
    build = time.process_time() - t
    t = time.process_time()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape, device=device))
    return build, time.process_time() - t, counter.get_total_flops() // 2


def bench_analysis(quick: bool) -> None:
    specs = netspec.zoo()
    netspec.analyze(specs[0])            # imports and the block library, outside the timing
    flop_count("alexnet", (3, 64, 64), "meta")                     # the same for the reference
    per_spec = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for spec in specs:
        t = time.process_time()
        netspec.analyze(spec)
        per_spec[spec] = time.process_time() - t
    t_zoo, c_zoo = time.perf_counter() - t0, time.process_time() - c0
    slowest = max(per_spec, key=per_spec.get)

    refs = {spec: reference_name(spec) for spec in specs}
    refs = {s: r for s, r in refs.items() if r is not None}
    if quick:
        refs = dict(list(refs.items())[:3])
    shapes = {s: netspec.analyze(s) for s in refs}
    t_build = t_count = 0.0              # process CPU time: other work on the machine aside
    checks, on_cpu = [], []
    w0 = time.perf_counter()
    for spec, ref in refs.items():
        try:
            build, count, macs = flop_count(ref, shapes[spec].input_shape, "meta")
        except Exception:                # a model that can't run on meta tensors: real weights
            build, count, macs = flop_count(ref, shapes[spec].input_shape, "cpu")
            on_cpu.append(spec)
        t_build, t_count = t_build + build, t_count + count
        checks.append((spec, shapes[spec].macs, macs))
    w_ref = time.perf_counter() - w0
    t_same = sum(per_spec[s] for s in refs)

    print("\n(b) static analysis: netspec.analyze on every zoo spec at its default size, against")
    print("    FlopCounterMode on the torchvision model each spec names as `reference:` (batch 1, "
          "no_grad;")
    print("    the model built on the meta device: no weights, the fastest way to count).")
    print("    Process CPU time; wall-clock time in brackets.")
    print(f"    netspec.analyze, whole zoo ({len(specs)} specs)   {c_zoo:7.3f} s  "
          f"({t_zoo:.3f} s)   goal < 2 s: {'ok' if c_zoo < 2 else 'MISSED'}")
    print(f"      slowest spec: {slowest} {per_spec[slowest] * 1e3:.0f} ms")
    print(f"    the {len(refs)} specs whose reference is a torchvision model:")
    print(f"      netspec.analyze                       {t_same:7.3f} s")
    print(f"      torchvision build + FlopCounterMode   {t_build + t_count:7.3f} s  "
          f"({w_ref:.3f} s)   build {t_build:.3f} s + count {t_count:.3f} s")
    if on_cpu:
        print(f"        (built on the CPU, not meta: {', '.join(on_cpu)})")
    ratio = t_same / (t_build + t_count)
    print(f"      ratio netspec / reference             {ratio:7.4f}    "
          f"(netspec {1 / ratio:,.1f}x faster)")
    diff = lambda c: abs(c[1] - c[2]) / max(c[2], 1)
    worst = max(checks, key=diff)
    agree = sum(diff(c) <= 0.005 for c in checks)
    if diff(worst) == 0:
        print(f"      MACs equal to FlopCounterMode/2 for all {len(checks)}")
    else:
        print(f"      MACs within 0.5% of FlopCounterMode/2: {agree} of {len(checks)}; largest "
              f"difference {diff(worst):.3%}")
        print(f"        ({worst[0]}: {worst[1]:,} vs {worst[2]:,})")
    # the ordinary way: a real model on the CPU (weights allocated and initialised)
    ordinary = [s for s in NETS if s in refs][:1 if quick else None]
    t_real = sum(sum(flop_count(refs[s], shapes[s].input_shape, "cpu")[:2]) for s in ordinary)
    t_ours = sum(per_spec[s] for s in ordinary)
    print(f"    the usual way, a real model on the CPU, for {', '.join(ordinary)}:")
    print(f"      netspec.analyze {t_ours:.3f} s; torchvision build + FlopCounterMode "
          f"{t_real:.3f} s; ratio {t_ours / t_real:.4f}")


# -- (c) scale of the resolve pass ------------------------------------------------------------

def rows_spec(n: int) -> dict:
    return {"input": {"channels": 3, "size": 8}, "num_classes": 10,
            "stages": [{"conv": {"c": 8, "k": 3}} for _ in range(n)],
            "head": [{"pool": "global_avg"}, {"linear": {"c": 10}}]}


def bench_scale(quick: bool) -> None:
    sizes = (600, 6000) if quick else (600, 6000, 19_990)
    netspec.analyze(rows_spec(10))
    print("\n(c) resolve scale: netspec.analyze of a spec of N conv stage rows (process CPU time, "
          "best of 3)")
    per_row = {}
    for n in sizes:
        spec = rows_spec(n)
        best = float("inf")
        for _ in range(3):
            t = time.process_time()
            netspec.analyze(spec)
            best = min(best, time.process_time() - t)
        per_row[n] = best / n
        print(f"    {n:>6} rows   {best:7.3f} s   {best / n * 1e6:6.1f} us per row")
    growth = per_row[sizes[-1]] / per_row[sizes[0]]
    print(f"    time per row at {sizes[-1]:,} rows over at {sizes[0]}: {growth:.2f}  "
          f"(goal: linear, about 1; a scan of all earlier rows would grow it {sizes[-1] // sizes[0]}x)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny input, 2 repetitions")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 8; quick 2)")
    ap.add_argument("--size", type=int, default=None, help="input size (default 160; quick 64)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (default 7; quick 2)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 2; quick 1)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: the CPU cores this process may use)")
    ap.add_argument("--nets", default=",".join(NETS), help="comma-separated zoo names")
    args = ap.parse_args(argv)
    batch = args.batch or (2 if args.quick else 8)
    size = args.size or (64 if args.quick else 160)
    reps = args.reps or (2 if args.quick else 7)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    threads = args.threads or cpu_threads()
    torch.set_num_threads(threads)

    start = time.perf_counter()
    print(f"netspec bench{' --quick' if args.quick else ''}: torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}, python {platform.python_version()}")
    print(f"CPU: {threads} torch threads ({cpu_threads()} cores usable), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, load average at start "
          f"{os.getloadavg()[0]:.1f}")
    print("\n(a) training step, netspec over torchvision, the same weights (port_weights)")
    print(f"    forward + backward of cross-entropy in train mode, batch {batch} at {size}x{size}, "
          f"float32, the same input;")
    print(f"    {warmup} warm-up steps each, then {reps} repetitions interleaved (the A/B order "
          f"alternates), medians.")
    print("    wall: wall-clock time; CPU: process CPU time over all threads, which other "
          "programs on a shared")
    print("    machine disturb much less; per-rep: lowest and highest wall ratio of one "
          "repetition.")
    print(f"    {'network':<16}{'wall netspec':>13}{'torchvision':>12}{'ratio':>7}"
          f"{'CPU netspec':>13}{'torchvision':>12}{'ratio':>7}{'per-rep':>12}")
    results = {}
    for name in args.nets.split(","):
        r = bench_train(name, batch, size, reps, warmup)
        (wa, wb), (ca, cb), (lo, hi) = r["wall"], r["cpu"], r["spread"]
        results[name] = (wa / wb, ca / cb)
        print(f"    {name:<16}{wa * 1e3:11.0f}ms{wb * 1e3:10.0f}ms{wa / wb:7.3f}"
              f"{ca * 1e3:11.0f}ms{cb * 1e3:10.0f}ms{ca / cb:7.3f}{lo:7.2f}-{hi:.2f}", flush=True)
    worst = max(results, key=lambda n: results[n][1])
    print(f"    goal: ratio <= 1.00. Highest CPU-time ratio: {worst} {results[worst][1]:.3f} "
          f"(wall {results[worst][0]:.3f})")

    bench_analysis(args.quick)
    bench_scale(args.quick)
    print(f"\ntotal bench time {time.perf_counter() - start:.0f} s, load average at the end "
          f"{os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
