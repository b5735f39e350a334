"""Run an expression proxy on a torch model with the engine itself: statistics, pack, evaluator.

The search scores expressions on cached statistics of many archs; here the same code path scores
one model directly, so a registry proxy means exactly what it meant during the search. Torch-only:
``autoproxy export --python`` bundles this file, so a standalone module scores as ``autoproxy.score``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from autoproxy.statistics import DEFAULT_SUB_BATCHES, compute_statistics
from primitives.evaluate import Evaluator
from primitives.leaves import statistics_read
from primitives.packed import pack


def expression_score(tree: Sequence, net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                     loss_fn=None, *, sub_batches: int = DEFAULT_SUB_BATCHES) -> float:
    """The expression's score of ``net`` on one minibatch (unsketched statistics, as exported; only the
    passes the expression reads)."""
    stats = compute_statistics(net, inputs, targets, loss_fn, sub_batches=sub_batches, needs=statistics_read(tree))
    return float(Evaluator(pack([stats]), memo_bytes=0).values(tree)[0])
