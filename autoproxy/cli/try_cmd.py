"""``autoproxy try``: score one expression, or a reference proxy by name, on a statistics cache."""
from __future__ import annotations

import sys

import click

from autoproxy.cli import main

METRIC_LABELS = {"kendall": "kendall_tau", "spearman": "spearman_rho"}


@main.command("try")
@click.argument("expression")
@click.option("--cache", "cache_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Statistics cache directory (autoproxy cache build).")
@click.option("--metric", type=click.Choice(["both", *METRIC_LABELS]), default="both", show_default=True,
              help="Rank correlation(s) with accuracy to print.")
@click.option("--limit", type=click.IntRange(min=2), help="Only a --seed subset of N archs of the cache.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the --limit subset.")
def try_command(expression: str, cache_dir: str, metric: str, limit: int | None, seed: int) -> None:
    """Score EXPRESSION (text, or a reference proxy such as snip or nwot) on every cached arch, exactly
    (no search-time sketch), and print its simplified formula and rank correlations with accuracy.
    Archs where it is undefined rank last, as in every report; exits with status 1 when it is
    undefined or constant on all of them."""
    import numpy as np

    from autoproxy.cache import open_cache
    from search.expressions import counted_report_scores, evaluator, pack, parse, reference_expressions, simplified
    from search.fitness import correlation

    text = reference_expressions().get(expression, expression)
    tree = parse(text)                       # ExpressionError (one line) before any cache is read
    cache = open_cache(cache_dir)
    keys = cache.subset(limit, seed) if limit else cache.keys
    scores, undefined = counted_report_scores(tree, evaluator(pack(cache.load(keys))))

    click.echo(f"expression: {text}")
    click.echo(f"simplified: {simplified(tree)}")
    click.echo(f"archs: {len(keys)}")
    if undefined is None:
        click.echo("valid: no (linear algebra failed)")
        sys.exit(1)
    click.echo(f"undefined archs (ranked last): {undefined}")
    if scores is None:
        click.echo(f"valid: no ({'undefined' if undefined >= len(keys) - 1 else 'constant'})")
        sys.exit(1)
    accuracy = np.array([cache.accuracy[key] for key in keys], dtype=np.float64)
    for name in METRIC_LABELS if metric == "both" else (metric,):
        click.echo(f"{METRIC_LABELS[name]}: {float(correlation(name, scores, accuracy)):+.4f}")
