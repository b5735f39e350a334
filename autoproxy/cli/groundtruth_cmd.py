"""``autoproxy groundtruth train``: real accuracies of sampled archs, the ground truth proxies are
judged against, for tasks no published benchmark covers."""
from __future__ import annotations

import click

from autoproxy.cli import main, space_option


@main.group("groundtruth")
def groundtruth() -> None:
    """Make ground truth by really training archs."""


@groundtruth.command("train")
@space_option
@click.option("--dataset", required=True,
              help="digits (scikit-learn's, no download), cifar10 (with --data-dir) or a path to an "
                   ".npz holding images and labels.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder with cifar10.npz or CIFAR-10's binary release (never the pickled one).")
@click.option("--n", "n", required=True, type=click.IntRange(min=1), help="Distinct archs to sample.")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--width", type=click.IntRange(min=1), default=None, help="Channels of the stem (space default).")
@click.option("--depth", type=click.IntRange(min=1), default=None, help="Cells per stage (space default).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True,
              help="SGD with Nesterov momentum 0.9, or Adam.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help="Peak learning rate, cosine-annealed to 0 over the run.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds which archs are sampled.")
@click.option("--train-seed", type=int, default=0, show_default=True,
              help="Seeds weight init and batch order (one derived seed per arch).")
@click.option("--executor", type=click.Choice(["ray", "serial"]), default="serial", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Ray workers.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="CSV to write (arch,accuracy,params,flops,seconds); rerun to resume.")
def train(space, dataset, data_dir, n, epochs, width, depth, batch_size, optimizer, lr, seed, train_seed,
          executor, workers, out) -> None:
    """Train N sampled archs and record their held-out accuracy (%); resumable."""
    from pathlib import Path

    from autoproxy.datasets import load_dataset
    from autoproxy.groundtruth import TrainSettings, train_missing

    images = load_dataset(dataset, data_dir)
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, width=width,
                             depth=depth)
    store = train_missing(space, images, settings, n=n, seed=seed, train_seed=train_seed, out=Path(out),
                          executor=executor, workers=workers)
    click.echo(f"{len(store.done)} archs in {out}")
