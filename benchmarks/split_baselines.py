"""Trivial baselines (params, FLOPs, depth) and every reference proxy on a config's test split: the
split the search's final report uses, so a discovered formula is read beside what it must beat
(NAS-Bench-Zero: on ResNet/MobileNet spaces params and FLOPs are hard to beat).

    python benchmarks/split_baselines.py --config mbnet-digits --cache builtin:mbnet-digits
    python benchmarks/split_baselines.py --smoke     # a tiny cache built on the fly
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _smoke import SMOKE_HELP, tiny_cache
from search import expressions
from search.config import load_config
from search.tasks import load_task
from search_quality import correlations

BASELINES = {"params": "net_params", "flops": "net_flops", "depth (num_nodes)": "num_nodes"}


def report(cache: str, config_name: str) -> None:
    config = load_config(config_name)
    task = load_task(cache, 0, config.split_fractions, config.splits_seed, pack_train=False)
    scorer, accuracy = task.scorer("test"), task.accuracy_of("test")
    print(f"{config_name}: test split of {len(accuracy)} archs (split seed {config.splits_seed}), cache {cache}")
    sketched = task.cache.manifest.settings.sketched
    print(f"{'proxy':22s} {'spearman':>9s} {'kendall':>9s}")
    for name, text in {**BASELINES, **expressions.reference_expressions()}.items():
        rho, tau = correlations(text, scorer, accuracy)
        estimate = "  (from the cache's activation sketch: an estimate)" if (
            sketched and expressions.reads_sketched_activations(text)) else ""
        print(f"{name:22s} {rho:+9.4f} {tau:+9.4f}{estimate}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", help="the config's cache (a directory or builtin:NAME; required unless --smoke)")
    parser.add_argument("--config", default="nb201-digits", help="named config or file: its split and seed")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="split-baselines-smoke-") as folder:
            report(str(tiny_cache(Path(folder))), args.config)
    elif args.cache is None:
        parser.error("--cache is required")
    else:
        report(args.cache, args.config)


if __name__ == "__main__":
    main()
