"""How good, how readable and how steady is what the search chooses? Per seed: a search, then the chosen
formula's complexity, test Spearman and Kendall, Spearman on transfer caches (archs no search saw),
Spearman on the same test archs of a cache built with another weight/batch seed, beside the best
reference proxy on the same test split. Then mean ± std over seeds.

Two rules are compared. "pareto" is the current one (the config as shipped: hall of fame per
complexity, the simplest front member within one standard error of the best validation score); its
runs also report the front member with the best validation score ("best on validation"), which
prices the parsimony of the choice.
"previous" (``--previous``) re-runs each seed as the engine did before: train fitness on 4 subsets of
20 train archs, no parsimony pressure, and the formula with the best validation score among the 20
best train-fitness formulas of the run's journal. Each run also reports what the previous choice rule
would have picked from that same run ("previous pick"), which separates the choice from the fitness.

    python benchmarks/search_quality.py --config nb201-cifar10 --cache caches/nb201-cifar10 --minutes 10 \\
        --seeds 0 1 2 3 4 --transfer-cache caches/nb201-cifar100 --seed-cache caches/nb201-cifar10-seed1 --previous
    python benchmarks/search_quality.py --config nb201-digits --seeds 0 1 2 3 4 --previous   # the main job
    python benchmarks/search_quality.py --smoke     # a 2-generation search on a tiny cache built on the fly
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _smoke import SMOKE_HELP, SMOKE_SEARCH, tiny_cache
from search import expressions
from search.config import SearchConfig, load_config
from search.fitness import draw_subsets, kendall_tau, spearman_rho, subset_fitness
from search.engine import choose_formula
from search.runner import run_search
from search.store import RunStore
from search.tasks import Task, load_tasks, load_transfer, seen_archs

PREVIOUS_RULE = {"subsets": 4, "subset_size": 20, "parsimony_coefficient": 0.0}
PREVIOUS_HALL = 20   # the previous hall of fame: the 20 best train-fitness formulas


def correlations(text: str, scorer, accuracy: np.ndarray) -> tuple[float, float]:
    """(Spearman, Kendall) of a formula, archs where it is undefined ranked last; nan if undefined everywhere."""
    scores = expressions.report_scores(expressions.parse(text), scorer)
    if scores is None:
        return float("nan"), float("nan")
    return float(spearman_rho(scores, accuracy)), float(kendall_tau(scores, accuracy))


@dataclass
class Pick:
    """One chosen formula and its figures."""

    expression: str
    complexity: int
    test_rho: float
    test_tau: float
    transfer: dict[str, float]
    other_seed: float | None

    def line(self, label: str) -> str:
        transfer = "  ".join(f"{name} ρ {rho:.4f}" for name, rho in self.transfer.items())
        other = "" if self.other_seed is None else f"  other-seed cache ρ {self.other_seed:.4f}"
        simplified = expressions.simplified(expressions.parse(self.expression))
        return (f"  {label}: complexity {self.complexity}  test ρ {self.test_rho:.4f} τ {self.test_tau:.4f}"
                f"  {transfer}{other}\n      {simplified}")


def previous_pick(run: Path, task: Task, metric: str) -> str:
    """The previous rule on a run's journal: the best validation score among the best train formulas."""
    records = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]
    best = sorted((r for r in records if r["status"] == "ok"), key=lambda r: (-r["fitness"], r["index"]))
    hall = best[:PREVIOUS_HALL]
    column = 0 if metric == "spearman" else 1
    validation = [correlations(r["expression"], task.scorer("validation"), task.accuracy_of("validation"))[column]
                  for r in hall]
    order = sorted(range(len(hall)), key=lambda i: (-np.nan_to_num(validation[i], nan=-2.0), -hall[i]["fitness"],
                                                    hall[i]["index"]))
    return hall[order[0]]["expression"]


def sizes(run: Path) -> str:
    """Bloat: mean complexity of the final population and of the formulas scored in the run's last quarter."""
    population = json.loads((run / "checkpoint.json").read_text())["population"]
    records = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]
    late = [r["complexity"] for r in records if r["generation"] >= 0.75 * records[-1]["generation"]]
    final = np.mean([expressions.complexity(expressions.parse(m["expression"])) for m in population])
    return f"complexity of the final population {final:.1f}, of the last quarter's new formulas {np.mean(late):.1f}"


def figures(expression: str, task: Task, transfers: list[Task], other_seed: Task | None) -> Pick:
    rho, tau = correlations(expression, task.scorer("test"), task.accuracy_of("test"))
    transfer = {t.name: correlations(expression, t.scorer("test"), t.accuracy_of("test"))[0] for t in transfers}
    other = (None if other_seed is None else
             correlations(expression, other_seed.scorer("test"), other_seed.accuracy_of("test"))[0])
    return Pick(expression, expressions.complexity(expressions.parse(expression)), rho, tau, transfer, other)


def best_reference(task: Task) -> tuple[str, float]:
    """The reference proxy with the best Spearman on the task's test split."""
    values = {name: correlations(text, task.scorer("test"), task.accuracy_of("test"))[0]
              for name, text in sorted(expressions.reference_expressions().items())}
    name = max(values, key=lambda n: np.nan_to_num(values[n], nan=-2.0))
    return name, values[name]


def summary(label: str, picks: list[Pick], reference: list[float]) -> None:
    rho = np.array([p.test_rho for p in picks])
    size = np.array([p.complexity for p in picks])
    above = sum(p.test_rho > r for p, r in zip(picks, reference))
    line = (f"{label}: test ρ {rho.mean():.4f} ± {rho.std(ddof=1) if len(rho) > 1 else 0.0:.4f}  complexity "
            f"{size.mean():.1f} (max {size.max()})  above the best reference proxy on {above}/{len(picks)} seeds")
    for name in picks[0].transfer:
        values = np.array([p.transfer[name] for p in picks])
        line += f"  {name} ρ {values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.4f}"
    if picks[0].other_seed is not None:
        gap = np.array([abs(p.other_seed - p.test_rho) for p in picks])
        line += f"  |Δρ| other seed mean {gap.mean():.4f} max {gap.max():.4f}"
    print(line)


def fitness_cost(train_archs: int, metric: str) -> None:
    """Driver time per candidate of the train fitness: whole train split vs the previous 4 × 20 subsets."""
    rng = np.random.default_rng(0)
    accuracy, scores = rng.normal(size=train_archs), rng.normal(size=(50, train_archs))
    whole = np.arange(train_archs)[None, :]
    subsets = draw_subsets(train_archs, PREVIOUS_RULE["subsets"], PREVIOUS_RULE["subset_size"], 0, 0, 0)
    for label, chosen in (("whole train split", whole), ("4 x 20 subsets", subsets)):
        began = time.perf_counter()
        for row in scores:
            subset_fitness(row, accuracy, chosen, metric)
        print(f"train fitness on the {label} ({train_archs} train archs): "
              f"{(time.perf_counter() - began) / len(scores) * 1e3:.2f} ms per candidate")


def report(args: argparse.Namespace, base: SearchConfig) -> None:
    out = Path(args.out or tempfile.mkdtemp(prefix="search-quality-"))
    caches = [args.cache] if args.cache else list(base.caches)
    rules = {"pareto": base, **({"previous": base.replace(**PREVIOUS_RULE)} if args.previous else {})}
    picks: dict[str, list[Pick]] = {label: [] for label in [*rules, "previous pick", "best on validation"]}
    references = []
    for seed in args.seeds:
        (task,) = load_tasks(caches[:1], base.split_fractions, base.replace(seed=seed).splits_seed, pack_train=False)
        if seed == args.seeds[0]:
            fitness_cost(len(task.splits.train), base.metric)
        seen = seen_archs([task])
        transfers = [load_transfer(directory, seen) for directory in args.transfer_cache]
        other_seed = load_transfer(args.seed_cache, seen) if args.seed_cache else None
        name, value = best_reference(task)
        references.append(value)
        print(f"seed {seed}: best reference proxy on the test split ({len(task.splits.test)} archs): "
              f"{name} ρ {value:.4f}")
        for label, rule in rules.items():
            budget = ({"generations": None, "time_budget_s": args.minutes * 60} if args.minutes else
                      {"generations": args.generations or rule.generations, "time_budget_s": None})
            config = rule.replace(caches=caches[:1], seed=seed, executor=args.executor, stability_inits=0, **budget)
            run = out / f"{label}-seed{seed}"
            finished = RunStore(run).read_result() if args.reuse and RunStore(run).config_path.is_file() else None
            result = finished or run_search(config, run, progress=False).result
            if result is None or result["chosen"] is None:
                print(f"  {label}: no valid formula")
                continue
            print(f"  {label} run{' (reused)' if finished else ''}: {result['generations']} generations, "
                  f"{result['evaluated']} formulas, {result['evaluated'] / result['elapsed_s']:.1f} formulas/s; "
                  f"{sizes(run)}")
            front = [{"index": position, **member} for position, member in enumerate(result["front"])]  # runs before 'index'
            chosen = (choose_formula(front, [task], config)[0]["expression"] if label == "pareto" else
                      previous_pick(run, task, config.metric))   # re-chosen: a reused run gets today's rule
            picks[label].append(figures(chosen, task, transfers, other_seed))
            print(picks[label][-1].line(label))
            if label == "pareto":
                picks["previous pick"].append(figures(previous_pick(run, task, config.metric), task, transfers,
                                                      other_seed))
                print(picks["previous pick"][-1].line("previous pick (same run)"))
                best = choose_formula(front, [task], config, within=0)[0]["expression"]
                picks["best on validation"].append(figures(best, task, transfers, other_seed))
                print(picks["best on validation"][-1].line("best front member on validation (same run)"))
    for label, chosen in picks.items():
        if chosen:
            summary(label, chosen, references)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="nb201-cifar10")
    parser.add_argument("--cache", help="the cache to search (default: the config's first)")
    parser.add_argument("--minutes", type=float, help="time budget per search (default: the config's generations)")
    parser.add_argument("--generations", type=int, help="generations per search (default: the config's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--transfer-cache", action="append", default=[])
    parser.add_argument("--seed-cache", help="a cache of the same archs built with another --seed")
    parser.add_argument("--previous", action="store_true", help="also run the previous rule per seed")
    parser.add_argument("--executor", choices=["ray", "serial"], default="ray")
    parser.add_argument("--out", default=None, help="Run folder (default: a temporary one).")
    parser.add_argument("--reuse", action="store_true",
                        help="report finished runs found in --out instead of running them again")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="search-quality-smoke-") as folder:
            args.cache = args.cache or str(tiny_cache(Path(folder)))
            args.transfer_cache = args.transfer_cache or [args.cache]
            args.seed_cache = args.seed_cache or args.cache
            args.seeds, args.executor, args.out, args.previous = args.seeds[:1], "serial", folder, True
            report(args, load_config(args.config).replace(**SMOKE_SEARCH))
    else:
        report(args, load_config(args.config))


if __name__ == "__main__":
    main()
