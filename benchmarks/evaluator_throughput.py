"""Throughput of the vectorised evaluator against a per-node Python loop (the EZNAS way).

Random valid trees of depth 2-6 on a 128-arch NB201 cifar10 subset: statistics from a cache
(``--cache DIR``) or synthetic ones with the true per-node NB201 shapes (batch 64, activations
sketched to 8 channels x 8 positions as the cache builds them). The evaluator runs on the search-time
sketch (``SEARCH_SKETCH``: param, batch and channel samples) and the per-node loop on the same
sketched pack; the fidelity tables say how far each sketch moves rankings against the exact pack.
Ends with the line
``candidates_per_s=X speedup_vs_per_node_loop=Y shape_errors=Z``.
"""
from __future__ import annotations

import argparse
import random
import statistics as stats_lib
import time

import torch
from scipy.stats import spearmanr
from torch import nn

from autoproxy.benchmark import load_benchmark
from autoproxy.settings import shared_path
from autoproxy.spaces import get_space
from autoproxy.statistics import NetworkStatistics, NodeStatistics
from primitives.evaluate import Evaluator
from primitives.packed import SEARCH_SKETCH, pack
from primitives.per_node import PerNodeData, evaluate_per_node
from primitives.pset import random_tree
from primitives.reference import REFERENCE_EXPRESSIONS, reference_tree

BATCH, SKETCH = 64, 8


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


def synthetic(key: str, generator: torch.Generator) -> NetworkStatistics:
    """Random statistics with the real per-node shapes of ``key`` (values are noise)."""
    shapes = node_shapes(get_space("nb201").build(key))
    nodes = []
    for i, s in enumerate(shapes):
        rand = lambda *shape: torch.randn(*shape, generator=generator)
        act = lambda c, p: rand(BATCH, min(c, SKETCH), min(p, SKETCH))
        cov = rand(s["c_out"], s["c_out"])
        tensors = {name: rand(s["numel"]) for name in ("weight", "grad", "hess_grad", "synflow_grad")}
        tensors["grad_std"] = rand(s["numel"]).abs()
        tensors["grad_abs_mean"] = rand(s["numel"]).abs()
        tensors.update(act_out=act(s["c_out"], s["p_out"]), grad_act_out=act(s["c_out"], s["p_out"]),
                       act_in=act(s["c_in"], s["p_in"]), grad_act_in=act(s["c_in"], s["p_in"]),
                       relu_kernel=rand(BATCH, BATCH).abs() * 100 + torch.eye(BATCH) * 1e4,
                       act_kernel=rand(BATCH, BATCH).abs(), act_cov=cov @ cov.T / s["c_out"])
        scalars = {"params": float(s["numel"]), "flops": float(s["numel"] * s["p_out"]),
                   "depth": i / max(len(shapes) - 1, 1), "fan_in": float(s["fan_in"]),
                   "fan_out": float(s["numel"] // max(s["c_in"], 1)), "channels_out_total": float(s["c_out"]),
                   "positions_out_total": float(s["p_out"]), "channels_in_total": float(s["c_in"]),
                   "positions_in_total": float(s["p_in"]), "input_post_relu": float(i % 2)}
        nodes.append(NodeStatistics(f"node{i}", "conv", tensors, scalars))
    jac = torch.randn(BATCH, 4 * BATCH, generator=generator)
    return NetworkStatistics(nodes, {"jacobian_corr": torch.corrcoef(jac)},
                             {"params": sum(s["numel"] for s in shapes) / 1e6, "flops": 1.0,
                              "jacobian_norm": float(jac.norm()), "num_nodes": float(len(nodes))})


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
    args = parser.parse_args()
    torch.set_num_threads(1)      # setup: many small tensors, threads only contend
    trees_n, loop_n, fidelity_trees = (100, 5, 30) if args.quick else (400, 30, 80)
    if args.quick:
        args.archs = min(args.archs, 32)
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
