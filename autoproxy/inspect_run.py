"""Read a search run back: the Pareto front of correlation against complexity, the formula the run
chose on validation (marked, and shown even when it is off the front), each formula's rank
correlations on every split and task, its size bias and top-K quality, and plots.

Reads the run directory only (never writes to it) and re-scores the formulas on the run's caches with
the run's own splits and the search's own rule for archs where a formula is undefined (they rank
last, ``search.expressions.report_scores``), so the numbers are those the search would report.
"""
from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from autoproxy.errors import RunError
from autoproxy.rank_metrics import applicable_k, best_ranking_at_k, precision_at_k
from search.environment import describe_environment

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from search.tasks import Task

SPLITS = ("train", "validation", "test")
CHOSEN_MARK = "*"
NO_RESULT_NOTE = "no result.json yet (run interrupted or still running): no formula is chosen, none is marked"
NOTHING_CHOSEN_NOTE = "result.json chose no formula (none was valid on validation): none is marked"


@dataclass
class Candidate:
    """One evaluated formula: its expression and the train fitness the search gave it."""

    index: int
    expression: str
    train_fitness: float
    complexity: int = 0


@dataclass
class TaskScores:
    """One formula on one task: (Kendall, Spearman) per split, how many archs it is undefined on per
    split (they rank last), and test-split diagnostics."""

    correlations: dict[str, tuple[float, float]]
    undefined: dict[str, int]
    params_rho: float
    flops_rho: float
    precision: dict[int, float]
    best_ranking: dict[int, int]
    test_scores: np.ndarray
    test_accuracy: np.ndarray


@dataclass
class Row:
    """One formula of the table, scored on every task."""

    number: int | None          # its `export --pick` number on the front; None: off the Pareto front
    candidate: Candidate
    simplified: str
    latex: str
    tasks: dict[str, TaskScores | None] = field(default_factory=dict)   # None: the search voids that task


@dataclass
class RunReport:
    """Everything ``inspect`` shows of one run."""

    directory: Path
    config: dict[str, Any]
    log: list[dict[str, Any]]
    candidates: list[Candidate]
    rows: list[Row]             # the Pareto front, simplest first
    chosen: Row | None          # result.json's chosen formula: one of ``rows`` or an extra row off the front
    chosen_note: str            # where ``chosen`` comes from, or why there is none
    environment: dict[str, Any] | None = None   # environment.json: what the run started with

    @property
    def shown_rows(self) -> list[Row]:
        """The front, then the chosen formula where it is off the front (so it is always shown)."""
        off_front = [self.chosen] if self.chosen is not None and self.chosen.number is None else []
        return self.rows + off_front


def _reading(path: Path, read: Callable[[], Any]) -> Any:
    """``read()`` (a ``RunStore`` reader of ``path``), its failures as one ``RunError`` naming the file."""
    try:
        return read()
    except (OSError, json.JSONDecodeError) as err:
        raise RunError(f"cannot read {path}: {err}") from None


def read_candidates(directory: Path) -> list[Candidate]:
    """Valid formulas of the run's evaluation journal (only the checkpointed lines; read-only)."""
    from search.store import RunStore

    store = RunStore(directory)
    count = _reading(store.checkpoint_path, store.read_checkpoint_dict)["evaluations"]
    return [Candidate(record["index"], record["expression"], float(record["fitness"]))
            for record in store.read_evaluations(count) if record["status"] == "ok"]


def pareto_front(candidates: list[Candidate]) -> list[Candidate]:
    """Formulas that no simpler (or equally complex) formula beats on train fitness, simplest first
    (the search's own front, ``search.front.pareto_front``)."""
    from search.expressions import complexity, parse
    from search.front import pareto_front as front_of

    for candidate in candidates:
        candidate.complexity = complexity(parse(candidate.expression))
    return front_of(candidates, lambda c: c.complexity, lambda c: c.train_fitness, lambda c: c.index)


def _scores_on_task(trees: list[Any], task: Task) -> list[TaskScores | None]:
    """Every formula on one task by the search's report rule (undefined archs rank last), split by split:
    each split streams through once for all formulas, one chunk loaded at a time (the three exact
    splits of the 507-arch NB301 cache are 20 GB of packs). None for a formula the search voids on some
    split (undefined or constant there)."""
    from search.expressions import SplitScorer, report_rule
    from search.fitness import kendall_tau, spearman_rho

    outcomes = {}
    for split in SPLITS:
        scorer = SplitScorer(task.cache.load, task.split_keys(split), resident_bytes=0)
        outcomes[split] = [report_rule(values) for values in scorer.values_of(trees)]
    size = {name: scorer.net_scalar(name) for name in ("params", "flops")}   # the test split's, recorded as it streamed
    accuracy = {split: task.accuracy_of(split) for split in SPLITS}
    rows: list[TaskScores | None] = []
    for position in range(len(trees)):
        if any(outcomes[split][position][0] is None for split in SPLITS):
            rows.append(None)
            continue
        scores = {split: outcomes[split][position][0] for split in SPLITS}
        ks = applicable_k(len(scores["test"]))
        rows.append(TaskScores(
            correlations={split: (float(kendall_tau(scores[split], accuracy[split])),
                                  float(spearman_rho(scores[split], accuracy[split]))) for split in SPLITS},
            undefined={split: outcomes[split][position][1] for split in SPLITS},
            params_rho=float(spearman_rho(scores["test"], size["params"])),
            flops_rho=float(spearman_rho(scores["test"], size["flops"])),
            precision={k: precision_at_k(scores["test"], accuracy["test"], k) for k in ks},
            best_ranking={k: best_ranking_at_k(scores["test"], accuracy["test"], k) for k in ks},
            test_scores=scores["test"], test_accuracy=accuracy["test"]))
    return rows


def _journal_candidate(expression: str, candidates: list[Candidate], directory: Path) -> Candidate:
    """The journal's record of result.json's chosen formula (the run chose among journalled formulas)."""
    for candidate in candidates:
        if candidate.expression == expression:
            return candidate
    raise RunError(f"{directory}: result.json chose {expression!r}, which its evaluation journal lacks")


def _chosen_note(result: dict[str, Any], row: Row) -> str:
    """What the chosen mark means, with result.json's validation fitness (the search's metric), the
    choice's figures in its own metric (runs that chose by the one-standard-error rule) and where the
    row is shown."""
    validation = result["chosen"].get("validation_fitness")
    where = "not on the Pareto front, shown after it" if row.number is None else f"Pareto-front row {row.number}"
    choice = result.get("choice")
    rule = ""
    if choice is not None:
        metric = "ρ" if choice["metric"] == "spearman" else "τ"
        rule = (f"; by validation {metric} {_number(choice['chosen_validation'])}, " +
                ("the best (no simpler member within one paired standard error)" if choice["gap"] == 0 else
                 f"the simplest within one paired standard error of the best {_number(choice['best_validation'])}: "
                 f"gap {choice['gap']:.3f} < {choice['gap_standard_error']:.3f}"))
    return f"chosen on validation (result.json; validation fitness {_number(validation)}{rule}), {where}"


def inspect_run(directory: str | Path) -> RunReport:
    """The Pareto front of a run and its chosen formula, each scored on every split of every task."""
    from primitives.symbolic import simplified_latex, simplified_text
    from search.expressions import parse
    from search.store import RunStore
    from search.config import config_from_dict
    from search.tasks import load_tasks

    directory = Path(directory)
    store = RunStore(directory)
    if not store.config_path.is_file() or not store.checkpoint_path.is_file():
        raise RunError(f"{directory} is not a search run directory (no config.json / checkpoint.json)")
    config = _reading(store.config_path, store.read_config_dict)
    log = store.read_log()
    candidates = read_candidates(directory)
    tasks = load_tasks(config["caches"], tuple(config["split_fractions"]),
                       config_from_dict(config, str(store.config_path)).splits_seed, pack_train=False)

    front = pareto_front(candidates)
    result = _reading(store.result_path, store.read_result)
    environment = _reading(store.environment_path, store.read_environment)
    chosen_record = (result or {}).get("chosen")
    chosen = None if chosen_record is None else _journal_candidate(chosen_record["expression"], candidates, directory)
    shown: list[tuple[int | None, Candidate]] = list(enumerate(front, start=1))
    if chosen is not None and not any(candidate is chosen for candidate in front):
        shown.append((None, chosen))
    trees = [parse(candidate.expression) for _, candidate in shown]
    scores = {task.name: _scores_on_task(trees, task) for task in tasks}
    rows = [Row(number, candidate, simplified_text(tree), simplified_latex(tree),
                {name: per_task[position] for name, per_task in scores.items()})
            for position, ((number, candidate), tree) in enumerate(zip(shown, trees))]
    if chosen is None:
        note = NO_RESULT_NOTE if result is None else NOTHING_CHOSEN_NOTE
        return RunReport(directory, config, log, candidates, rows, None, note, environment)
    chosen_row = next(row for row in rows if row.candidate is chosen)
    front_rows = [row for row in rows if row.number is not None]
    return RunReport(directory, config, log, candidates, front_rows, chosen_row, _chosen_note(result, chosen_row),
                     environment)


# ---------------------------------------------------------------- text
def _number(value: float | None) -> str:
    return "   -  " if value is None or not np.isfinite(value) else f"{value:+.3f}"


def _legend(report: RunReport, mark: str) -> str:
    """The line that says what ``mark`` means, or that no row carries it."""
    return f"{mark} {report.chosen_note}" if report.chosen is not None else report.chosen_note


def _undefined_counts(scores: TaskScores) -> str:
    """How many archs ranked last as undefined, per split where any did (empty when none did)."""
    counts = ", ".join(f"{split} {count}" for split, count in scores.undefined.items() if count)
    return f"  undefined archs (ranked last): {counts}" if counts else ""


def _task_lines(row: Row) -> list[str]:
    """Two lines per task: τ and ρ per split, then the test split's size bias and top-K figures."""
    lines = []
    for task, scores in row.tasks.items():
        if scores is None:
            lines.append(f"    {task}: undefined or constant on a whole split (the search voids it)")
            continue
        splits = "  ".join(f"{split} τ {_number(tau)} ρ {_number(rho)}"
                           for split, (tau, rho) in scores.correlations.items())
        top = "  ".join(f"P@{k} {p:.2f} BR@{k} {scores.best_ranking[k]}" for k, p in scores.precision.items())
        lines.append(f"    {task}: {splits}{_undefined_counts(scores)}")
        lines.append(f"    {task} test: ρ(params) {_number(scores.params_rho)}  ρ(flops) "
                     f"{_number(scores.flops_rho)}  {top}".rstrip())
    return lines


def format_table(report: RunReport) -> str:
    """A PySR-style equations table: one block per Pareto-optimal formula, then the chosen formula if
    it is off the front; the chosen one is marked in the first column."""
    lines = [f"run {report.directory}: {len(report.candidates)} valid formulas, "
             f"{len(report.rows)} on the Pareto front (train fitness against complexity)",
             _legend(report, CHOSEN_MARK),
             f"found with {describe_environment(report.environment)}" if report.environment else
             "found with an unrecorded environment (a run older than environment.json)"]
    for row in report.shown_rows:
        mark = CHOSEN_MARK if row is report.chosen else " "
        label = "[off the front]" if row.number is None else f"[{row.number}]"
        lines.append(f"\n{mark} {label} complexity {row.candidate.complexity}  train fitness "
                     f"{row.candidate.train_fitness:+.4f}")
        lines.append(f"    {row.simplified}")
        lines += _task_lines(row)
    return "\n".join(lines)


def _latex_row(report: RunReport, row: Row, tasks: list[str]) -> str:
    """Complexity (marked if chosen), test τ and ρ per task, the formula."""
    mark = f"$^{CHOSEN_MARK}$" if row is report.chosen else ""
    cells = [f"{row.candidate.complexity}{mark}"]
    for task in tasks:
        scores = row.tasks[task]
        tau, rho = scores.correlations["test"] if scores else (None, None)
        cells += [_number(tau), _number(rho)]
    cells.append(f"${row.latex}$")
    return " & ".join(cells) + " \\\\"


def format_latex(report: RunReport) -> str:
    """A LaTeX table: complexity, test τ / ρ per task, the simplified formula; the chosen formula is
    marked (below a rule when it is off the front) and a last line says what the mark means."""
    shown = report.shown_rows
    tasks = list(shown[0].tasks) if shown else []
    header = " & ".join(["complexity", *(f"{t} $\\tau$ & {t} $\\rho$" for t in tasks), "formula"])
    lines = ["\\begin{tabular}{r" + "rr" * len(tasks) + "l}", "\\toprule", header + " \\\\", "\\midrule"]
    for row in shown:
        if row.number is None:
            lines.append("\\midrule")
        lines.append(_latex_row(report, row, tasks))
    legend = _legend(report, f"$^{CHOSEN_MARK}$")
    lines += ["\\bottomrule", f"\\multicolumn{{{2 + 2 * len(tasks)}}}{{l}}{{{legend}}} \\\\", "\\end{tabular}"]
    return "\n".join(lines)


# ---------------------------------------------------------------- plots
def describe(report: RunReport, row: Row) -> str:
    """Which formula a plot shows: chosen or not, on the front or not, its complexity and formula."""
    choice = "chosen on validation" if row is report.chosen else "not chosen"
    place = "not on the Pareto front" if row.number is None else f"Pareto-front row {row.number}"
    return f"{choice}, {place}, complexity {row.candidate.complexity}: {row.simplified}"


def _wrapped(text: str, width: int) -> str:
    """Long formulas wrap (``width`` characters) instead of being cut, so a plot names them whole."""
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())


def _pyplot() -> ModuleType:
    """pyplot on the file-only Agg backend (inspect runs on machines without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fitness_figure(report: RunReport) -> Figure:
    """Best and median train fitness per generation, and the chosen formula's train fitness."""
    figure, axes = _pyplot().subplots(figsize=(6, 4))
    generations = [line["generation"] for line in report.log]
    for key, label in (("best_fitness", "best of the generation (any formula)"),
                       ("median_fitness", "median of its valid formulas")):
        values = [line[key] if line[key] > -1 else np.nan for line in report.log]
        axes.plot(generations, values, marker="o", label=label)
    if report.chosen is not None:
        axes.axhline(report.chosen.candidate.train_fitness, color="C3", linestyle="--",
                     label=_wrapped(describe(report, report.chosen), 60))
    axes.set(title="train fitness of the population per generation", xlabel="generation",
             ylabel=f"train fitness ({report.config.get('metric', '')})")
    axes.legend(fontsize=7)
    return figure


def _best_front_row_on_validation(report: RunReport) -> Row | None:
    """What test_scores.png shows when the run chose nothing (it says so)."""
    def validation(row: Row) -> float:
        values = [s.correlations["validation"][0] for s in row.tasks.values() if s is not None]
        return float(np.mean(values)) if values else -np.inf

    return max(report.rows, key=validation, default=None)


def _test_scores_title(report: RunReport, row: Row) -> str:
    """The plotted formula, and why it is shown when it is not the chosen one."""
    if row is report.chosen:
        return describe(report, row)
    return f"{describe(report, row)}\nshown as the front's best mean validation τ: {report.chosen_note}"


def _test_scores_figure(report: RunReport) -> Figure | None:
    """Proxy score against test accuracy per task for the chosen formula (without one: the front's
    best on validation, titled as such); None when there is nothing to plot."""
    row = report.chosen or _best_front_row_on_validation(report)
    if row is None:
        return None
    valid = {task: scores for task, scores in row.tasks.items() if scores is not None}
    if not valid:
        return None
    width = 5 * len(valid)
    figure, all_axes = _pyplot().subplots(1, len(valid), figsize=(width, 4), squeeze=False)
    for axes, (task, scores) in zip(all_axes[0], valid.items()):
        tau, rho = scores.correlations["test"]
        undefined = scores.undefined["test"]
        note = f", {undefined} undefined (ranked last, leftmost)" if undefined else ""
        axes.scatter(scores.test_scores, scores.test_accuracy, s=12)
        axes.set(xlabel="proxy score", ylabel="accuracy (%)", title=f"{task} test: τ {tau:.3f}, ρ {rho:.3f}{note}")
    figure.suptitle(_wrapped(_test_scores_title(report, row), 12 * width), fontsize=8)
    return figure


def _pareto_figure(report: RunReport) -> Figure:
    """Every evaluated formula, the Pareto front (the table's numbered rows) and the chosen formula."""
    figure, axes = _pyplot().subplots(figsize=(6, 4))
    axes.scatter([c.complexity for c in report.candidates], [c.train_fitness for c in report.candidates],
                 s=8, alpha=0.4, label="evaluated formulas")
    axes.step([r.candidate.complexity for r in report.rows], [r.candidate.train_fitness for r in report.rows],
              where="post", color="C3", marker="o", label=f"Pareto front (rows 1-{len(report.rows)})")
    if report.chosen is not None:
        chosen = report.chosen
        axes.scatter([chosen.candidate.complexity], [chosen.candidate.train_fitness], marker="*", s=180, color="C2",
                     edgecolor="black", zorder=3, label=_wrapped(describe(report, chosen), 60))
    axes.set(title="train fitness against complexity", xlabel="complexity", ylabel="train fitness")
    axes.legend(fontsize=7)
    return figure


def plot_figures(report: RunReport) -> dict[str, Figure]:
    """The report's figures by file name; each names the formula(s) it shows."""
    figures = {"fitness.png": _fitness_figure(report), "test_scores.png": _test_scores_figure(report),
               "pareto.png": _pareto_figure(report)}
    return {name: figure for name, figure in figures.items() if figure is not None}


def write_plots(report: RunReport, out: str | Path) -> list[Path]:
    """fitness.png, test_scores.png (the chosen formula against test accuracy) and pareto.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [_save(figure, out / name) for name, figure in plot_figures(report).items()]


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    _pyplot().close(figure)
    return path
