"""Measured latency of a sample: the median forward time of the built network, timed with
``torch.utils.benchmark.Timer`` (its clock synchronises the accelerator; ``num_threads`` is its
thread setting, the caller's restored after)."""
from __future__ import annotations

import contextlib


def measure_latency(spec: dict, lat) -> float:
    """Median milliseconds of a forward pass of the built network (eval mode, no grad), over
    ``lat.runs`` timed forwards after ``lat.warmup`` untimed ones, on ``lat.device`` with
    ``lat.threads`` torch threads, for a batch of ``lat.batch``."""
    import torch
    from torch.utils import benchmark

    from ..compile import build
    device = torch.device(lat.device)
    model = build(spec).eval().to(device)
    x = torch.randn(int(lat.batch), *model.input_shape, device=device)
    timer = benchmark.Timer("model(x)", globals={"model": model, "x": x},
                            num_threads=max(1, int(lat.threads)))
    # the Timer's clock synchronises the current accelerator: make it the model's device
    on_device = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with torch.inference_mode(), on_device:
        if int(lat.warmup) > 0:
            timer.timeit(int(lat.warmup))
        # one replicate per forward, so that the median is over single forwards (timeit(n)
        # gives one replicate, the mean of n); each timeit also runs two untimed forwards
        runs = [timer.timeit(1) for _ in range(max(1, int(lat.runs)))]
    return benchmark.Measurement.merge(runs)[0].median * 1000
