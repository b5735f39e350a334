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

import pytest
from click.testing import CliRunner

from autoproxy.cli import main
from autoproxy.registry import REGISTRY_ENV, get_proxy, proxy_document
from autoproxy.export import standalone_source
from primitives.reference import reference_tree
from search_support import tiny_cache

SMALL = {
    "name": "tiny", "population": 8, "generations": 2, "time_budget_s": None, "elites": 1, "hall_of_fame": 5,
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
def run_dir(request, tmp_path_factory) -> Path:
    from search.config import load_config
    from search.runner import run_search

    # a fresh cache in a temporary folder (not pytest's cache folder, whose copy may predate a statistic)
    fresh = SimpleNamespace(config=SimpleNamespace(cache=None), getfixturevalue=request.getfixturevalue)
    config_path = tmp_path_factory.mktemp("config") / "tiny.json"
    config_path.write_text(json.dumps({**SMALL, "caches": [tiny_cache(fresh)]}))
    directory = tmp_path_factory.mktemp("runs") / "tiny"
    outcome = run_search(load_config(str(config_path)), directory, progress=False)
    assert outcome.result["chosen"] is not None
    return directory


@pytest.fixture(autouse=True)
def registry(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "registry"))
    return tmp_path / "registry"


def cli(*args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(main, list(args))
    return outcome.exit_code, outcome.output


def test_inspect_lists_the_pareto_front_with_all_scores(run_dir):
    from autoproxy.inspect_run import inspect_run

    report = inspect_run(run_dir)
    assert report.rows
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
    assert code == 0 and "\\begin{tabular}" in output and output.count("\\\\") == len(report.rows) + 1


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
        assert exported[name] == pytest.approx(expected, rel=1e-4, abs=1e-6), name
