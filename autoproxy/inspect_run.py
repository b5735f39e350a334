"""Read a search run back: the Pareto front of correlation against complexity, each front member's
rank correlations on every split and task, its size bias and top-K quality, and plots.

Reads the run directory only (never writes to it) and re-scores the front on the run's caches with
the run's own splits, so the numbers are those the search would report.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autoproxy.errors import AutoproxyError
from autoproxy.rank_metrics import applicable_k, best_ranking_at_k, precision_at_k

SPLITS = ("train", "validation", "test")


class RunError(AutoproxyError):
    """A run directory that cannot be inspected (the message names it)."""


@dataclass
class Candidate:
    """One evaluated formula: its expression and the train fitness the search gave it."""

    index: int
    expression: str
    train_fitness: float
    complexity: int = 0


@dataclass
class TaskScores:
    """One formula on one task: (Kendall, Spearman) per split, and test-split diagnostics."""

    correlations: dict[str, tuple[float, float]]
    params_rho: float
    flops_rho: float
    precision: dict[int, float]
    best_ranking: dict[int, int]
    test_scores: np.ndarray
    test_accuracy: np.ndarray


@dataclass
class Row:
    number: int
    candidate: Candidate
    simplified: str
    latex: str
    tasks: dict[str, TaskScores | None] = field(default_factory=dict)   # None: invalid on that task


@dataclass
class RunReport:
    directory: Path
    config: dict[str, Any]
    log: list[dict[str, Any]]
    candidates: list[Candidate]
    rows: list[Row]
    chosen: str | None          # expression of result.json's chosen formula, if the run finished


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RunError(f"cannot read {path}: {err}") from None


def read_candidates(directory: Path) -> list[Candidate]:
    """Valid formulas of the run's evaluation journal (only the checkpointed lines; read-only)."""
    count = _read_json(directory / "checkpoint.json")["evaluations"]
    candidates = []
    with open(directory / "evaluations.jsonl") as handle:
        for number, line in enumerate(handle):
            if number == count:
                break
            record = json.loads(line)
            if record["status"] == "ok":
                candidates.append(Candidate(record["index"], record["expression"], float(record["fitness"])))
    return candidates


def pareto_front(candidates: list[Candidate]) -> list[Candidate]:
    """Formulas that no simpler (or equally complex) formula beats on train fitness, simplest first."""
    from search.expressions import complexity, parse

    for candidate in candidates:
        candidate.complexity = complexity(parse(candidate.expression))
    front, best = [], -np.inf
    for candidate in sorted(candidates, key=lambda c: (c.complexity, -c.train_fitness, c.index)):
        if candidate.train_fitness > best:
            front.append(candidate)
            best = candidate.train_fitness
    return front


def _task_scores(tree, task) -> TaskScores | None:
    from search.expressions import score_tree
    from search.fitness import kendall_tau, spearman_rho

    correlations = {}
    for split in SPLITS:
        scores, reason = score_tree(tree, task.scorer(split))
        if reason is not None:
            return None
        accuracy = task.accuracy_of(split)
        correlations[split] = (float(kendall_tau(scores, accuracy)), float(spearman_rho(scores, accuracy)))
    # scores and accuracy are now the test split's (the last of SPLITS)
    packed = task.scorer("test").packed
    size = {name: packed.net_scalars[name].double().cpu().numpy() for name in ("params", "flops")}
    ks = applicable_k(len(scores))
    return TaskScores(
        correlations=correlations,
        params_rho=float(spearman_rho(scores, size["params"])),
        flops_rho=float(spearman_rho(scores, size["flops"])),
        precision={k: precision_at_k(scores, accuracy, k) for k in ks},
        best_ranking={k: best_ranking_at_k(scores, accuracy, k) for k in ks},
        test_scores=scores, test_accuracy=accuracy)


def inspect_run(directory: str | Path) -> RunReport:
    """The Pareto front of a run, each member scored on every split of every task."""
    from primitives.symbolic import simplified_latex, simplified_text
    from search.expressions import parse
    from search.tasks import load_task

    directory = Path(directory)
    if not (directory / "config.json").is_file() or not (directory / "checkpoint.json").is_file():
        raise RunError(f"{directory} is not a search run directory (no config.json / checkpoint.json)")
    config = _read_json(directory / "config.json")
    log = [json.loads(line) for line in (directory / "log.jsonl").read_text().splitlines() if line.strip()]
    result_path = directory / "result.json"
    result = _read_json(result_path) if result_path.is_file() else {}
    candidates = read_candidates(directory)
    tasks = [load_task(path, index, tuple(config["split_fractions"]), config["seed"])
             for index, path in enumerate(config["caches"])]
    rows = []
    for number, candidate in enumerate(pareto_front(candidates), start=1):
        tree = parse(candidate.expression)
        rows.append(Row(number, candidate, simplified_text(tree), simplified_latex(tree),
                        {task.name: _task_scores(tree, task) for task in tasks}))
    chosen = (result.get("chosen") or {}).get("expression")
    return RunReport(directory, config, log, candidates, rows, chosen)


# ---------------------------------------------------------------- text
def _number(value: float | None) -> str:
    return "   -  " if value is None or not np.isfinite(value) else f"{value:+.3f}"


def format_table(report: RunReport) -> str:
    """A PySR-style equations table: one block per Pareto-optimal formula."""
    lines = [f"run {report.directory}: {len(report.candidates)} valid formulas, "
             f"{len(report.rows)} on the Pareto front (train fitness against complexity)"]
    for row in report.rows:
        marker = "  <- chosen" if row.candidate.expression == report.chosen else ""
        lines.append(f"\n[{row.number}] complexity {row.candidate.complexity}  train fitness "
                     f"{row.candidate.train_fitness:+.4f}{marker}")
        lines.append(f"    {row.simplified}")
        for task, scores in row.tasks.items():
            if scores is None:
                lines.append(f"    {task}: invalid on a full split")
                continue
            splits = "  ".join(f"{split} τ {_number(tau)} ρ {_number(rho)}"
                               for split, (tau, rho) in scores.correlations.items())
            top = "  ".join(f"P@{k} {p:.2f} BR@{k} {scores.best_ranking[k]}" for k, p in scores.precision.items())
            lines.append(f"    {task}: {splits}")
            lines.append(f"    {task} test: ρ(params) {_number(scores.params_rho)}  ρ(flops) "
                         f"{_number(scores.flops_rho)}  {top}".rstrip())
    return "\n".join(lines)


def format_latex(report: RunReport) -> str:
    """A LaTeX table: complexity, test τ / ρ per task, the simplified formula."""
    tasks = list(report.rows[0].tasks) if report.rows else []
    header = " & ".join(["complexity", *(f"{t} $\\tau$ & {t} $\\rho$" for t in tasks), "formula"])
    lines = ["\\begin{tabular}{r" + "rr" * len(tasks) + "l}", "\\toprule", header + " \\\\", "\\midrule"]
    for row in report.rows:
        cells = [str(row.candidate.complexity)]
        for task in tasks:
            scores = row.tasks[task]
            tau, rho = scores.correlations["test"] if scores else (None, None)
            cells += [_number(tau), _number(rho)]
        cells.append(f"${row.latex}$")
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines)


# ---------------------------------------------------------------- plots
def write_plots(report: RunReport, out: str | Path) -> list[Path]:
    """fitness.png (best and median fitness per generation), test_scores.png (the chosen formula,
    else the front's best on validation, against test accuracy) and pareto.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    figure, axes = plt.subplots(figsize=(6, 4))
    generations = [line["generation"] for line in report.log]
    for key, label in (("best_fitness", "best"), ("median_fitness", "median (valid)")):
        values = [line[key] if line[key] > -1 else np.nan for line in report.log]
        axes.plot(generations, values, marker="o", label=label)
    axes.set(xlabel="generation", ylabel=f"train fitness ({report.config.get('metric', '')})")
    axes.legend()
    written.append(_save(figure, out / "fitness.png"))

    row = _plotted_row(report)
    if row is not None:
        valid = {task: scores for task, scores in row.tasks.items() if scores is not None}
        figure, all_axes = plt.subplots(1, len(valid), figsize=(5 * len(valid), 4), squeeze=False)
        for axes, (task, scores) in zip(all_axes[0], valid.items()):
            tau, rho = scores.correlations["test"]
            axes.scatter(scores.test_scores, scores.test_accuracy, s=12)
            axes.set(xlabel="proxy score", ylabel="accuracy (%)", title=f"{task} test: τ {tau:.3f}, ρ {rho:.3f}")
        figure.suptitle(row.simplified[:90], fontsize=8)
        written.append(_save(figure, out / "test_scores.png"))

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.scatter([c.complexity for c in report.candidates], [c.train_fitness for c in report.candidates],
                 s=8, alpha=0.4, label="evaluated")
    axes.step([r.candidate.complexity for r in report.rows], [r.candidate.train_fitness for r in report.rows],
              where="post", color="C3", marker="o", label="Pareto front")
    axes.set(xlabel="complexity", ylabel="train fitness")
    axes.legend()
    written.append(_save(figure, out / "pareto.png"))
    return written


def _plotted_row(report: RunReport) -> Row | None:
    for row in report.rows:
        if row.candidate.expression == report.chosen:
            return row

    def validation(row: Row) -> float:
        values = [s.correlations["validation"][0] for s in row.tasks.values() if s is not None]
        return float(np.mean(values)) if values else -np.inf

    return max(report.rows, key=validation, default=None)


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path
