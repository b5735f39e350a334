"""Are the ranks of the embedded nb201-digits benchmark learnable, or seed noise?

Trains the first K archs of the benchmark's sample twice, with two training seeds, under the recipe
recorded beside ``autoproxy/data/nb201-digits.csv``, and prints the Spearman (and Kendall)
correlation between the two seeds' accuracies. A proxy cannot be expected to agree with the ground
truth better than the ground truth agrees with itself; we require Spearman >= 0.8.

    python benchmarks/digits_seed_agreement.py --k 40 --seeds 1 2 --executor ray --workers 2
    python benchmarks/digits_seed_agreement.py --smoke    # 3 tiny nets, 1 epoch, serial, for CI
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import click
import numpy as np
from scipy.stats import kendalltau, spearmanr

from _smoke import FEW_ARCHS, SMOKE_HELP, TINY_NET
from autoproxy.datasets import load_dataset
from autoproxy.groundtruth import TrainSettings, train_missing
from autoproxy.groundtruth.store import settings_path

BENCHMARK = Path(__file__).resolve().parents[1] / "autoproxy" / "data" / "nb201-digits.csv"
CHANCE_CUTOFF = 20.0    # 10 classes: archs whose cells cut the signal stay near 10%


@click.command()
@click.option("--k", type=click.IntRange(min=3), default=40, show_default=True, help="Archs to train.")
@click.option("--seeds", type=int, nargs=2, default=(1, 2), show_default=True, help="Two training seeds.")
@click.option("--executor", type=click.Choice(["ray", "serial"]), default="serial", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--smoke", is_flag=True, help=SMOKE_HELP)
def agreement(k: int, seeds: tuple[int, int], executor: str, workers: int, smoke: bool) -> None:
    recipe = json.loads(settings_path(BENCHMARK).read_text())
    settings = TrainSettings(**{name: recipe[name] for name in TrainSettings.__dataclass_fields__})
    if smoke:
        k, executor = FEW_ARCHS, "serial"
        settings = replace(settings, epochs=1, width=TINY_NET["width"], depth=TINY_NET["depth"])
    dataset = load_dataset(recipe["dataset"])
    click.echo(f"recipe: {settings}")
    accuracies = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in seeds:
            store = train_missing(recipe["space"], dataset, settings, n=k, seed=recipe["sample_seed"],
                                  train_seed=seed, out=Path(folder) / f"seed{seed}.csv",
                                  executor=executor, workers=workers)
            accuracies.append(store.done)
    keys = sorted(accuracies[0])
    first = np.array([accuracies[0][key].accuracy for key in keys])
    second = np.array([accuracies[1][key].accuracy for key in keys])
    click.echo(f"{k} archs, train seeds {seeds[0]} and {seeds[1]}")
    click.echo(f"accuracy (seed {seeds[0]}): min {first.min():.1f} median {np.median(first):.1f} "
               f"max {first.max():.1f} std {first.std():.1f}")
    click.echo(f"mean |difference| between seeds: {np.abs(first - second).mean():.2f} points")
    click.echo(f"Kendall tau: {kendalltau(first, second)[0]:.3f}")
    click.echo(f"Spearman: {spearmanr(first, second)[0]:.3f}")
    learned = (first >= CHANCE_CUTOFF) & (second >= CHANCE_CUTOFF)
    click.echo(f"Spearman of the {learned.sum()} archs above {CHANCE_CUTOFF:.0f}% under both seeds: "
               f"{spearmanr(first[learned], second[learned])[0]:.3f}")


if __name__ == "__main__":
    agreement()
