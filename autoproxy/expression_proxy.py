"""Run an expression proxy on a torch model with the engine itself: statistics, pack, evaluator.

The search scores expressions on cached statistics of many archs; here the same code path scores
one model directly, so a registry proxy means exactly what it meant during the search. Only the
statistics groups the expression reads are computed. Torch-only: ``autoproxy export --python``
bundles this file, so a standalone module scores as ``autoproxy.score``.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from torch import nn

from autoproxy.statistics import DEFAULT_SUB_BATCHES, compute_statistics, unavailable_read
from primitives.evaluate import Evaluator
from primitives.leaves import statistics_read
from primitives.packed import pack


def expression_score(tree: Sequence, net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                     loss_fn=None, *, sub_batches: int = DEFAULT_SUB_BATCHES, split_data: int = 1) -> float:
    """The expression's score of ``net`` on one minibatch (unsketched statistics, as exported; only the
    groups the expression reads). NaN, with one warning saying why, when a statistic it reads cannot
    be computed for this model or the value is not finite (never a silent ``-inf``)."""
    reads = statistics_read(tree)
    stats = compute_statistics(net, inputs, targets, loss_fn, sub_batches=sub_batches, needs=reads,
                               split_data=split_data)
    unavailable = unavailable_read(stats, reads)
    if unavailable:
        groups = "; ".join(f"{group} ({reason})" for group, reason in unavailable.items())
        warnings.warn(f"{type(net).__name__}: the expression is undefined, statistics group unavailable: {groups}",
                      stacklevel=2)
        return math.nan
    packed = pack([stats], release=True)   # this call holds the only reference: never both copies
    del stats
    value = float(Evaluator(packed, memo_bytes=0).values(tree)[0])
    if not math.isfinite(value):
        warnings.warn(f"{type(net).__name__}: the expression is undefined, its value is {value} (a statistic it "
                      f"reads is singular or degenerate on this model: {', '.join(sorted(reads))})", stacklevel=2)
        return math.nan
    return value
