"""How good is what the search finds? Per seed: run a time-boxed search, then report the winner's
test-split Spearman and Kendall, its formula, its Spearman on transfer caches (no new search), and
the reference nwot on the same test split.

    python benchmarks/search_quality.py --cache caches/nb201-cifar10 --minutes 30 --seeds 0 1 2 \\
        --transfer-cache caches/nb201-cifar100 --transfer-cache caches/nb101-cifar10
    python benchmarks/search_quality.py --smoke     # a 2-generation search on a tiny cache built on the fly
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from _smoke import SMOKE_HELP, SMOKE_SEARCH, tiny_cache
from search import expressions
from search.config import SearchConfig, load_config
from search.fitness import kendall_tau, spearman_rho
from search.runner import run_search
from search.tasks import load_task


def correlations(text: str, scorer, accuracy: np.ndarray) -> tuple[float, float]:
    """(Spearman, Kendall) of a formula, archs where it is undefined ranked last; nan if undefined everywhere."""
    scores = expressions.report_scores(expressions.parse(text), scorer)
    if scores is None:
        return float("nan"), float("nan")
    return float(spearman_rho(scores, accuracy)), float(kendall_tau(scores, accuracy))


def whole_cache(directory: str):
    from autoproxy.cache import open_cache

    cache = open_cache(directory)
    keys = list(cache.keys)
    accuracy = np.array([cache.accuracy[key] for key in keys])
    return expressions.evaluator(expressions.pack(cache.load(keys))), accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", help="the cache to search (required unless --smoke)")
    parser.add_argument("--config", default="nb201-cifar10")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--transfer-cache", action="append", default=[])
    parser.add_argument("--executor", choices=["ray", "serial"], default="ray")
    parser.add_argument("--out", default=None, help="Run folder (default: a temporary one).")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        smoke(args)
    elif args.cache is None:
        parser.error("--cache is required")
    else:
        report(args, load_config(args.config))


def smoke(args: argparse.Namespace) -> None:
    """One seed's short serial search on a tiny cache (unless one is given), which is also its transfer cache."""
    with tempfile.TemporaryDirectory(prefix="search-quality-smoke-") as folder:
        args.cache = args.cache or str(tiny_cache(Path(folder)))
        args.transfer_cache = args.transfer_cache or [args.cache]
        args.seeds, args.executor, args.out = args.seeds[:1], "serial", args.out or folder
        report(args, load_config(args.config).replace(**SMOKE_SEARCH))


def report(args: argparse.Namespace, base: SearchConfig) -> None:
    """Per seed: a time-boxed search from ``base``, then the winner's test and transfer figures."""
    transfers = {Path(d).name: whole_cache(d) for d in args.transfer_cache}
    reference = expressions.reference_expressions().get("nwot")
    out = Path(args.out or tempfile.mkdtemp(prefix="search-quality-"))
    for seed in args.seeds:
        config = base.replace(caches=[args.cache], seed=seed, generations=None,
                              time_budget_s=args.minutes * 60, executor=args.executor)
        outcome = run_search(config, out / f"seed{seed}", progress=False)
        chosen = outcome.result["chosen"] if outcome.result else None
        if chosen is None:
            print(f"seed {seed}: no valid formula ({outcome.stop_reason})")
            continue
        task = load_task(args.cache, 0, config.split_fractions, seed)
        test_accuracy = task.accuracy_of("test")
        rho, tau = correlations(chosen["expression"], task.scorer("test"), test_accuracy)
        print(f"seed {seed}: {outcome.generation} generations, {outcome.result['evaluated']} formulas")
        print(f"  formula: {chosen['simplified']}")
        print(f"  test spearman {rho:.4f}  kendall {tau:.4f}")
        if reference is not None:
            ref_rho, ref_tau = correlations(reference, task.scorer("test"), test_accuracy)
            print(f"  nwot on the same test split: spearman {ref_rho:.4f}  kendall {ref_tau:.4f}")
        for name, (scorer, accuracy) in transfers.items():
            print(f"  transfer {name}: spearman {correlations(chosen['expression'], scorer, accuracy)[0]:.4f}")


if __name__ == "__main__":
    main()
