"""One torch intra-op thread for per-arch work (training, statistics).

Why: the nets are small, so extra threads gain little on an idle machine and cost a lot on a busy
one (OpenMP threads spin on cores that Ray workers or other processes occupy: 48 s/arch instead of
4 s for a serial cache build on a shared machine). With one thread an arch costs the same serially
and on a Ray worker, and its floating-point reductions run in the same order, so results do not
depend on the executor or the core count.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block with one intra-op thread, then restore the caller's setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
