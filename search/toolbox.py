"""The DEAP toolbox over the typed primitive set: initialisation, variation, bloat control, selection.

All randomness goes through Python's ``random`` module (as DEAP's operators do); the engine swaps
its own saved state in around every call, so the run is reproducible and resumable.
"""
from __future__ import annotations

import operator
import random
from typing import Any, Callable, Sequence

from deap import base, creator, gp, tools

from search import expressions
from search.config import SearchConfig

if not hasattr(creator, "AutoproxyFitness"):
    creator.create("AutoproxyFitness", base.Fitness, weights=(1.0,))
    creator.create("AutoproxyIndividual", gp.PrimitiveTree, fitness=creator.AutoproxyFitness)
    creator.create("AutoproxyFitnessNSGA", base.Fitness, weights=(1.0, -1.0))
    creator.create("AutoproxyIndividualNSGA", gp.PrimitiveTree, fitness=creator.AutoproxyFitnessNSGA)


def individual_class(config: SearchConfig) -> type:
    """Single-objective individuals for double tournament, (fitness, size) ones for NSGA-II."""
    return creator.AutoproxyIndividualNSGA if config.selection == "nsga2" else creator.AutoproxyIndividual


class Variation:
    """Crossover and the four mutations, each bounded by ``gp.staticLimit`` on height and size."""

    def __init__(self, pset: Any, config: SearchConfig) -> None:
        self.pset = pset
        self.config = config
        self.toolbox = base.Toolbox()
        self.toolbox.register("expr_mut", expressions.grow_subtree, min_depth=0, max_depth=2)
        self.toolbox.register("mate", gp.cxOnePoint)
        self.toolbox.register("subtree", gp.mutUniform, expr=self.toolbox.expr_mut, pset=pset)
        self.toolbox.register("point", gp.mutNodeReplacement, pset=pset)
        self.toolbox.register("shrink", gp.mutShrink)
        self.toolbox.register("ephemeral", gp.mutEphemeral, mode="one")
        for name in ("mate", "subtree", "point", "shrink", "ephemeral"):
            self.toolbox.decorate(name, gp.staticLimit(operator.attrgetter("height"), config.max_height))
            self.toolbox.decorate(name, gp.staticLimit(len, config.max_size))
        self.mutations = [name for name, weight in config.mutation_weights.items() if weight > 0]
        self.weights = [config.mutation_weights[name] for name in self.mutations]

    def mutate(self, individual: Any) -> Any:
        name = random.choices(self.mutations, weights=self.weights)[0]
        (mutant,) = getattr(self.toolbox, name)(individual)
        return mutant

    def offspring(self, parents: Sequence[Any]) -> list[Any]:
        """DEAP's varAnd: pairwise crossover, then mutation, on clones of the parents."""
        children = [self.toolbox.clone(parent) for parent in parents]
        for i in range(1, len(children), 2):
            if random.random() < self.config.crossover_prob:
                children[i - 1], children[i] = self.toolbox.mate(children[i - 1], children[i])
        for i, child in enumerate(children):
            if random.random() < self.config.mutation_prob:
                children[i] = self.mutate(child)
        return children


def parent_selector(config: SearchConfig) -> Callable[[Sequence[Any], int], list[Any]]:
    """Double tournament (fitness first, then the smaller of two in ``parsimony_size``), or NSGA-II's
    crowded tournament on (fitness, size)."""
    if config.selection == "nsga2":
        def crowded(population: Sequence[Any], k: int) -> list[Any]:
            ranked = tools.selNSGA2(list(population), len(population))  # assigns crowding distances
            padded = -(-k // 4) * 4
            pool = ranked + ranked[: padded - len(ranked)] if padded > len(ranked) else ranked
            return tools.selTournamentDCD(pool, padded)[:k]
        return crowded

    def double(population: Sequence[Any], k: int) -> list[Any]:
        return tools.selDoubleTournament(population, k, fitness_size=config.tournament_size,
                                         parsimony_size=config.parsimony_size, fitness_first=True)
    return double


def survivors(config: SearchConfig, population: Sequence[Any], offspring: Sequence[Any]) -> list[Any]:
    """Elitist replacement: the best ``elites`` parents plus the offspring (double tournament), or
    NSGA-II's non-dominated survival over parents and offspring together."""
    if config.selection == "nsga2":
        return tools.selNSGA2(list(population) + list(offspring), config.population)
    return tools.selBest(list(population), config.elites) + list(offspring)
