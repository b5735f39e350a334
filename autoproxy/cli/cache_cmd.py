"""``autoproxy cache build|verify``: compute the statistics cache of a benchmark, check one on disk."""
from __future__ import annotations

import sys

import click

from autoproxy.cache.defaults import DEFAULT_DTYPE, DEFAULT_MAX_CHANNELS, DEFAULT_MAX_POSITIONS
from autoproxy.cli import main, space_option


def _all_if_zero(value: int | None) -> int | None:
    return None if value == 0 else value


@main.group("cache")
def cache() -> None:
    """Node-wise statistics of many archs, stored once and reused by every search."""


@cache.command("build")
@click.option("--benchmark", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Ground-truth file (.json NAS-Bench-Suite-Zero or .csv).")
@space_option
@click.option("--task", required=True, help="Task in the benchmark file, e.g. cifar10.")
@click.option("--data", default=None,
              help="Images file (.npz) or named dataset (digits) for the minibatch; without it the inputs are noise.")
@click.option("--noise", is_flag=True, help="Gaussian-noise inputs shaped like --data's images.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N archs of a --seed shuffle of the file (a larger N extends the cache).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the minibatch, weight init, sketch and arch order.")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Channels of the stem (space default).")
@click.option("--depth", type=click.IntRange(min=1), default=None, help="Cells per stage (space default).")
@click.option("--sub-batches", type=click.IntRange(min=1), default=4, show_default=True,
              help="Sub-batches for the gradient std (ZiCo).")
@click.option("--num-classes", type=click.IntRange(min=2), default=None,
              help="Classifier outputs, for a task whose class count is not known.")
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default=DEFAULT_DTYPE, show_default=True,
              help="Storage precision; float16 is scaled per tensor by a power of two.")
@click.option("--max-channels", type=click.IntRange(min=0), default=DEFAULT_MAX_CHANNELS, show_default=True,
              help="Channels kept per activation tensor (0: all).")
@click.option("--max-positions", type=click.IntRange(min=0), default=DEFAULT_MAX_POSITIONS, show_default=True,
              help="Spatial positions kept per activation tensor (0: all).")
@click.option("--executor", type=click.Choice(["ray", "serial"]), default="ray", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Ray workers (default: all CPUs).")
@click.option("--device", default="cpu", show_default=True,
              help="Where the networks run: cpu or cuda[:N] (recorded; a cache is extended on the same device).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Cache directory.")
def build(benchmark, space, task, data, noise, limit, batch_size, seed, width, depth, sub_batches,
          num_classes, dtype, max_channels, max_positions, executor, workers, device, out) -> None:
    """Compute and store the statistics of a benchmark's archs; rerun to resume. Exits with status 1
    when an arch was skipped (the cache keeps every arch it built)."""
    from autoproxy.cache.build import build_cache

    summary = build_cache(
        out, benchmark, space=space, task=task, data=data, noise=noise, batch_size=batch_size, seed=seed,
        width=width, depth=depth, sub_batches=sub_batches, max_channels=_all_if_zero(max_channels),
        max_positions=_all_if_zero(max_positions), dtype=dtype, num_classes=num_classes, limit=limit,
        executor=executor, workers=workers, device=device, echo=lambda line: click.echo(line, err=True))
    click.echo(summary.line())
    if summary.failed:
        click.echo(summary.skipped_line(), err=True)
        sys.exit(1)


@cache.command("verify")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def verify(directory) -> None:
    """Check every entry's checksum; list the corrupt ones and exit 1 if there are any."""
    from autoproxy.cache.loader import open_cache

    stats_cache = open_cache(directory)
    bad = stats_cache.verify()
    for key in bad:
        click.echo(f"corrupt: {key} ({stats_cache.manifest.entries[key].file})")
    click.echo(f"{len(stats_cache) - len(bad)} of {len(stats_cache)} entries verified")
    sys.exit(1 if bad else 0)
