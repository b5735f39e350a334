"""Evaluate trees on packed statistics: one score per architecture, all nodes at once.

A valid tree never raises here: numerical trouble makes the result invalid with a reason
("non-finite", "constant", "linalg"); any other exception is a bug in a primitive's shapes and is
reported as invalid with ``shape_error=True`` so that callers can count (and must never see) them.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import torch
from deap import gp

from primitives import types as T
from primitives.catalog import PRIMITIVES_BY_KEY
from primitives.leaves import LEAVES_BY_NAME
from primitives.packed import PackedStatistics
from primitives.tree import subtrees

CONSTANT_RTOL = 1e-6


@dataclass
class EvalResult:
    scores: torch.Tensor | None      # (num_archs,) float32 on the packed device, None when invalid
    valid: bool
    reason: str | None = None
    shape_error: bool = False


def _nbytes(value) -> int:
    if isinstance(value, tuple):
        return sum(t.numel() * t.element_size() for t in value)
    return value.numel() * value.element_size()


def leaf_value(pk: PackedStatistics, name: str):
    """The packed value of a statistic leaf, laid out as its shape class requires."""
    leaf = LEAVES_BY_NAME[name]
    t = leaf.type
    if t is T.Param:
        return pk.params[leaf.key]
    if t in (T.ActOut, T.ActIn, T.ChanMatrix):
        return tuple(b.tensors[leaf.key] for b in pk.buckets_for(t))
    if t is T.Kernel:
        return pk.kernels[leaf.key]
    if t is T.NodeScalar:
        return pk.node_scalars[leaf.key]
    if t is T.NetKernel:
        return pk.net_kernels[leaf.key]
    return pk.net_scalars[leaf.key]


def check_scores(scores: torch.Tensor) -> EvalResult:
    """Valid means finite everywhere and not the same score for every arch."""
    if not bool(torch.isfinite(scores).all()):
        return EvalResult(None, False, "non-finite")
    high, low = scores.max(), scores.min()
    if float(high - low) <= CONSTANT_RTOL * max(float(high.abs()), float(low.abs()), 1e-30):
        return EvalResult(None, False, "constant")
    return EvalResult(scores, True)


class Evaluator:
    """Evaluates many trees on one packed subset, memoising common subtrees within a byte budget."""

    def __init__(self, packed: PackedStatistics, memo_bytes: int = 256 << 20):
        self.packed = packed
        self.memo_bytes = memo_bytes
        self._memo: OrderedDict[str, object] = OrderedDict()
        self._memo_used = 0

    def _remember(self, key: str, value) -> None:
        size = _nbytes(value)
        if size > self.memo_bytes:
            return
        while self._memo and self._memo_used + size > self.memo_bytes:
            _, old = self._memo.popitem(last=False)
            self._memo_used -= _nbytes(old)
        self._memo[key] = value
        self._memo_used += size

    def _value(self, tree: Sequence, start: int, ends: dict[int, int]):
        node = tree[start]
        pk = self.packed
        if not isinstance(node, gp.Primitive):
            if isinstance(node.value, str):
                return leaf_value(pk, node.value)
            size = pk.num_nodes if node.ret is T.NodeScalar else pk.num_archs
            return torch.full((size,), float(node.value), device=pk.device)
        key = str(gp.PrimitiveTree(tree[start:ends[start]])) if self.memo_bytes else None
        if key is not None and key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        args, child = [], start + 1
        for _ in range(node.arity):
            args.append(self._value(tree, child, ends))
            child = ends[child]
        value = PRIMITIVES_BY_KEY[node.name].fn(pk, *args)
        if key is not None:
            self._remember(key, value)
        return value

    def values(self, tree: Sequence) -> torch.Tensor:
        """Per-arch values without the validity judgement (a single arch's score is not "constant");
        may raise on numerical trouble."""
        with torch.no_grad():
            return self._value(tree, 0, dict(subtrees(tree)))

    def evaluate(self, tree: Sequence) -> EvalResult:
        try:
            scores = self.values(tree)
        except torch.linalg.LinAlgError as err:
            return EvalResult(None, False, f"linalg: {str(err).splitlines()[0][:120]}")
        except (RuntimeError, IndexError, ValueError, TypeError) as err:
            return EvalResult(None, False, f"shape error: {str(err).splitlines()[0][:160]}", shape_error=True)
        return check_scores(scores)

    def evaluate_many(self, trees: Sequence[Sequence]) -> list[EvalResult]:
        return [self.evaluate(tree) for tree in trees]


def evaluate(tree: Sequence, packed: PackedStatistics) -> EvalResult:
    """One tree, no memo kept between calls (use ``Evaluator`` for batches of candidates)."""
    return Evaluator(packed, memo_bytes=0).evaluate(tree)
