"""The hall of fame as PySR keeps it, and the rule that chooses a formula from it.

A run selects among tens of thousands of formulas on a few hundred train labels, so the formula with the
best train fitness is mostly the one that fits those labels' noise best, and it is usually the
largest. The hall of fame therefore keeps the best train fitness *per complexity* and shows the Pareto
front (no simpler formula is at least as good on train); every front member is scored on validation,
and the choice is the *simplest* member whose validation score is below the best member's by less
than one standard error of that difference (Breiman's one-standard-error rule, paired): a more complex
formula must beat a simpler one by more than the validation split's noise to be chosen.

The validation score of the choice is Spearman's ρ by default (``choice_metric``), whatever the train
fitness metric: Kendall's tau-b divides by the untied pairs, which flatters formulas that tie many archs
(on NB201 ``num_nodes`` reaches τ_b 0.68 on validation, against 0.73 for the best formula, but ρ 0.82
against 0.91; on test it ranks at ρ 0.71), and a rule that favours simple formulas must not favour
coarse ones.

The standard error of the difference is the jackknife's over the validation archs (each arch left out
in turn, both formulas rescored: ``autoproxy.rank_metrics.leave_one_out``). Paired, it is small for two
formulas that rank the archs alike and large for two that merely score alike, which the unpaired
standard error of each score (about 0.07 for Kendall τ on 60 archs) cannot tell apart. Over several
tasks the mean's error is √(Σ SE_t²)/T and the worst task's is that task's.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from autoproxy.rank_metrics import leave_one_out
from search.fitness import aggregate, correlation

# Below this many validation archs one paired standard error is ~0.1 ρ: the rule then cannot tell
# formulas apart and falls to the simplest (NB301, 32 validation archs: `num_nodes`, test ρ 0.16).
SMALL_VALIDATION = 50

CHOICE_RULE = ("the simplest Pareto-front member (train fitness against complexity) whose validation score "
               "(choice_metric) is below the best front member's by less than one jackknife standard error "
               "of that difference (paired over the validation archs)")


def pareto_front(entries: Sequence[Any], complexity: Any, fitness: Any, index: Any) -> list[Any]:
    """Entries no simpler (or equally complex, earlier) entry matches on fitness, simplest first.

    ``complexity``, ``fitness`` and ``index`` read an entry's complexity, train fitness and position in
    the journal (ties go to the earlier formula, so the front does not depend on dict order)."""
    front, best = [], -math.inf
    for entry in sorted(entries, key=lambda e: (complexity(e), -fitness(e), index(e))):
        if fitness(entry) > best:
            front.append(entry)
            best = fitness(entry)
    return front


def difference_error(candidate: Sequence[np.ndarray], best: Sequence[np.ndarray], accuracy: Sequence[np.ndarray],
                     metric: str, aggregate: str) -> float:
    """Jackknife standard error of (candidate's − best's) validation score, from per-task per-arch
    scores; nan where a left-out replicate is undefined (the candidate then never counts as close)."""
    errors = []
    for mine, theirs, truth in zip(candidate, best, accuracy):
        n = len(truth)
        difference = leave_one_out(metric, mine, truth) - leave_one_out(metric, theirs, truth)
        errors.append(math.sqrt((n - 1) / n * float(((difference - difference.mean()) ** 2).sum())))
    if aggregate == "min":   # the error of the task the best formula is worst on
        return errors[int(np.argmin([correlation(metric, theirs, truth) for theirs, truth in zip(best, accuracy)]))]
    return math.sqrt(sum(e * e for e in errors)) / len(errors)


def choose(front: Sequence[dict[str, Any]], scores: Callable[[dict[str, Any]], Sequence[np.ndarray] | None],
           accuracy: Sequence[np.ndarray], metric: str, how: str,
           within: float = 1.0) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The chosen front member by ``CHOICE_RULE`` and the figures of the choice (``metric``, the best
    validation score, the chosen member's, the gap and its standard error, the smallest task's
    validation archs); None when no member is valid on validation. ``within`` standard errors instead
    of one prices the rule (0: the best member on validation, no parsimony in the choice).

    Members carry ``complexity`` and ``index``; ``scores(member)`` gives its per-task validation scores
    (undefined archs last), or None where it is undefined or constant on a task. The validation score
    is ``metric`` per task, combined over tasks as ``how`` ("mean" or "min")."""
    values = {}
    for member in front:
        per_task = scores(member)
        if per_task is not None:
            values[id(member)] = aggregate([correlation(metric, s, a) for s, a in zip(per_task, accuracy)], how)
    valid = [member for member in front if id(member) in values]
    if not valid:
        return None
    best = max(valid, key=lambda e: (values[id(e)], -e["complexity"], -e["index"]))
    for member in sorted(valid, key=lambda e: (e["complexity"], e["index"])):
        gap = values[id(best)] - values[id(member)]
        error = 0.0 if member is best else difference_error(scores(member), scores(best), accuracy, metric, how)
        if member is best or gap < within * error:
            return member, {"metric": metric, "best_validation": values[id(best)],
                            "chosen_validation": values[id(member)], "gap": gap, "gap_standard_error": error,
                            "validation_archs": min(len(truth) for truth in accuracy)}
    raise AssertionError("the best member always qualifies")
