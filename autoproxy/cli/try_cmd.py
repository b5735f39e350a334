"""``autoproxy try``: score one expression, or a reference proxy by name, on a statistics cache."""
from __future__ import annotations

import sys

import click

from autoproxy.cli import main

METRIC_LABELS = {"kendall": "kendall_tau", "spearman": "spearman_rho"}


@main.command("try")
@click.argument("expression")
@click.option("--cache", "cache_dirs", required=True, multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Statistics cache directory (autoproxy cache build); repeat it for a line per cache "
                   "(spaces x tasks: the formula's transfer).")
@click.option("--metric", type=click.Choice(["both", *METRIC_LABELS]), default="both", show_default=True,
              help="Rank correlation(s) with accuracy to print.")
@click.option("--limit", type=click.IntRange(min=2), help="Only a --seed subset of N archs of each cache.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the --limit subset.")
def try_command(expression: str, cache_dirs: tuple[str, ...], metric: str, limit: int | None, seed: int) -> None:
    """Score EXPRESSION (text, or a reference proxy such as snip or nwot) on every cached arch, exactly
    (no search-time sketch), and print its simplified formula and rank correlations with accuracy, per
    cache when several are given (each block starts with a ``cache:`` line). Archs where it is
    undefined rank last, as in every report; exits with status 1 when it is undefined or constant on
    all the archs of a cache (the other caches are still reported)."""
    from search.expressions import parse, reference_expressions, simplified

    text = reference_expressions().get(expression, expression)
    tree = parse(text)                       # ExpressionError (one line) before any cache is read
    click.echo(f"expression: {text}")
    click.echo(f"simplified: {simplified(tree)}")
    valid = [_report(tree, cache_dir, metric, limit, seed, named=len(cache_dirs) > 1) for cache_dir in cache_dirs]
    if not all(valid):
        sys.exit(1)


def _report(tree, cache_dir: str, metric: str, limit: int | None, seed: int, named: bool) -> bool:
    """The lines of one cache; False when the formula is undefined or constant on all its archs."""
    import numpy as np

    from autoproxy.cache import open_cache
    from search.expressions import SplitScorer, report_rule
    from search.fitness import correlation

    cache = open_cache(cache_dir)
    keys = cache.subset(limit, seed) if limit else cache.keys
    scores, undefined = report_rule(SplitScorer(cache.load, keys, resident_bytes=0).values_of([tree])[0])   # one pass
    if named:
        click.echo(f"cache: {cache_dir}")
    click.echo(f"archs: {len(keys)}")
    if undefined is None:
        click.echo("valid: no (linear algebra failed)")
        return False
    click.echo(f"undefined archs (ranked last): {undefined}")
    if scores is None:
        click.echo(f"valid: no ({'undefined' if undefined >= len(keys) - 1 else 'constant'})")
        return False
    accuracy = np.array([cache.accuracy[key] for key in keys], dtype=np.float64)
    for name in METRIC_LABELS if metric == "both" else (metric,):
        click.echo(f"{METRIC_LABELS[name]}: {float(correlation(name, scores, accuracy)):+.4f}")
    return True
