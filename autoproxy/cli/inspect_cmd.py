"""``autoproxy inspect``: the equations table of a search run, in LaTeX too, and its plots."""
from __future__ import annotations

import click

from autoproxy.cli import main


@main.command("inspect")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--latex", is_flag=True, help="Print the table as LaTeX instead.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), default=None,
              help="Write fitness.png, test_scores.png and pareto.png here (needs matplotlib).")
def inspect_command(run_dir, latex, plot_dir) -> None:
    """One row per Pareto-optimal formula (train fitness against complexity): τ and ρ per split and
    task, correlation with params and FLOPs, Precision@K and BestRanking@K on the test split."""
    from autoproxy.inspect_run import format_latex, format_table, inspect_run, write_plots

    report = inspect_run(run_dir)
    click.echo(format_latex(report) if latex else format_table(report))
    if plot_dir:
        for path in write_plots(report, plot_dir):
            click.echo(f"wrote {path}", err=True)
