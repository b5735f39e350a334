"""``autoproxy inspect`` and ``autoproxy export`` on a tiny real run, and the standalone module in a
fresh virtual environment that holds only torch."""
from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from autoproxy.cli import main
from autoproxy.registry import REGISTRY_ENV, get_proxy, proxy_document
from autoproxy.export import standalone_source
from primitives.reference import reference_tree
from search_support import tiny_cache

SMALL = {
    "name": "tiny", "population": 8, "generations": 2, "time_budget_s": None, "elites": 1,
    "subsets": 2, "subset_size": 4, "split_fractions": [0.5, 0.25, 0.25], "diversity_probe": 4, "max_height": 6,
    "max_size": 20, "init_max_depth": 3, "seed": 3, "executor": "serial",
}
# A small NB201-like network in plain torch: the same code builds the same seeded model in the
# test process and in the fresh environment, so no model file has to be saved and loaded.
NET_SOURCE = textwrap.dedent('''
    import torch
    from torch import nn

    class Cell(nn.Module):
        def __init__(self, channels, ops):
            super().__init__()
            make = {
                "conv3": lambda: nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                               nn.BatchNorm2d(channels)),
                "conv1": lambda: nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1, bias=False),
                                               nn.BatchNorm2d(channels)),
                "pool": lambda: nn.AvgPool2d(3, stride=1, padding=1),
                "skip": lambda: nn.Identity(),
            }
            self.ops = nn.ModuleList(make[op]() for op in ops)

        def forward(self, x):
            return x + sum(op(x) for op in self.ops)

    def build(ops, seed=0, channels=4, classes=10):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                             Cell(channels, ops), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(channels, classes))

    def batch(seed=1):
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(8, 3, 16, 16, generator=generator), torch.randint(0, 10, (8,), generator=generator)

    ARCHS = [("conv3", "conv1"), ("conv3", "pool", "skip"), ("conv1", "conv1", "conv3")]
''')
PROBE = textwrap.dedent('''
    import json, sys
    import torch
    import tiny_net
    names = sys.argv[1:]
    modules = {name: __import__(name) for name in names}
    inputs, targets = tiny_net.batch()
    print(json.dumps({name: [getattr(modules[name], name)(tiny_net.build(ops), inputs, targets)
                             for ops in tiny_net.ARCHS] for name in names}))
''')


@pytest.fixture(scope="module")
def cache_dir(request) -> str:
    # a fresh cache in a temporary folder (not pytest's cache folder, whose copy may predate a statistic)
    fresh = SimpleNamespace(config=SimpleNamespace(cache=None), getfixturevalue=request.getfixturevalue)
    return tiny_cache(fresh)


@pytest.fixture(scope="module")
def run_dir(cache_dir, tmp_path_factory) -> Path:
    from search.config import load_config
    from search.runner import run_search

    config_path = tmp_path_factory.mktemp("config") / "tiny.json"
    config_path.write_text(json.dumps({**SMALL, "caches": [cache_dir]}))
    directory = tmp_path_factory.mktemp("runs") / "tiny"
    outcome = run_search(load_config(str(config_path)), directory, progress=False)
    assert outcome.result["chosen"] is not None
    return directory


def _undefined_on_one_train_arch(cache: str) -> str:
    """square(exp(K·params)) is infinite (undefined) on exactly the arch with the most parameters, one
    of the train split: exp clamps its argument at 50, and K puts only that arch's 2·K·params beyond
    the log of float32's largest value."""
    from autoproxy.inspect_run import SPLITS
    from search.tasks import load_task

    task = load_task(cache, 0, tuple(SMALL["split_fractions"]), SMALL["seed"])
    params = {split: task.scorer(split).net_scalar("params") for split in SPLITS}
    largest, runner_up = sorted(np.concatenate(list(params.values())))[:-3:-1]
    assert largest in params["train"] and largest > runner_up, "the tiny cache no longer fits this test"
    factor = np.log(np.finfo(np.float32).max) / (largest + runner_up)
    return f"square(exp(mul(net_params, {factor:.6g})))"


def _write_run(directory: Path, cache: str, journal: list[tuple[str, float]], chosen: int,
               validation_fitness: float) -> Path:
    """A finished run's files as search/store.py writes them; ``chosen`` indexes ``journal``."""
    from search.expressions import algebraic_key, complexity, parse, simplified

    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({**SMALL, "caches": [cache], "metric": "kendall"}))
    records = [{"index": index, "key": algebraic_key(parse(expression)), "expression": expression,
                "fitness": fitness, "status": "ok", "generation": 0}
               for index, (expression, fitness) in enumerate(journal)]
    (directory / "evaluations.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    (directory / "checkpoint.json").write_text(json.dumps({"version": 1, "generation": 0,
                                                           "evaluations": len(records)}))
    (directory / "log.jsonl").write_text(json.dumps({"generation": 0, "best_fitness": max(f for _, f in journal),
                                                     "median_fitness": float(np.median([f for _, f in journal]))}))
    tree = parse(journal[chosen][0])
    (directory / "result.json").write_text(json.dumps({
        "stop_reason": "generations", "generations": 0, "evaluated": len(records), "elapsed_s": 1.0,
        "chosen": {"key": records[chosen]["key"], "expression": journal[chosen][0], "simplified": simplified(tree),
                   "complexity": complexity(tree), "train_fitness": journal[chosen][1],
                   "validation_fitness": validation_fitness},
        "test": None}))
    return directory


@pytest.fixture(scope="module")
def off_front_run(cache_dir, tmp_path_factory) -> Path:
    """A run that chose (on validation) a formula that a simpler one beats on train fitness, so the
    chosen formula is not on the Pareto front; it is also undefined on one train arch."""
    journal = [("net_params", 0.4), ("net_sum(node_l2(grad))", 0.6), (_undefined_on_one_train_arch(cache_dir), 0.3)]
    return _write_run(tmp_path_factory.mktemp("runs") / "off-front", cache_dir, journal, chosen=2,
                      validation_fitness=0.9)


@pytest.fixture(autouse=True)
def registry(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "registry"))
    return tmp_path / "registry"


def cli(*args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(main, list(args))
    return outcome.exit_code, outcome.output


def test_inspect_lists_the_pareto_front_with_all_scores(run_dir):
    from autoproxy.inspect_run import format_table, inspect_run

    report = inspect_run(run_dir)
    assert report.rows
    assert format_table(report).splitlines()[2].startswith("found with python ")
    complexities = [row.candidate.complexity for row in report.rows]
    fitness = [row.candidate.train_fitness for row in report.rows]
    assert complexities == sorted(complexities) and fitness == sorted(fitness)
    assert len(set(fitness)) == len(fitness)
    dominated = [c for c in report.candidates
                 if any(c.complexity >= r.candidate.complexity and c.train_fitness < r.candidate.train_fitness
                        for r in report.rows)]
    assert len(dominated) + len(report.rows) <= len(report.candidates)
    for row in report.rows:
        for scores in row.tasks.values():
            if scores is not None:
                assert set(scores.correlations) == {"train", "validation", "test"}
                assert all(-1 <= v <= 1 for pair in scores.correlations.values() for v in pair if v == v)
    code, output = cli("inspect", str(run_dir))
    assert code == 0, output
    assert "[1] complexity" in output and "train τ" in output and "ρ(params)" in output
    code, output = cli("inspect", str(run_dir), "--latex")
    # header, rows, the chosen formula's row when it is off the front, and the line saying what $^*$ means
    assert code == 0 and "\\begin{tabular}" in output and output.count("\\\\") == len(report.shown_rows) + 2


def test_inspect_scores_the_chosen_formula_as_the_search_reported_it(run_dir):
    from autoproxy.inspect_run import inspect_run

    result = json.loads((run_dir / "result.json").read_text())
    report = inspect_run(run_dir)
    assert report.chosen.candidate.expression == result["chosen"]["expression"]
    for task, scores in result["test"].items():
        assert report.chosen.tasks[task].correlations["test"] == pytest.approx((scores["kendall"], scores["spearman"]))
    choice, metric = result["choice"], {"spearman": "ρ", "kendall": "τ"}[result["choice"]["metric"]]
    # each figure of the note in its own metric: the fitness's, then the choice's
    assert (f"validation fitness {result['chosen']['validation_fitness']:+.3f}; by validation {metric} "
            f"{choice['chosen_validation']:+.3f}, the ") in report.chosen_note
    assert (f"of the best {choice['best_validation']:+.3f}: gap" in report.chosen_note) == (choice["gap"] > 0)


def test_inspect_shows_and_marks_the_chosen_formula_off_the_front(off_front_run):
    from autoproxy.inspect_run import format_latex, inspect_run

    code, table = cli("inspect", str(off_front_run))
    assert code == 0, table
    lines = table.splitlines()
    assert lines[1] == ("* chosen on validation (result.json; validation fitness +0.900), "
                        "not on the Pareto front, shown after it")
    assert lines[2] == "found with an unrecorded environment (a run older than environment.json)"
    marked = [number for number, line in enumerate(lines) if line.startswith("* [")]
    assert len(marked) == 1 and lines[marked[0]].startswith("* [off the front] complexity ")
    report = inspect_run(off_front_run)
    assert [row.candidate.expression for row in report.rows] == ["net_params", "net_sum(node_l2(grad))"]
    chosen = report.chosen
    assert chosen.number is None and chosen not in report.rows
    assert lines[marked[0]] == f"* [off the front] complexity {chosen.candidate.complexity}  train fitness +0.3000"
    assert lines[marked[0] + 1].strip() == chosen.simplified
    latex = format_latex(report).splitlines()
    assert latex[-2].startswith("\\multicolumn") and "$^*$ chosen on validation (result.json" in latex[-2]
    assert latex[-5] == "\\midrule" and latex[-4].startswith(f"{chosen.candidate.complexity}$^*$ & ")
    assert latex[-4].endswith(f"${chosen.latex}$ \\\\")


def test_inspect_ranks_undefined_archs_last_as_the_search_does(off_front_run):
    from autoproxy.inspect_run import SPLITS, inspect_run
    from search.expressions import parse, report_scores
    from search.fitness import kendall_tau
    from search.tasks import load_task

    code, table = cli("inspect", str(off_front_run))
    assert code == 0 and "undefined archs (ranked last): train 1" in table.split("[off the front]")[1]
    report = inspect_run(off_front_run)
    (scores,) = report.chosen.tasks.values()
    assert scores.undefined == {"train": 1, "validation": 0, "test": 0}
    task = load_task(report.config["caches"][0], 0, tuple(SMALL["split_fractions"]), SMALL["seed"])
    tree = parse(report.chosen.candidate.expression)
    for split in SPLITS:
        expected = kendall_tau(report_scores(tree, task.scorer(split)), task.accuracy_of(split))
        assert scores.correlations[split][0] == pytest.approx(expected)


def _figure_text(figure) -> str:
    """Every text of a figure (titles, legend, labels), whitespace collapsed (long formulas wrap)."""
    from matplotlib.text import Text

    return " ".join(" ".join(text.get_text().split()) for text in figure.findobj(Text))


def test_every_plot_names_the_chosen_formula(off_front_run):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from autoproxy.inspect_run import describe, inspect_run, plot_figures

    report = inspect_run(off_front_run)
    chosen = describe(report, report.chosen)
    assert chosen == ("chosen on validation, not on the Pareto front, "
                      f"complexity {report.chosen.candidate.complexity}: {report.chosen.simplified}")
    figures = plot_figures(report)
    assert set(figures) == {"fitness.png", "test_scores.png", "pareto.png"}
    for name, figure in figures.items():
        assert chosen in _figure_text(figure), name
    (scores,) = report.chosen.tasks.values()
    plotted = figures["test_scores.png"].axes[0].collections[0].get_offsets()
    assert np.array_equal(np.asarray(plotted)[:, 0], scores.test_scores)
    assert "Pareto front (rows 1-2)" in _figure_text(figures["pareto.png"])
    for figure in figures.values():
        plt.close(figure)


def test_inspect_of_a_run_without_result_json_marks_nothing(off_front_run, tmp_path):
    pytest.importorskip("matplotlib")
    import shutil

    import matplotlib.pyplot as plt

    from autoproxy.inspect_run import NO_RESULT_NOTE, NOTHING_CHOSEN_NOTE, format_table, inspect_run, plot_figures

    running = tmp_path / "running"
    shutil.copytree(off_front_run, running)
    (running / "result.json").unlink()
    report = inspect_run(running)
    assert report.chosen is None and len(report.shown_rows) == 2
    table = format_table(report).splitlines()
    assert table[1] == NO_RESULT_NOTE and not [line for line in table if line.startswith("*")]
    figure = plot_figures(report)["test_scores.png"]
    assert "not chosen, Pareto-front row" in _figure_text(figure) and NO_RESULT_NOTE in _figure_text(figure)
    plt.close(figure)
    (running / "result.json").write_text(json.dumps({"stop_reason": "generations", "chosen": None}))
    assert format_table(inspect_run(running)).splitlines()[1] == NOTHING_CHOSEN_NOTE


def test_inspect_plots(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    code, output = cli("inspect", str(run_dir), "--plot", str(tmp_path / "plots"))
    assert code == 0, output
    for name in ("fitness.png", "test_scores.png", "pareto.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_best_and_a_row_into_the_registry(run_dir, registry):
    chosen = json.loads((run_dir / "result.json").read_text())["chosen"]
    code, output = cli("export", str(run_dir), "--name", "found")
    assert code == 0, output
    doc = json.loads((registry / "found.json").read_text())
    assert doc["expression"] == chosen["expression"] and doc["statistics"] == {"sub_batches": 2}
    assert doc["source"]["scores"]["validation_fitness"] == chosen["validation_fitness"]
    assert get_proxy("found").expression == chosen["expression"]
    code, output = cli("export", str(run_dir), "--name", "found")
    assert code == 2 and "--overwrite" in output
    code, output = cli("export", str(run_dir), "--name", "simplest", "--pick", "1")
    assert code == 0, output
    code, output = cli("export", str(run_dir), "--name", "nope", "--pick", "999")
    assert code == 2 and "row 999 does not exist" in output


def test_standalone_module_imports_only_torch(run_dir, tmp_path):
    code, output = cli("export", str(run_dir), "--name", "found", "--python", str(tmp_path / "found.py"))
    assert code == 0, output
    source = (tmp_path / "found.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"torch"} and "torch" in imported
    assert "def found(net, inputs, targets, loss_fn=None, split_data=1) -> float:" in source


def _fresh_torch_python(request) -> Path:
    """A venv holding only torch (and its own dependencies), kept in pytest's cache between runs."""
    import torch

    store = getattr(request.config, "cache", None)
    root = Path(store.mkdir("autoproxy-torch-only-venv")) if store else request.getfixturevalue("tmp_path") / "venv"
    python = root / "venv" / "bin" / "python"
    version = torch.__version__.split("+")[0]
    check = [str(python), "-c", f"import torch, sys; assert torch.__version__.startswith('{version}'); "
             "import importlib.util as u; sys.exit(u.find_spec('numpy') is not None or u.find_spec('autoproxy') is not None)"]
    if python.exists() and subprocess.run(check, capture_output=True, cwd=root).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(root / "venv")], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"torch=={version}"], check=True, capture_output=True)
    assert subprocess.run(check, capture_output=True, cwd=root).returncode == 0, "the fresh venv holds more than torch"
    return python


def test_standalone_module_reproduces_the_engine_in_a_torch_only_venv(run_dir, tmp_path, request):
    python = _fresh_torch_python(request)
    (tmp_path / "tiny_net.py").write_text(NET_SOURCE)
    (tmp_path / "probe.py").write_text(PROBE)
    code, output = cli("export", str(run_dir), "--name", "found", "--python", str(tmp_path / "found.py"))
    assert code == 0, output
    docs = {"found": get_proxy("found").document}
    for reference in ("nwot", "snip", "fisher", "zico", "meco", "jacov", "grasp"):
        docs[f"ref_{reference}"] = proxy_document(f"ref_{reference}", reference_tree(reference))
        (tmp_path / f"ref_{reference}.py").write_text(standalone_source(docs[f"ref_{reference}"]))
    completed = subprocess.run([str(python), "probe.py", *docs], cwd=tmp_path, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr
    exported = json.loads(completed.stdout)

    spec = importlib.util.spec_from_file_location("tiny_net", tmp_path / "tiny_net.py")
    tiny_net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny_net)
    from autoproxy.registry import Proxy

    inputs, targets = tiny_net.batch()
    for name, doc in docs.items():
        engine = Proxy(name, "expression", "test", expression=doc["expression"], document=doc)
        expected = [engine(tiny_net.build(ops), inputs, targets) for ops in tiny_net.ARCHS]
        # exact: the module runs the engine's own statistics, kernels and evaluator
        assert exported[name] == pytest.approx(expected, rel=0, abs=0, nan_ok=True), name
