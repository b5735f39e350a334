"""Run an expression proxy on a torch model with the engine itself: statistics, pack, evaluator.

The search scores expressions on cached statistics of many archs; here the same code path scores
one model directly, so a registry proxy means exactly what it meant during the search.
"""
from __future__ import annotations

from typing import Sequence

import torch
from deap import gp
from torch import nn

from primitives.catalog import PRIMITIVES_BY_KEY
from primitives.evaluate import leaf_value
from primitives.packed import PackedStatistics, pack
from primitives.tree import subtrees

DEFAULT_SUB_BATCHES = 4


def tree_values(tree: Sequence, packed: PackedStatistics) -> torch.Tensor:
    """Per-arch values of ``tree`` without the evaluator's validity judgement (which calls a single
    arch's score "constant")."""
    ends = dict(subtrees(tree))

    def value(start: int):
        node = tree[start]
        if not isinstance(node, gp.Primitive):
            if isinstance(node.value, str):
                return leaf_value(packed, node.value)
            size = packed.num_nodes if node.ret.level == "node" else packed.num_archs
            return torch.full((size,), float(node.value), device=packed.device)
        args, child = [], start + 1
        for _ in range(node.arity):
            args.append(value(child))
            child = ends[child]
        return PRIMITIVES_BY_KEY[node.name].fn(packed, *args)

    with torch.no_grad():
        return value(0)


def expression_score(tree: Sequence, net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                     loss_fn=None, *, sub_batches: int = DEFAULT_SUB_BATCHES) -> float:
    """The expression's score of ``net`` on one minibatch (unsketched statistics, as exported)."""
    from autoproxy.statistics import compute_statistics

    stats = compute_statistics(net, inputs, targets, loss_fn, sub_batches=sub_batches)
    return float(tree_values(tree, pack([stats]))[0])
