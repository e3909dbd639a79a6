"""Thread settings for small tensor work (data batches, the RL controller's tiny networks)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run small tensor operations on one thread (as torch does in DataLoader workers): on them,
    intra-op threads only contend with each other. The caller's setting is restored after."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
