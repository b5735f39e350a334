"""Throughput of the vectorised evaluator against a per-node Python loop (the EZNAS way).

Random valid trees of depth 2-6 on a 128-arch NB201 cifar10 subset: statistics from a cache
(``--cache DIR``) or synthetic ones with the true per-node NB201 shapes (batch 64, activations
sketched to 8 channels x 8 positions as the cache builds them). Also reports how far the
search-time parameter sketch (``--param-sample``) moves rankings. Ends with the line
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
from primitives.packed import pack
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 archs, 20 trees (about a minute)")
    parser.add_argument("--cache", help="statistics cache directory (default: synthetic statistics)")
    parser.add_argument("--archs", type=int, default=128)
    parser.add_argument("--param-sample", type=int, default=256, help="entries kept per node per param statistic")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)      # setup: many small forwards, threads only contend
    trees_n, loop_n = (20, 3) if args.quick else (200, 10)
    if args.quick:
        args.archs = min(args.archs, 32)

    t0 = time.perf_counter()
    if args.cache:
        from autoproxy.cache import open_cache
        cache = open_cache(args.cache)
        keys = cache.subset(args.archs, args.seed)
        accuracy = cache.accuracy
        data = cache.load(keys)
    else:
        keys, accuracy = nb201_keys(args.archs, args.seed)
        generator = torch.Generator().manual_seed(args.seed)
        data = [synthetic(k, generator) for k in keys]
    exact = pack(data, args.device)
    sampled = pack(data, args.device, param_sample=args.param_sample, seed=args.seed)
    del data
    print(f"{len(keys)} archs, {exact.num_nodes} nodes; param entries {exact.params['weight'].numel():,} exact, "
          f"{sampled.params['weight'].numel():,} sampled (S={args.param_sample}); "
          f"packed {exact.nbytes() / 1e9:.2f} GB exact, {sampled.nbytes() / 1e9:.2f} GB sampled; "
          f"setup {time.perf_counter() - t0:.1f} s")

    torch.set_num_threads(2)
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
    print(f"vectorised, memoised: {trees_n} trees in {batch_s:.2f} s = {per_s:.1f} candidates/s "
          f"({sum(r.valid for r in results)} valid)")

    loop_trees = trees[:loop_n]
    plain = Evaluator(sampled, memo_bytes=0)
    t0 = time.perf_counter()
    fast = [plain.evaluate(t) for t in loop_trees]
    fast_s = time.perf_counter() - t0
    per_node_data = PerNodeData(sampled)
    t0 = time.perf_counter()
    slow = [evaluate_per_node(t, per_node_data) for t in loop_trees]
    slow_s = time.perf_counter() - t0
    shape_errors += sum(r.shape_error for r in fast + slow)
    speedup = slow_s / fast_s
    print(f"same {loop_n} trees: vectorised (no memo) {fast_s:.2f} s, per-node loop {slow_s:.2f} s, "
          f"speedup {speedup:.1f}x")

    print("fidelity of the param sketch (Spearman rho between exact and sampled scores; rho vs accuracy):")
    acc = [accuracy[k] for k in keys]
    moved = []
    for name in REFERENCE_EXPRESSIONS:
        e, s = Evaluator(exact, 0).evaluate(reference_tree(name)), Evaluator(sampled, 0).evaluate(reference_tree(name))
        if e.valid and s.valid:
            line = f"  {name:10s} rho(exact, sampled)={rho(e.scores, s.scores):+.3f}"
            if args.cache:
                line += f"  rho_acc exact={rho(e.scores, acc):+.3f} sampled={rho(s.scores, acc):+.3f}"
            print(line)
    exact_eval = Evaluator(exact)
    for tree, r in zip(trees, results):
        e = exact_eval.evaluate(tree)
        shape_errors += e.shape_error
        if e.valid and r.valid:
            moved.append(rho(e.scores, r.scores))
    if moved:
        print(f"  random valid trees: median rho(exact, sampled)={stats_lib.median(moved):.3f}, "
              f"10th percentile={sorted(moved)[len(moved) // 10]:.3f}, n={len(moved)}")
    print(f"candidates_per_s={per_s:.1f} speedup_vs_per_node_loop={speedup:.1f} shape_errors={shape_errors}")


if __name__ == "__main__":
    main()
