"""Throughput of the vectorised evaluator against a per-node Python loop (the EZNAS way).

Random valid trees of depth 2-6 on a 128-arch NB201 cifar10 subset: statistics from a cache
(``--cache DIR``) or synthetic ones with the true per-node NB201 shapes (batch 64, activations
sketched to 8 channels x 8 positions as the cache builds them). The evaluator runs on the search-time
sketch (``SEARCH_SKETCH``: param, batch and channel samples) and the per-node loop on the same
sketched pack; the fidelity tables say how far each sketch moves rankings against the exact pack.
Ends with the line
``candidates_per_s=X speedup_vs_per_node_loop=Y shape_errors=Z``.

    python benchmarks/evaluator_throughput.py [--quick | --smoke] [--cache DIR]
"""
from __future__ import annotations

import argparse
import random
import statistics as stats_lib
import time
from typing import Callable

import torch
from scipy.stats import spearmanr
from torch import nn

from _smoke import SMOKE_HELP
from autoproxy.benchmark import load_benchmark
from autoproxy.settings import shared_path
from autoproxy.spaces import get_space
from autoproxy.statistics import NetworkStatistics, NodeStatistics
from primitives import types as T
from primitives.evaluate import Evaluator
from primitives.leaves import LEAVES, Leaf, leaves_of
from primitives.packed import SEARCH_SKETCH, pack
from primitives.per_node import PerNodeData, evaluate_per_node
from primitives.pset import random_tree
from primitives.reference import REFERENCE_EXPRESSIONS, reference_tree

BATCH, SKETCH = 64, 8
# (archs at most, random trees, trees timed against the per-node loop, trees in the fidelity tables)
RUN_SIZES = {"full": (None, 400, 30, 80), "quick": (32, 100, 5, 30), "smoke": (4, 10, 2, 5)}


def nb201_keys(n: int, seed: int) -> tuple[list[str], dict[str, float]]:
    records = load_benchmark(shared_path("benchmarks", "zc_nasbench201.json"), space="nb201", task="cifar10")
    chosen = random.Random(seed).sample(records, n)
    return [r.key for r in chosen], {r.key: r.accuracy for r in chosen}


def node_shapes(model: nn.Module) -> list[dict]:
    """Per conv/linear node: weight size and (C, P) of its input and output, from one forward."""
    found: list[dict] = []

    def hook(module, args, output):
        a_in, a_out = args[0], output
        found.append({"numel": module.weight.numel(), "fan_in": module.weight[0].numel(),
                      "c_in": a_in.shape[1], "p_in": a_in[0, 0].numel(),
                      "c_out": a_out.shape[1], "p_out": a_out[0, 0].numel()})

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 32, 32))
    for h in handles:
        h.remove()
    return found


LEAF_SHAPES: dict[type, Callable[[dict], tuple[int, ...]]] = {   # stored shape, from a node's sizes
    T.Param: lambda s: (s["numel"],),
    T.ActOut: lambda s: (BATCH, min(s["c_out"], SKETCH), min(s["p_out"], SKETCH)),
    T.ActIn: lambda s: (BATCH, min(s["c_in"], SKETCH), min(s["p_in"], SKETCH)),
    T.Kernel: lambda s: (BATCH, BATCH),
    T.ChanMatrix: lambda s: (s["c_out"], s["c_out"]),
    T.NetKernel: lambda s: (BATCH, BATCH),
}
MATRIX_CLASSES = (T.Kernel, T.ChanMatrix, T.NetKernel)


def noise(leaf: Leaf, sizes: dict, generator: torch.Generator) -> torch.Tensor:
    """Normal noise in the leaf's stored shape; matrices are Gram matrices (symmetric positive definite,
    as kernels and covariances are, so that logdet and eigenvalues are defined)."""
    shape = LEAF_SHAPES[leaf.type](sizes)
    if leaf.type in MATRIX_CLASSES:
        x = torch.randn(shape[0], 4 * shape[0], generator=generator)
        return x @ x.T / x.shape[1]
    return torch.randn(*shape, generator=generator)


def noise_scalars(leaves: list[Leaf], true: dict[str, float], generator: torch.Generator) -> dict[str, float]:
    """Every scalar leaf: its true value where known, else noise."""
    return {leaf.key: true[leaf.key] if leaf.key in true else float(torch.randn((), generator=generator))
            for leaf in leaves}


def node_sizes(i: int, s: dict, nodes: int) -> dict[str, float]:
    """A node's size scalars, true to its shapes (the evaluator rescales sketched sums by them)."""
    return {"params": float(s["numel"]), "flops": float(s["numel"] * s["p_out"]), "depth": i / max(nodes - 1, 1),
            "fan_in": float(s["fan_in"]), "fan_out": float(s["numel"] // max(s["c_in"], 1)),
            "channels_out_total": float(s["c_out"]), "positions_out_total": float(s["p_out"]),
            "channels_in_total": float(s["c_in"]), "positions_in_total": float(s["p_in"])}


def synthetic(key: str, generator: torch.Generator) -> NetworkStatistics:
    """Noise for every leaf of the expression language, in the stored shapes of ``key``'s real NB201
    nodes. The leaves come from ``primitives.leaves.LEAVES``, the table ``pack`` reads, so a new
    statistic cannot be missing here (a hand-written list once fell behind ``synflow_log_scale``)."""
    shapes = node_shapes(get_space("nb201").build(key))
    tensor_leaves = {level: [leaf for leaf in LEAVES if leaf.type.level == level
                             and leaf.type not in (T.NodeScalar, T.NetScalar)] for level in ("node", "network")}
    nodes = [NodeStatistics(f"node{i}", "conv", {leaf.key: noise(leaf, s, generator) for leaf in tensor_leaves["node"]},
                            noise_scalars(leaves_of(T.NodeScalar), node_sizes(i, s, len(shapes)), generator))
             for i, s in enumerate(shapes)]
    net_sizes = {"params": sum(s["numel"] for s in shapes) / 1e6,
                 "flops": sum(s["numel"] * s["p_out"] for s in shapes) / 1e6, "num_nodes": float(len(shapes))}
    return NetworkStatistics(nodes, {leaf.key: noise(leaf, {}, generator) for leaf in tensor_leaves["network"]},
                             noise_scalars(leaves_of(T.NetScalar), net_sizes, generator))


def rho(a: torch.Tensor, b) -> float:
    return float(spearmanr(a.double().cpu().numpy(), torch.as_tensor(b).double().numpy())[0])


def load_statistics(args) -> tuple[list[str], dict[str, float], list[NetworkStatistics], str]:
    """Statistics of the archs, from the cache when given (as many archs as it holds, up to --archs)."""
    if args.cache:
        from autoproxy.cache import open_cache
        cache = open_cache(args.cache)
        keys = cache.subset(min(args.archs, len(cache)), args.seed)
        return keys, cache.accuracy, cache.load(keys), f"cache {args.cache}"
    keys, accuracy = nb201_keys(args.archs, args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    return keys, accuracy, [synthetic(k, generator) for k in keys], "synthetic statistics with real NB201 shapes"


def exact_results(exact, trees) -> tuple[dict, list]:
    """Exact-pack results of the reference proxies and the trees, computed once for every sketch."""
    evaluator = Evaluator(exact)
    return ({proxy: evaluator.evaluate(reference_tree(proxy)) for proxy in REFERENCE_EXPRESSIONS},
            [evaluator.evaluate(tree) for tree in trees])


def fidelity(name: str, exact: tuple[dict, list], sketched, trees, acc: list[float] | None) -> None:
    """How far a sketch moves rankings: rho(exact, sketched) per reference proxy and over random trees,
    and each reference proxy's rho with accuracy, exact -> sketched."""
    references, exact_trees = exact
    sketch_eval = Evaluator(sketched)
    print(f"fidelity of sketch {name}:")
    for proxy, e in references.items():
        s = sketch_eval.evaluate(reference_tree(proxy))
        if not (e.valid and s.valid):
            print(f"  {proxy:10s} invalid: exact {e.reason}, sketched {s.reason}")
            continue
        line = f"  {proxy:10s} rho(exact, sketched)={rho(e.scores, s.scores):+.3f}"
        if acc is not None:
            line += f"  rho_acc exact={rho(e.scores, acc):+.3f} sketched={rho(s.scores, acc):+.3f}"
        print(line)
    moved, flipped = [], 0
    for tree, e in zip(trees, exact_trees):
        s = sketch_eval.evaluate(tree)
        flipped += e.valid != s.valid
        if e.valid and s.valid:
            moved.append(rho(e.scores, s.scores))
    moved = [m for m in moved if m == m]
    if moved:
        print(f"  random valid trees: median rho(exact, sketched)={stats_lib.median(moved):.3f}, "
              f"10th percentile={sorted(moved)[len(moved) // 10]:.3f}, n={len(moved)}, "
              f"validity differs for {flipped}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 archs, fewer trees, one fidelity table (< 1 min)")
    parser.add_argument("--cache", help="statistics cache directory (default: synthetic statistics)")
    parser.add_argument("--archs", type=int, default=128)
    for name, size in SEARCH_SKETCH.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=size,
                            help=f"search-time sketch, see primitives.packed (default {size}; 0: exact)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    torch.set_num_threads(1)      # setup: many small tensors, threads only contend
    max_archs, trees_n, loop_n, fidelity_trees = RUN_SIZES["smoke" if args.smoke else "quick" if args.quick else "full"]
    args.archs = min(args.archs, max_archs or args.archs)
    args.threads = 1 if args.smoke else args.threads
    sketch = {name: getattr(args, name) or None for name in SEARCH_SKETCH}

    t0 = time.perf_counter()
    keys, accuracy, data, source = load_statistics(args)
    exact = pack(data, args.device)
    sampled = pack(data, args.device, **sketch, seed=args.seed)
    singles = {} if args.quick else {name: pack(data, args.device, **{name: size}, seed=args.seed)
                                     for name, size in sketch.items() if size}
    del data
    per_node_data = PerNodeData(sampled)
    print(f"{len(keys)} archs ({source}), {exact.num_nodes} nodes; packed {exact.nbytes() / 1e9:.2f} GB exact, "
          f"{sampled.nbytes() / 1e6:.1f} MB sketched {sketch}; setup {time.perf_counter() - t0:.1f} s")

    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    random.seed(args.seed)
    trees = [random_tree(rng, 2, 6) for _ in range(trees_n)]
    shape_errors = 0

    evaluator = Evaluator(sampled)
    t0 = time.perf_counter()
    results = evaluator.evaluate_many(trees)
    batch_s = time.perf_counter() - t0
    shape_errors += sum(r.shape_error for r in results)
    per_s = trees_n / batch_s
    print(f"vectorised, memoised, sketched: {trees_n} trees in {batch_s:.2f} s = {per_s:.1f} candidates/s "
          f"({sum(r.valid for r in results)} valid), {args.threads} threads on {args.device}")

    loop_trees = trees[:loop_n]
    plain = Evaluator(sampled, memo_bytes=0)
    t0 = time.perf_counter()
    fast = [plain.evaluate(t) for t in loop_trees]
    fast_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = [evaluate_per_node(t, per_node_data) for t in loop_trees]
    slow_s = time.perf_counter() - t0
    shape_errors += sum(r.shape_error for r in fast + slow)
    speedup = slow_s / fast_s
    print(f"same {loop_n} trees, same sketched pack: vectorised (no memo) {fast_s:.2f} s, "
          f"per-node loop {slow_s:.2f} s, speedup {speedup:.1f}x")

    acc = [accuracy[k] for k in keys] if args.cache else None
    fidelity_set = trees[:fidelity_trees]
    exact_done = exact_results(exact, fidelity_set)
    shape_errors += sum(r.shape_error for r in [*exact_done[0].values(), *exact_done[1]])
    for name, single in singles.items():
        fidelity(f"{name}={sketch[name]} alone", exact_done, single, fidelity_set, acc)
    fidelity(f"{sketch} (search default)", exact_done, sampled, fidelity_set, acc)
    print(f"candidates_per_s={per_s:.1f} speedup_vs_per_node_loop={speedup:.1f} shape_errors={shape_errors}")


if __name__ == "__main__":
    main()
