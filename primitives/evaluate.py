"""Evaluate trees on packed statistics: one score per architecture, all nodes at once.

A valid tree never raises here: numerical trouble makes the result invalid with a reason
("non-finite", "constant", "linalg"); any other exception is a bug in a primitive's shapes and is
reported as invalid with ``shape_error=True`` so that callers can count (and must never see) them.

Evaluation is a fold (``primitives/fold.py``) over any prefix-order tree: a DEAP ``PrimitiveTree`` in
the engine, the nodes of ``primitives/program.py`` in an exported module. Only torch, the standard
library and the torch-only ``primitives`` modules are imported: ``autoproxy export --python`` bundles
this file, so an exported proxy runs this very evaluator.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, NamedTuple, Sequence

import torch

from primitives.fold import fold
from primitives.kernels import VARIANTS_BY_KEY
from primitives.leaves import LEAVES_BY_NAME
from primitives.packed import PackedStatistics
from primitives.types import ActIn, ActOut, ChanMatrix, Kernel, NetKernel, NodeScalar, Param

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
    if t is Param:
        return pk.params[leaf.key]
    if t in (ActOut, ActIn, ChanMatrix):
        return tuple(b.tensors[leaf.key] for b in pk.buckets_for(t))
    if t is Kernel:
        return pk.kernels[leaf.key]
    if t is NodeScalar:
        return pk.node_scalars[leaf.key]
    if t is NetKernel:
        return pk.net_kernels[leaf.key]
    return pk.net_scalars[leaf.key]


def terminal_value(pk: PackedStatistics, node: Any) -> torch.Tensor:
    """A tree's statistic leaf, or its constant repeated over every node (node scalar) or arch."""
    if isinstance(node.value, str):
        return leaf_value(pk, node.value)
    size = pk.num_nodes if node.ret is NodeScalar else pk.num_archs
    return torch.full((size,), float(node.value), device=pk.device)


def check_scores(scores: torch.Tensor) -> EvalResult:
    """Valid means finite everywhere and not the same score for every arch."""
    if not bool(torch.isfinite(scores).all()):
        return EvalResult(None, False, "non-finite")
    high, low = scores.max(), scores.min()
    if float(high - low) <= CONSTANT_RTOL * max(float(high.abs()), float(low.abs()), 1e-30):
        return EvalResult(None, False, "constant")
    return EvalResult(scores, True)


def judge(values: Callable[[], torch.Tensor]) -> EvalResult:
    """The result of computing per-arch ``values``: invalid with the reason when linear algebra fails,
    a shape error for any other exception, else as ``check_scores`` judges the scores."""
    try:
        scores = values()
    except torch.linalg.LinAlgError as err:
        return EvalResult(None, False, f"linalg: {str(err).splitlines()[0][:120]}")
    except (RuntimeError, IndexError, ValueError, TypeError) as err:
        return EvalResult(None, False, f"shape error: {str(err).splitlines()[0][:160]}", shape_error=True)
    return check_scores(scores)


class _Subtree(NamedTuple):
    """A subtree's memo key (its typed text) and how to compute its value. Nothing runs until
    ``value()`` is called, so a subtree found in the memo never evaluates its own arguments."""

    key: str
    value: Callable[[], Any]


class Evaluator:
    """Evaluates many trees on one packed subset, memoising common subtrees within a byte budget."""

    def __init__(self, packed: PackedStatistics, memo_bytes: int = 256 << 20):
        self.packed = packed
        self.memo_bytes = memo_bytes
        self._memo: OrderedDict[str, object] = OrderedDict()
        self._memo_used = 0

    def _remember(self, key: str, value) -> None:
        size = _nbytes(value)
        if not self.memo_bytes or size > self.memo_bytes:
            return
        while self._memo and self._memo_used + size > self.memo_bytes:
            _, old = self._memo.popitem(last=False)
            self._memo_used -= _nbytes(old)
        self._memo[key] = value
        self._memo_used += size

    def _leaf(self, node: Any) -> _Subtree:
        key = node.value if isinstance(node.value, str) else repr(float(node.value))
        return _Subtree(key, partial(terminal_value, self.packed, node))

    def _call(self, node: Any, args: list[_Subtree]) -> _Subtree:
        key = f"{node.name}({', '.join(arg.key for arg in args)})" if self.memo_bytes else ""   # no memo: no keys
        return _Subtree(key, partial(self._primitive_value, key, VARIANTS_BY_KEY[node.name].fn, args))

    def _primitive_value(self, key: str, kernel: Callable, args: list[_Subtree]):
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        value = kernel(self.packed, *(arg.value() for arg in args))
        self._remember(key, value)
        return value

    def values(self, tree: Sequence) -> torch.Tensor:
        """Per-arch values without the validity judgement (a single arch's score is not "constant");
        may raise on numerical trouble. Computing a value recurses once per level of the tree, which
        the parser limits to ``MAX_DEPTH`` (primitives/parse.py)."""
        absent = self._absent(tree)
        if absent is not None and bool(absent.all()):
            return torch.full((self.packed.num_archs,), float("nan"), device=self.packed.device)
        with torch.no_grad():
            values = fold(tree, self._leaf, self._call).value()
        return values if absent is None else values.masked_fill(absent, float("nan"))

    def _absent(self, tree: Sequence) -> torch.Tensor | None:
        """(A,) bool: the archs lacking a statistic the tree reads (undefined there); None if none do."""
        masks = [self.packed.missing[node.name] for node in tree if node.name in self.packed.missing]
        return torch.stack(masks).any(0) if masks else None

    def evaluate(self, tree: Sequence) -> EvalResult:
        return judge(partial(self.values, tree))

    def evaluate_many(self, trees: Sequence[Sequence]) -> list[EvalResult]:
        return [self.evaluate(tree) for tree in trees]


def evaluate(tree: Sequence, packed: PackedStatistics) -> EvalResult:
    """One tree, no memo kept between calls (use ``Evaluator`` for batches of candidates)."""
    return Evaluator(packed, memo_bytes=0).evaluate(tree)
