"""The generational loop: vary, score only unseen canonical forms, judge, select, record, checkpoint.

Determinism: DEAP draws from Python's ``random``; the engine keeps its own state and swaps it in
around every call into DEAP (so Ray, SymPy or anything else touching ``random`` cannot disturb it),
and subsets and probes are seeded by ``(seed, task, generation)``. Everything the next generation
depends on is in the checkpoint (population trees, RNG state, hall of fame) or the evaluation
journal (the fitness cache), so a resumed run continues exactly as an uninterrupted one.

Fitness cache: a canonical form is scored once per run. With ``subset_schedule = "generation"``
a form keeps the fitness of the subsets of the generation that first scored it. Memory stays flat
over a 24-hour run: the cache holds 16 bytes per form (``search.fitness_cache``), behaviour vectors
are kept (and checkpointed) for the living population only, and a form that comes back after its
behaviour was dropped is re-scored for its behaviour alone (scoring is deterministic, so an
uninterrupted and a resumed run re-score the same forms and agree).
"""
from __future__ import annotations

import random
import time
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from search import expressions
from search.config import SearchConfig
from search.diversity import behaviour, near_duplicates, probe_positions
from search.environment import current_environment
from search.executor import Executor
from search.fitness_cache import FitnessCache
from search.fitness import aggregate, draw_subsets, kendall_tau, spearman_rho, subset_fitness
from search.front import CHOICE_RULE, choose, pareto_front
from search.stability_report import stability_report
from search.store import RunStore, rng_state_from_json, rng_state_to_json
from search.tasks import Task, load_transfer, seen_archs
from search.toolbox import Variation, individual_class, parent_selector, survivors

INVALID_FITNESS = -2.0  # below any correlation; a JSON-safe stand-in for -inf
_PUBLIC_FIELDS = ("key", "expression", "simplified", "complexity", "train_fitness", "validation_fitness",
                  "validation_per_task", "index", "generation")
_KEY_MEMO_LIMIT = 200_000


def choose_formula(front: Sequence[dict[str, Any]], tasks: Sequence[Task], config: SearchConfig,
                   within: float = 1.0) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``search.front.choose`` on the tasks' validation splits with the config's choice metric and task
    aggregate (also used by benchmarks/search_quality.py to re-choose from a saved front, and with
    ``within`` 0 to price the rule against the best member on validation)."""
    memo: dict[str, list[np.ndarray] | None] = {}

    def scores(member: dict[str, Any]) -> list[np.ndarray] | None:
        if member["key"] not in memo:
            tree = expressions.parse(member["expression"])
            per_task = [expressions.report_scores(tree, task.scorer("validation")) for task in tasks]
            memo[member["key"]] = None if any(s is None for s in per_task) else per_task
        return memo[member["key"]]

    return choose(front, scores, [task.accuracy_of("validation") for task in tasks], config.choice_metric,
                  config.task_aggregate, within)


class Engine:
    """One run: ``start()`` or ``resume()``, then ``run()``; ``finish()`` writes result.json."""

    def __init__(self, config: SearchConfig, store: RunStore, tasks: Sequence[Task], executor: Executor,
                 on_generation: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.config = config
        self.store = store
        self.tasks = list(tasks)
        self.executor = executor
        self.on_generation = on_generation
        self.pset = expressions.primitive_set()
        self.individual = individual_class(config)
        self.variation = Variation(self.pset, config)
        self.select_parents = parent_selector(config)
        self.probes = [probe_positions(len(t.splits.train), config.diversity_probe, config.seed) for t in self.tasks]
        self.fitness = FitnessCache()
        self.statuses: Counter[str] = Counter()
        self.behaviour: dict[str, list | None] = {}   # of the living population (and offspring)
        self.rescored = 0
        self.best_by_complexity: dict[int, dict[str, Any]] = {}   # the hall of fame: best train fitness per complexity
        self.population: list[Any] = []
        self.generation = -1
        self.elapsed_before = 0.0
        self._rng_state: Any = None
        self._journal: list[dict[str, Any]] = []
        self._keys: dict[str, str] = {}
        self._clock = time.monotonic()

    # ---------------------------------------------------------------- randomness and keys
    @contextmanager
    def _random(self) -> Iterator[None]:
        random.setstate(self._rng_state)
        try:
            yield
        finally:
            self._rng_state = random.getstate()

    def _key(self, individual: Any) -> str:
        text = str(individual)
        if text not in self._keys:
            if len(self._keys) >= _KEY_MEMO_LIMIT:
                self._keys.clear()
            self._keys[text] = expressions.algebraic_key(individual)
        return self._keys[text]

    def _identify(self, individual: Any) -> Any:
        """Attach the canonical key and the complexity (selection's parsimony pressure reads it)."""
        individual.key = self._key(individual)
        individual.complexity = expressions.complexity(individual)
        return individual

    def _make(self, text: str) -> Any:
        return self.individual(expressions.parse(text))

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self._clock

    # ---------------------------------------------------------------- start / resume
    def start(self) -> None:
        """Build and score the initial population (generation 0) and checkpoint it."""
        random.seed(self.config.seed)
        self._rng_state = random.getstate()
        with self._random():
            self.population = self._initial_population()
        began, before = time.monotonic(), len(self.fitness)
        self._assess(self.population, 0)
        self._apply_fitness(self.population)
        self._close_generation(0, time.monotonic() - began, len(self.fitness) - before)

    def _initial_population(self) -> list[Any]:
        size, seen, population = self.config.population, set(), []
        if self.config.seed_reference:
            for _, text in sorted(expressions.reference_expressions().items()):
                individual = self._make(text)
                key = self._key(individual)
                if key not in seen and individual.height <= self.config.max_height \
                        and len(individual) <= self.config.max_size and len(population) < size:
                    seen.add(key)
                    population.append(individual)
        for _ in range(20 * size):
            if len(population) >= size:
                break
            individual = self.individual(expressions.ramped_half_and_half(
                self.pset, self.config.init_min_depth, self.config.init_max_depth))
            key = self._key(individual)
            if key not in seen:
                seen.add(key)
                population.append(individual)
        while len(population) < size:  # a tiny language may have fewer distinct forms than the population
            population.append(self.variation.toolbox.clone(random.choice(population)))
        return population

    def resume(self) -> None:
        """Reload the last complete generation from the run directory."""
        state = self.store.load_checkpoint()
        for record in self.store.replay_evaluations(state["evaluations"]):
            self.fitness.add(record["key"], record["fitness"])
            self.statuses[record["status"]] += 1
        self.behaviour = {member["key"]: member["behaviour"] for member in state["population"]}
        self.generation = state["generation"]
        self.rescored = state["rescored"]
        self.elapsed_before = state["elapsed_s"]
        self._clock = time.monotonic()
        self.best_by_complexity = {entry["complexity"]: entry for entry in state["hall_of_fame"]}
        self._rng_state = rng_state_from_json(state["python_random"])
        self.population = [self._identify(self._make(member["expression"])) for member in state["population"]]
        self._apply_fitness(self.population)
        self.store.truncate_log(self.generation)

    # ---------------------------------------------------------------- the loop
    def stop_reason(self) -> str | None:
        if self.config.generations is not None and self.generation >= self.config.generations:
            return "generations"
        if self.config.time_budget_s is not None and self.elapsed() >= self.config.time_budget_s:
            return "time budget"
        return None

    def run(self) -> str:
        """Run generations until a stop criterion; returns why it stopped ("interrupted" on Ctrl-C /
        SIGTERM, with the last complete generation checkpointed)."""
        try:
            while (reason := self.stop_reason()) is None:
                self.step()
            return reason
        except KeyboardInterrupt:
            return "interrupted"

    def step(self) -> None:
        """One generation: select parents, vary, score the unseen, survive, record."""
        generation = self.generation + 1
        began, before = time.monotonic(), len(self.fitness)
        offspring_count = self.config.population - (0 if self.config.selection == "nsga2" else self.config.elites)
        with self._random():
            parents = self.select_parents(self.population, offspring_count)
            offspring = self.variation.offspring(parents)
        self._assess(offspring, generation)
        self._apply_fitness(self.population + offspring)
        self.population = survivors(self.config, self.population, offspring)
        self._apply_fitness(self.population)
        living = {individual.key for individual in self.population}
        self.behaviour = {key: shape for key, shape in self.behaviour.items() if key in living}
        self._close_generation(generation, time.monotonic() - began, len(self.fitness) - before)

    # ---------------------------------------------------------------- judging
    def _subsets(self, task: int, generation: int) -> np.ndarray:
        if self.config.subsets == 0:   # the whole train split, one "subset"
            return np.arange(len(self.tasks[task].splits.train))[None, :]
        draw = generation if self.config.subset_schedule == "generation" else 0
        return draw_subsets(len(self.tasks[task].splits.train), self.config.subsets, self.config.subset_size,
                            self.config.seed, task, draw)

    def _judge(self, outcomes: Sequence[expressions.Outcome], generation: int) -> tuple[float, str, list | None]:
        """Train fitness, status and behaviour of one candidate from its per-task scores."""
        per_task = []
        for index, (task, (scores, reason)) in enumerate(zip(self.tasks, outcomes)):
            if reason is not None:  # "constant", "non-finite", "linalg: ...", "shape error: ..."
                return INVALID_FITNESS, reason.split(":")[0], None
            if self.config.prune_params_equivalent and \
                    abs(spearman_rho(scores, task.train_params)) > self.config.params_threshold:
                return INVALID_FITNESS, "params", None
            per_task.append(subset_fitness(scores, task.accuracy_of("train"), self._subsets(index, generation),
                                           self.config.metric))
        return aggregate(per_task, self.config.task_aggregate), "ok", self._behaviour(outcomes)

    def _behaviour(self, outcomes: Sequence[expressions.Outcome]) -> list | None:
        """Rank vector on the probes; None where this text is undefined (an algebraically equal text
        with the same canonical key may be defined where this one overflows)."""
        if any(reason is not None for _, reason in outcomes):
            return None
        return behaviour([scores for scores, _ in outcomes], self.probes)

    def _assess(self, individuals: Sequence[Any], generation: int) -> None:
        """Score the canonical forms never seen before (in order of first appearance), and re-score
        valid known forms whose behaviour was dropped with the population that held them."""
        fresh: dict[str, Any] = {}
        lost: dict[str, Any] = {}
        for individual in individuals:
            key = self._identify(individual).key
            known = self.fitness.get(key)
            if known is None:
                fresh.setdefault(key, individual)
            elif key not in self.behaviour:
                if known > INVALID_FITNESS:
                    lost.setdefault(key, individual)
                else:
                    self.behaviour[key] = None
        texts = [expressions.to_text(individual) for individual in [*fresh.values(), *lost.values()]]
        outcomes = self.executor.score(texts)
        for (key, individual), outcome in zip(fresh.items(), outcomes):
            fitness, status, shape = self._judge(outcome, generation)
            record = {"index": len(self.fitness), "key": key, "expression": expressions.to_text(individual),
                      "fitness": fitness, "status": status, "size": len(individual),
                      "complexity": individual.complexity, "generation": generation}
            self.fitness.add(key, fitness)
            self.statuses[status] += 1
            self.behaviour[key] = shape
            self._journal.append(record)
        for key, outcome in zip(lost, outcomes[len(fresh):]):
            self.behaviour[key] = self._behaviour(outcome)
        self.rescored += len(lost)

    def _apply_fitness(self, individuals: Sequence[Any]) -> None:
        """Selection fitness = train fitness, minus the diversity penalty for near-duplicate behaviour,
        minus ``parsimony_coefficient`` per unit of complexity (PySR's and gplearn's bloat control)."""
        raw = [self.fitness.get(individual.key) for individual in individuals]
        shapes = [self.behaviour[individual.key] for individual in individuals]
        duplicate = near_duplicates(raw, shapes, self.config.diversity_threshold)
        for individual, value, penalised in zip(individuals, raw, duplicate):
            value -= self.config.diversity_penalty * penalised + self.config.parsimony_coefficient * individual.complexity
            individual.fitness.values = (value, len(individual)) if self.config.selection == "nsga2" else (value,)

    # ---------------------------------------------------------------- hall of fame and reports
    def _split_correlations(self, expression: str, split: str,
                            tasks: Sequence[Task] | None = None) -> list[tuple[float, float]] | None:
        """(Kendall, Spearman) per task (the run's by default) on a whole split (archs where the formula
        is undefined rank last); None if it is undefined or constant on a whole task."""
        tree = expressions.parse(expression)
        values = []
        for task in self.tasks if tasks is None else tasks:
            scores = expressions.report_scores(tree, task.scorer(split))
            if scores is None:
                return None
            accuracy = task.accuracy_of(split)
            values.append((float(kendall_tau(scores, accuracy)), float(spearman_rho(scores, accuracy))))
        return values

    def _validation(self, entry: dict[str, Any]) -> None:
        """Score a hall-of-fame entry on validation (once): per task and aggregated, None if invalid."""
        if "validation_fitness" in entry:
            return
        values = self._split_correlations(entry["expression"], "validation")
        column = 0 if self.config.metric == "kendall" else 1
        entry["simplified"] = expressions.simplified(expressions.parse(entry["expression"]))
        entry["validation_per_task"] = None if values is None else [v[column] for v in values]
        entry["validation_fitness"] = (None if values is None else
                                       aggregate(entry["validation_per_task"], self.config.task_aggregate))

    def _front(self) -> list[dict[str, Any]]:
        """The Pareto front of the hall of fame (train fitness against complexity), simplest first."""
        return pareto_front(list(self.best_by_complexity.values()), lambda e: e["complexity"],
                            lambda e: e["train_fitness"], lambda e: e["index"])

    def _update_hall(self, fresh: Sequence[dict[str, Any]]) -> None:
        """Keep the best train fitness per complexity (the earliest formula on ties) and score the
        Pareto front's newcomers on validation."""
        for record in fresh:
            if record["status"] != "ok":
                continue
            held = self.best_by_complexity.get(record["complexity"])
            if held is None or record["fitness"] > held["train_fitness"]:
                self.best_by_complexity[record["complexity"]] = {
                    "key": record["key"], "expression": record["expression"], "complexity": record["complexity"],
                    "train_fitness": record["fitness"], "index": record["index"], "generation": record["generation"]}
        for entry in self._front():
            self._validation(entry)

    def _close_generation(self, generation: int, seconds: float, evaluations: int) -> None:
        """Journal, hall of fame, log line and checkpoint of a complete generation."""
        fresh, self._journal = self._journal, []
        self._update_hall(fresh)
        self.generation = generation
        raw = np.array([self.fitness.get(i.key) for i in self.population])
        valid = raw > INVALID_FITNESS
        front = self._front()
        best = front[-1] if front else None
        line = {
            "generation": generation,
            "best_fitness": float(raw.max()),
            "median_fitness": float(np.median(raw[valid])) if valid.any() else INVALID_FITNESS,
            "valid_pct": 100.0 * float(valid.mean()),
            "unique_pct": 100.0 * len({i.key for i in self.population}) / len(self.population),
            "evaluations": evaluations,
            "evaluations_per_s": evaluations / seconds if seconds > 0 else 0.0,
            "elapsed_s": self.elapsed(),
            "evaluated_total": len(self.fitness),
            "rescored_total": self.rescored,
            "statuses": dict(sorted(self.statuses.items())),
            "best": best["simplified"] if best else None,
        }
        self.store.append_evaluations(fresh)
        self.store.write_hall_of_fame(self._public_hall())
        self.store.append_log(line)
        self.store.save_checkpoint({
            "generation": generation,
            "population": [{"expression": expressions.to_text(i), "key": i.key, "behaviour": self.behaviour[i.key]}
                           for i in self.population],
            "python_random": rng_state_to_json(self._rng_state),
            "evaluations": len(self.fitness),
            "rescored": self.rescored,
            "elapsed_s": line["elapsed_s"],
            "hall_of_fame": sorted(self.best_by_complexity.values(), key=lambda e: e["complexity"]),
        })
        if self.on_generation is not None:
            self.on_generation(line)

    def _transfer(self, expression: str) -> dict[str, Any]:
        """The formula on each transfer cache's archs that no searched task trained or validated on."""
        seen = seen_archs(self.tasks)
        report = {}
        for directory in self.config.transfer_caches:
            task = load_transfer(directory, seen)
            values = self._split_correlations(expression, "test", [task])
            report[task.name] = {"archs": len(task.splits.test), **({"kendall": None, "spearman": None}
                                 if values is None else {"kendall": values[0][0], "spearman": values[0][1]})}
        return report

    def _public_hall(self) -> list[dict[str, Any]]:
        """The Pareto front, simplest first, as hall_of_fame.json shows it."""
        return [{k: entry[k] for k in _PUBLIC_FIELDS} for entry in self._front()]

    def finish(self, stop_reason: str) -> dict[str, Any]:
        """Choose a Pareto-front member by ``search.front.CHOICE_RULE``; report it on the test split."""
        front = self._front()
        result: dict[str, Any] = {"stop_reason": stop_reason, "generations": self.generation,
                                  "evaluated": len(self.fitness), "elapsed_s": self.elapsed(), "chosen": None,
                                  "front": [{k: entry[k] for k in _PUBLIC_FIELDS} for entry in front]}
        choice = choose_formula(front, self.tasks, self.config)
        if choice is not None:
            chosen, figures = choice
            test = self._split_correlations(chosen["expression"], "test")
            result["chosen"] = {k: chosen[k] for k in _PUBLIC_FIELDS if k not in ("index", "generation")}
            result["choice"] = {"rule": CHOICE_RULE, **figures}
            result["test"] = None if test is None else {
                task.name: {"kendall": k, "spearman": s} for task, (k, s) in zip(self.tasks, test)}
            result["transfer"] = self._transfer(chosen["expression"])
            result["stability"] = stability_report(chosen["expression"], self.tasks, self.config, self.executor)
        result["environment"] = current_environment()
        self.store.write_result(result)
        return result
