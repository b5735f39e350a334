"""The reference proxies as formulas over :class:`~autoproxy.statistics.NetworkStatistics`.

The same quantities as the direct implementations (the docstrings there give the formulas), for
``split_data=1`` and unsketched statistics; tests hold the two equal to rtol 1e-4.
"""
from __future__ import annotations

from typing import Callable

import torch

from autoproxy.proxies.activation import JACOV_EPSILON
from autoproxy.statistics import NetworkStatistics

NodeTerm = Callable[[dict[str, torch.Tensor], dict[str, float]], torch.Tensor | float]


def _over_nodes(stats: NetworkStatistics, term: NodeTerm) -> float:
    return float(sum(term(node.tensors, node.scalars) for node in stats.nodes))


def _nwot(stats: NetworkStatistics) -> float:
    kernel = sum(node.scalars["input_post_relu"] * node.tensors["relu_kernel"].double() for node in stats.nodes)
    return float(torch.linalg.slogdet(kernel)[1])


def _jacov(stats: NetworkStatistics) -> float:
    correlation = stats.tensors["jacobian_corr"].double()
    if not torch.isfinite(correlation).all():
        return float("nan")
    shifted = torch.linalg.eigvalsh(correlation) + JACOV_EPSILON
    return float(-(shifted.log() + 1.0 / shifted).sum())


FORMULAS: dict[str, Callable[[NetworkStatistics], float]] = {
    "params": lambda s: s.scalars["params"],
    "flops": lambda s: s.scalars["flops"],
    "l2_norm": lambda s: _over_nodes(s, lambda t, c: t["weight"].norm()),
    "grad_norm": lambda s: _over_nodes(s, lambda t, c: t["grad"].norm()),
    "snip": lambda s: _over_nodes(s, lambda t, c: (t["weight"] * t["grad"]).abs().sum()),
    "plain": lambda s: _over_nodes(s, lambda t, c: (t["weight"] * t["grad"]).sum()),
    "grasp": lambda s: _over_nodes(s, lambda t, c: (-t["weight"] * t["hess_grad"]).sum()),
    "fisher": lambda s: _over_nodes(
        s, lambda t, c: c["fan_in"] * 0.5 * (t["act_out"] * t["grad_act_out"]).sum(2).pow(2).mean(0).sum()
    ),
    "synflow": lambda s: _over_nodes(s, lambda t, c: (t["weight"].abs() * t["synflow_grad"]).sum()),
    "nwot": _nwot,
    "jacov": _jacov,
}


def reference_scores(stats: NetworkStatistics) -> dict[str, float]:
    """Every reference proxy's score computed from the statistics alone."""
    return {name: formula(stats) for name, formula in FORMULAS.items()}
