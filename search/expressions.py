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


def pack(statistics: Sequence[Any], *, sketch: bool = False, release: bool = False) -> Any:
    """Many archs' ``NetworkStatistics`` → one ``PackedStatistics`` the evaluator scores at once;
    ``sketch`` applies the search-time sketches (train fitness), exact otherwise (validation, test).
    ``release`` empties the statistics' per-weight tensors as they are packed (a caller that loaded
    them for this pack only never holds both copies: NB301's 304 train archs are 12 GB unpacked)."""
    return pack_statistics(list(statistics), release=release, **(SEARCH_SKETCH if sketch else {}))


def evaluator(packed: Any) -> Any:
    """An evaluator over one pack; it memoises common subtrees across the candidates it scores."""
    return Evaluator(packed)


# A split larger than this is packed and scored in chunks of this many archs (see ``SplitScorer``).
REPORT_CHUNK = 128
# Packs a ``SplitScorer`` keeps between calls; chunks beyond it are loaded again on every call.
RESIDENT_BYTES = 8 << 30


class SplitScorer:
    """Exact per-arch values over a whole split, packed in chunks of at most ``REPORT_CHUNK`` archs.
    Chunks stay loaded while their packs fit in ``resident_bytes`` (the search scores its validation
    split every generation); the rest stream: each call loads such a chunk, scores every formula asked
    of it there and drops it, so a call holds at most one streamed chunk (the train split of the
    507-arch NB301 cache is 12 GB of packs). A formula's value of an arch reads that arch only, so
    chunks change no value. Ask for many formulas in one ``values_of`` call to read a streamed split once."""

    def __init__(self, load: Callable[[list[str]], Sequence[Any]], keys: Sequence[str],
                 resident_bytes: int = RESIDENT_BYTES) -> None:
        keys = list(keys)
        self.load = load
        self.chunks = [keys[start:start + REPORT_CHUNK] for start in range(0, len(keys), REPORT_CHUNK)]
        self.resident_bytes = resident_bytes
        self.resident: dict[int, Any] = {}
        self.scalars: dict[int, dict[str, np.ndarray]] = {}   # network scalars, kept for every chunk seen

    def _part(self, chunk: int) -> Any:
        """The evaluator of one chunk: the resident one, or a fresh pack (kept if it fits the budget)."""
        if chunk in self.resident:
            return self.resident[chunk]
        part = evaluator(pack(self.load(self.chunks[chunk]), release=True))
        self.scalars[chunk] = {name: value.double().cpu().numpy() for name, value in part.packed.net_scalars.items()}
        held = sum(resident.packed.nbytes() for resident in self.resident.values())
        if held + part.packed.nbytes() <= self.resident_bytes:
            self.resident[chunk] = part
        return part

    def values_of(self, trees: Sequence[Any]) -> list[np.ndarray | None]:
        """Each formula's raw per-arch values over the whole split, in key order (None where linear
        algebra or a domain check gives up on some chunk); every chunk is read once for all formulas."""
        pieces: list[list[np.ndarray] | None] = [[] for _ in trees]
        for chunk in range(len(self.chunks)):
            part = self._part(chunk)
            for position, tree in enumerate(trees):
                held = pieces[position]
                if held is not None:
                    values = _evaluator_values(tree, part)
                    if values is None:
                        pieces[position] = None
                    else:
                        held.append(values)
            del part   # a streamed chunk is freed before the next one loads
        return [None if values is None else np.concatenate(values) for values in pieces]

    def net_scalar(self, name: str) -> np.ndarray:
        """A network-level scalar statistic (``params``, ``flops``) of every arch, in key order."""
        for chunk in range(len(self.chunks)):
            if chunk not in self.scalars:
                self._part(chunk)
        return np.concatenate([self.scalars[chunk][name] for chunk in range(len(self.chunks))])


def score_tree(tree: Any, scorer: Any) -> Outcome:
    """Per-arch scores of ``tree`` from an ``evaluator``, or the evaluator's reason for rejecting it."""
    result = scorer.evaluate(tree)
    if not result.valid:
        return None, str(result.reason)
    return result.scores.detach().cpu().double().numpy(), None


def report_scores(tree: Any, scorer: SplitScorer) -> np.ndarray | None:
    """Per-arch scores for validation and the final report: an arch on which the formula is undefined
    (non-finite, e.g. a Jacobian correlation of a disconnected cell) ranks last, as a failed proxy
    does in NAS-Bench-Suite-Zero, instead of voiding the whole split. None if nothing is defined."""
    return report_rule(scorer.values_of([tree])[0])[0]


def report_rule(values: np.ndarray | None) -> tuple[np.ndarray | None, int | None]:
    """``report_scores`` of raw values (``SplitScorer.values_of``) and how many archs it ranked last for
    being undefined (every report says); (None, None) when linear algebra gave up on the whole split."""
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
    values = _evaluator_values(tree, evaluator(pack([statistics])))
    return float("nan") if values is None else float(values[0])


def statistics_read(tree: Any) -> frozenset[str]:
    """The statistics keys the formula reads (``compute_statistics(needs=...)`` skips the other passes)."""
    return leaves_read(tree)


def reads_sketched_activations(text: str) -> bool:
    """Whether a formula reads the activations a cache stores sketched, so that its score from a
    sketched cache estimates the unsketched one (fisher is the reference proxy concerned)."""
    return bool(leaves_read(parse(text)) & SKETCHED_KEYS)


def _evaluator_values(tree: Any, part: Any) -> np.ndarray | None:
    """One evaluator's raw per-arch values; None when linear algebra or a domain check gives up."""
    import torch

    try:
        return part.values(tree).detach().cpu().double().numpy()
    except (RuntimeError, ValueError, torch.linalg.LinAlgError):
        return None


def score_expression(text: str, scorers: Sequence[Any]) -> list[Outcome]:
    """Parse ``text`` here (candidates travel as strings) and score it on every task."""
    tree = parse(text)
    return [score_tree(tree, scorer) for scorer in scorers]
