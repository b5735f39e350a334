"""The transfer matrix: formulas (rows) × caches of several spaces and tasks (columns), Spearman ρ (and
Kendall τ) on each column's test split, with params, FLOPs and the best reference proxy per column.

A column's test split is the one a run over that cache alone draws (the config's split fractions and
split seed; the per-space split stream), which is also its split in a multi-space run: no row's search
trained or validated on a column's test archs, whichever of the shipped configs it ran.

    python benchmarks/transfer_matrix.py --cache caches/nb201-cifar10 --cache caches/nb301-cifar10 \\
        --run nb301=runs/nb301-cifar10-seed0 --formula 'nb201=net_sum(eig_min(relu_kernel))'
    python benchmarks/transfer_matrix.py --smoke     # a tiny cache built on the fly
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

from _smoke import SMOKE_HELP, tiny_cache
from search import expressions
from search.config import load_config
from search.store import RunStore
from search.tasks import Task, load_tasks
from search_quality import correlations

TRIVIAL = {"params": "net_params", "flops": "net_flops"}


def column(cache: str, fractions: tuple[float, float, float], split_seed: int) -> Task:
    """One cache's task, split as a run over its space alone splits it."""
    (task,) = load_tasks([cache], fractions, split_seed, pack_train=False)
    return task


def labelled(text: str, option: str) -> tuple[str, str]:
    """``LABEL=VALUE`` → (label, value); a missing ``=`` is one line naming the option."""
    label, sep, value = text.partition("=")
    if not sep or not label or not value:
        raise SystemExit(f"{option} {text!r}: expected LABEL=VALUE")
    return label, value


def chosen_expression(run: str) -> str:
    """The chosen formula of a finished run directory."""
    result = RunStore(Path(run)).read_result()
    if result is None or result.get("chosen") is None:
        raise SystemExit(f"--run {run}: no finished run with a chosen formula there")
    return result["chosen"]["expression"]


def report(caches: list[str], rows: dict[str, str], config_name: str) -> None:
    config = load_config(config_name)
    tasks = [column(cache, config.split_fractions, config.splits_seed) for cache in caches]
    print(f"transfer matrix: Spearman ρ (Kendall τ) on each cache's test split (fractions "
          f"{list(config.split_fractions)}, split seed {config.splits_seed})")
    print("| formula | " + " | ".join(f"{t.name} ({len(t.splits.test)})" for t in tasks) + " |")
    print("| --- |" + " --- |" * len(tasks))
    scored = {task.name: (task.scorer("test"), task.accuracy_of("test")) for task in tasks}
    references = expressions.reference_expressions()
    for label, text in {**rows, **TRIVIAL}.items():
        text = references.get(text, text)
        cells = [correlations(text, *scored[task.name]) for task in tasks]
        print(f"| {label}: `{text}` | " + " | ".join(f"{rho:+.3f} ({tau:+.3f})" for rho, tau in cells) + " |")
    best = []
    for task in tasks:
        values = {name: correlations(text, *scored[task.name]) for name, text in references.items()}
        name = max(values, key=lambda n: -math.inf if math.isnan(values[n][0]) else values[n][0])
        best.append(f"{name} {values[name][0]:+.3f} ({values[name][1]:+.3f})")
    print("| best reference proxy | " + " | ".join(best) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", action="append", default=[], help="a column (directory or builtin:NAME); repeat")
    parser.add_argument("--run", action="append", default=[], help="LABEL=RUN_DIR: a row, the run's chosen formula")
    parser.add_argument("--formula", action="append", default=[], help="LABEL=EXPRESSION: a row (an expression or a reference proxy name)")
    parser.add_argument("--config", default="nb201-cifar10", help="named config or file: split fractions and seed")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    rows = dict(labelled(text, "--formula") for text in args.formula)
    rows.update((label, chosen_expression(run)) for label, run in (labelled(text, "--run") for text in args.run))
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="transfer-matrix-smoke-") as folder:
            config = Path(folder) / "smoke.json"   # a test split of 4 of the 8 archs
            config.write_text(json.dumps({"name": "smoke", "caches": [], "split_fractions": [0.25, 0.25, 0.5]}))
            report([str(tiny_cache(Path(folder)))], rows or {"nwot": "nwot"}, str(config))
    elif not args.cache:
        parser.error("--cache is required (at least one)")
    else:
        report(args.cache, rows, args.config)


if __name__ == "__main__":
    main()
