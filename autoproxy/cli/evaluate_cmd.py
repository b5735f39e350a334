"""``autoproxy evaluate``: a registry proxy computed directly on a benchmark's networks."""
from __future__ import annotations

import json

import click

from autoproxy.cli import main, space_option


@main.command("evaluate")
@click.option("--proxy", "proxy_name", required=True, help="Registry name (see `autoproxy list`) or proxy JSON file.")
@click.option("--benchmark", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Ground-truth file (.json NAS-Bench-Suite-Zero or .csv).")
@space_option
@click.option("--task", required=True, help="Task in the benchmark file, e.g. cifar10.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Images file (.npz): the input size comes from it; without it, 3x32x32 noise.")
@click.option("--limit", type=click.IntRange(min=2), default=None, help="Only N archs (a --seed shuffle of the file).")
@click.option("--num-classes", type=click.IntRange(min=2), default=None,
              help="Classifier outputs (default: known from the task name).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--inits", type=click.IntRange(min=1), default=5, show_default=True,
              help="Weight initialisations: init seeds 0..N-1.")
@click.option("--batches", type=click.IntRange(min=1), default=3, show_default=True,
              help="Minibatches: batch seeds 0..M-1 (every init is scored on every batch).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the --limit shuffle of the archs.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write the per-draw figures and per-arch scores here.")
def evaluate_command(proxy_name, benchmark, space, task, data, limit, num_classes, batch_size, inits, batches, seed,
                     json_out) -> None:
    """Spearman ρ, Kendall τ, partial ρ (params and FLOPs out), Precision@K, BestRanking@K and top-1
    regret of a proxy as mean ± std over weight initialisations × minibatches, next to the file's
    reference proxies."""
    from autoproxy.proxy_evaluation import evaluate_proxy, evaluation_json, format_evaluation
    from autoproxy.stability import Grid

    def progress(done: int, total: int) -> None:
        click.echo(f"\r{done}/{total} archs", nl=done == total, err=True)

    evaluation = evaluate_proxy(proxy_name, benchmark, space, task, data=data, limit=limit, num_classes=num_classes,
                                batch_size=batch_size, seed=seed, grid=Grid(inits, batches), progress=progress)
    click.echo(format_evaluation(evaluation))
    if json_out:
        with open(json_out, "w") as handle:
            json.dump(evaluation_json(evaluation), handle, indent=1, allow_nan=False)
        click.echo(f"per-draw figures and per-arch scores: {json_out}")
