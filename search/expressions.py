"""The one place where ``search`` talks to ``primitives``: parsing, algebraic keys, simplification,
packing and scoring. Everything else in ``search`` handles expressions as strings and trees.

Data flows one way: ``search`` imports ``primitives``, never the reverse.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from autoproxy.rank_metrics import undefined_last
from autoproxy.statistics import SKETCHED_KEYS
from primitives.evaluate import Evaluator
from primitives.leaves import statistics_read as leaves_read
from primitives.packed import SEARCH_SKETCH
from primitives.packed import pack as pack_statistics
from primitives.pset import build_pset, gen_grow, gen_half_and_half
from primitives.pset import complexity as weighted_complexity
from primitives.reference import REFERENCE_EXPRESSIONS
from primitives.symbolic import algebraic_key  # noqa: F401  (re-exported: search's door to the SymPy key)
from primitives.symbolic import simplified_text
from primitives.tree import parse as parse_text
from primitives.tree import to_string

# What a worker sends back for one candidate on one task: the per-arch scores, or why there are none.
Outcome = tuple[np.ndarray | None, str | None]


def primitive_set() -> Any:
    """The typed DEAP primitive set (returns the network-level scalar type)."""
    return build_pset()


def parse(text: str) -> Any:
    """An expression string → a DEAP ``PrimitiveTree`` (``ExpressionError`` naming the culprit)."""
    return parse_text(text)


def to_text(tree: Any) -> str:
    """The expression string of a tree; ``parse`` reads it back to the same tree."""
    return to_string(tree)


def simplified(tree: Any) -> str:
    """A human-readable simplified formula."""
    return simplified_text(tree)


def complexity(tree: Any) -> int:
    """The primitives' weighted complexity (what a reader pays to understand the formula)."""
    return weighted_complexity(tree)


def ramped_half_and_half(pset: Any, min_depth: int, max_depth: int) -> list:
    """A random root-typed tree (Koza's ramped half-and-half, aware of types without terminals)."""
    return gen_half_and_half(pset, min_depth, max_depth)


def grow_subtree(pset: Any, type_: type, min_depth: int, max_depth: int) -> list:
    """A random subtree of ``type_`` for subtree mutation (DEAP's ``expr`` signature)."""
    return gen_grow(pset, min_depth, max_depth, type_=type_)


def reference_expressions() -> dict[str, str]:
    """Reference proxies (nwot, snip, synflow, ...) written in the expression language, by name."""
    return dict(REFERENCE_EXPRESSIONS)


def pack(statistics: Sequence[Any], *, sketch: bool = False) -> Any:
    """Many archs' ``NetworkStatistics`` → one ``PackedStatistics`` the evaluator scores at once;
    ``sketch`` applies the search-time sketches (train fitness), exact otherwise (validation, test)."""
    return pack_statistics(list(statistics), **(SEARCH_SKETCH if sketch else {}))


def evaluator(packed: Any) -> Any:
    """An evaluator over one pack; it memoises common subtrees across the candidates it scores."""
    return Evaluator(packed)


# A split larger than this is packed and scored in chunks of this many archs (see ``SplitScorer``).
REPORT_CHUNK = 128


class SplitScorer:
    """Exact per-arch values over a whole split, packed in chunks of at most ``REPORT_CHUNK`` archs:
    loading never holds the unpacked float32 statistics of more than one chunk beside the packs (the
    train split of the 507-arch NB301 cache is 12 GB of them; packed whole it needed twice that).
    A formula's value of an arch reads that arch only, so chunks change no value; a split of at most
    ``REPORT_CHUNK`` archs is one pack, as before."""

    def __init__(self, load: Callable[[list[str]], Sequence[Any]], keys: Sequence[str]) -> None:
        keys = list(keys)
        self.parts = [evaluator(pack(load(keys[start:start + REPORT_CHUNK])))
                      for start in range(0, len(keys), REPORT_CHUNK)]

    def values(self, tree: Any) -> Any:
        """Per-arch values (``Evaluator.values``) over the whole split, in key order."""
        import torch

        return torch.cat([part.values(tree) for part in self.parts])

    def net_scalar(self, name: str) -> np.ndarray:
        """A network-level scalar statistic (``params``, ``flops``) of every arch, in key order."""
        return np.concatenate([part.packed.net_scalars[name].double().cpu().numpy() for part in self.parts])


def score_tree(tree: Any, scorer: Any) -> Outcome:
    """Per-arch scores of ``tree`` from an ``evaluator``, or the evaluator's reason for rejecting it."""
    result = scorer.evaluate(tree)
    if not result.valid:
        return None, str(result.reason)
    return result.scores.detach().cpu().double().numpy(), None


def report_scores(tree: Any, scorer: Any) -> np.ndarray | None:
    """Per-arch scores for validation and the final report: an arch on which the formula is undefined
    (non-finite, e.g. a Jacobian correlation of a disconnected cell) ranks last, as a failed proxy
    does in NAS-Bench-Suite-Zero, instead of voiding the whole split. None if nothing is defined."""
    return counted_report_scores(tree, scorer)[0]


def counted_report_scores(tree: Any, scorer: Any) -> tuple[np.ndarray | None, int | None]:
    """``report_scores`` and how many archs it ranked last for being undefined (every report says);
    (None, None) when linear algebra gave up on the whole split."""
    values = _raw_values(tree, scorer)
    if values is None:
        return None, None
    finite = np.isfinite(values)
    undefined = int((~finite).sum())
    if finite.sum() < 2 or np.ptp(values[finite]) == 0:
        return None, undefined
    return undefined_last(values), undefined


def arch_value(tree: Any, statistics: Any) -> float:
    """The formula's raw value on one arch's statistics (nan where it is undefined; packed without the
    search-time sketch), for scoring freshly built networks as the stability report does."""
    values = _raw_values(tree, evaluator(pack([statistics])))
    return float("nan") if values is None else float(values[0])


def statistics_read(tree: Any) -> frozenset[str]:
    """The statistics keys the formula reads (``compute_statistics(needs=...)`` skips the other passes)."""
    return leaves_read(tree)


def reads_sketched_activations(text: str) -> bool:
    """Whether a formula reads the activations a cache stores sketched, so that its score from a
    sketched cache estimates the unsketched one (fisher is the reference proxy concerned)."""
    return bool(leaves_read(parse(text)) & SKETCHED_KEYS)


def _raw_values(tree: Any, scorer: Any) -> np.ndarray | None:
    """The evaluator's raw per-arch values; None when linear algebra or a domain check gives up."""
    import torch

    try:
        return scorer.values(tree).detach().cpu().double().numpy()
    except (RuntimeError, ValueError, torch.linalg.LinAlgError):
        return None


def score_expression(text: str, scorers: Sequence[Any]) -> list[Outcome]:
    """Parse ``text`` here (candidates travel as strings) and score it on every task."""
    tree = parse(text)
    return [score_tree(tree, scorer) for scorer in scorers]
