"""``autoproxy search``: evolve proxies on statistics caches (resumable, deterministic by seed)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from autoproxy.cli import main


@main.command("search")
@click.option("--config", "config_name", help="Named config (e.g. nb201-cifar10) or a JSON file.")
@click.option("--cache", "caches", multiple=True, help="Statistics cache directory (repeat for multi-task); "
              "replaces the config's caches.")
@click.option("--transfer-cache", "transfer_caches", multiple=True,
              help="A cache to report the chosen formula on, not searched on (repeatable; replaces the config's).")
@click.option("--time-budget", help="Stop after this long, e.g. 24h, 30m, 90s.")
@click.option("--generations", type=int, help="Stop after this many generations.")
@click.option("--population", type=int, help="Population size.")
@click.option("--seed", type=int, help="Seed: the same seed finds the same formula.")
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder that holds run directories.")
@click.option("--name", help="Run directory name (default: <config name>-seed<seed>).")
@click.option("--executor", type=click.Choice(["ray", "serial"]), help="Where candidates are scored.")
@click.option("--workers", type=int, help="Ray actors (default: the CPUs Ray sees).")
@click.option("--ray-address", help="Join a running Ray cluster (e.g. 10.0.0.1:6379).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="Continue the run in this directory from its last checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def search_command(config_name, caches, transfer_caches, time_budget, generations, population, seed, out, name, executor, workers,
                   ray_address, resume_dir, quiet) -> None:
    """Evolve zero-cost proxies; writes config, log, hall of fame, checkpoint and result to OUT/NAME."""
    from autoproxy.errors import ConfigError
    from autoproxy.stability import summary_line
    from search.config import load_config, parse_duration
    from search.front import SMALL_VALIDATION
    from search.runner import resume_config, run_search

    overrides = {
        "caches": list(caches) or None, "transfer_caches": list(transfer_caches) or None, "generations": generations, "population": population, "seed": seed,
        "time_budget_s": parse_duration(time_budget) if time_budget else None, "executor": executor,
        "workers": workers, "ray_address": ray_address,
    }
    if resume_dir:
        directory = Path(resume_dir)
        config = resume_config(directory, overrides)
        _warn_if_environment_changed(directory)
    else:
        if not config_name:
            raise ConfigError("pass --config NAME_OR_FILE (or --resume RUN_DIR)")
        config = load_config(config_name).replace(**overrides)
        directory = Path(out) / (name or f"{config.name}-seed{config.seed}")
    outcome = run_search(config, directory, resume=bool(resume_dir), progress=not quiet)
    if outcome.result is None:
        click.echo(f"interrupted after generation {outcome.generation}; continue with: "
                   f"autoproxy search --resume {directory}", err=True)
        sys.exit(130)
    chosen = outcome.result["chosen"]
    click.echo(f"run: {directory} ({outcome.stop_reason}, {outcome.generation} generations, "
               f"{outcome.result['evaluated']} distinct formulas)")
    if chosen is None:
        click.echo("no valid formula was found")
        return
    choice = outcome.result["choice"]
    click.echo(f"chosen: {chosen['simplified']}")
    symbol = {"kendall": "τ", "spearman": "ρ"}[choice["metric"]]
    why = (f"the best validation {symbol} on the front, {choice['best_validation']:.4f}; no simpler member within "
           "one paired standard error" if choice["gap"] == 0 else
           f"validation {symbol} {choice['chosen_validation']:.4f}: the simplest within one paired standard error "
           f"of the best, {choice['best_validation']:.4f} (gap {choice['gap']:.4f} < {choice['gap_standard_error']:.4f})")
    click.echo(f"complexity {chosen['complexity']}  train {chosen['train_fitness']:.4f}  validation "
               f"{chosen['validation_fitness']:.4f} ({why})")
    if choice.get("validation_archs", SMALL_VALIDATION) < SMALL_VALIDATION:
        click.echo(f"warning: the choice was made on {choice['validation_archs']} validation archs, too few to "
                   f"separate formulas (below {SMALL_VALIDATION} one paired standard error is about 0.1 ρ); give "
                   "the cache more archs or the validation split a larger fraction", err=True)
    for task, values in (outcome.result.get("test") or {}).items():
        click.echo(f"test {task}: kendall {values['kendall']:.4f}  spearman {values['spearman']:.4f}")
    for task, values in outcome.result.get("transfer", {}).items():
        figures = ("undefined" if values["spearman"] is None else
                   f"kendall {values['kendall']:.4f}  spearman {values['spearman']:.4f}")
        click.echo(f"transfer {task}: {figures} ({values['archs']} archs no search saw)")
    for task, report in (outcome.result.get("stability") or {}).items():
        click.echo(f"stability {task}: {report.get('skipped') or summary_line(report)}")


def _warn_if_environment_changed(directory: Path) -> None:
    """One stderr line when a run is resumed with other package versions than it started with: the
    resumed part may not retrace what an uninterrupted run would have done."""
    from search.environment import current_environment, environment_changes
    from search.store import RunStore

    recorded = RunStore(directory).read_environment()
    changes = [] if recorded is None else environment_changes(recorded, current_environment())
    if changes:
        click.echo(f"warning: {directory} was started in another environment ({'; '.join(changes)}); "
                   "the resumed run may differ from an uninterrupted one", err=True)
