"""Search-time sketches of ``pack``: sampled batch and channels are rescaled to true sizes, kernels are
principal submatrices (so ``net_ksum`` commutes with the sketch), and the (N, S) row layout of sampled
param statistics gives what the segment layout gives."""
from __future__ import annotations

from dataclasses import replace
from itertools import combinations

import pytest
import torch

from autoproxy.errors import CacheError
from autoproxy.spaces import get_space
from autoproxy.statistics import compute_statistics
from primitives.evaluate import evaluate
from primitives.packed import pack
from primitives.tree import parse

KEYS = ["(2, 3, 2, 3, 2, 3)", "(2, 0, 4, 2, 1, 3)"]
BATCH = 8


@pytest.fixture(scope="module")
def stats():
    torch.manual_seed(0)
    space = get_space("nb201")
    inputs, targets = torch.randn(BATCH, 3, 32, 32), torch.randint(0, 10, (BATCH,))
    return [compute_statistics(space.build(k, width=4, depth=1), inputs, targets, max_channels=4, max_positions=16)
            for k in KEYS]


def _per_arch(stats, per_node) -> torch.Tensor:
    return torch.tensor([sum(float(per_node(n)) for n in s.nodes) for s in stats])


def test_sampled_batch_and_channels_count_true_sizes(stats):
    pk = pack(stats, batch_sample=3, channel_sample=2)
    assert pk.batch == 3 and pk.kernels["act_kernel"].shape[1:] == (3, 3)
    ones = "sign(abs(add({}, 1000.0)))"
    counted = evaluate(parse(f"net_sum(node_sum({ones.format('act_out')}))"), pk).scores
    true = _per_arch(stats, lambda n: BATCH * n.scalars["channels_out_total"] * n.scalars["positions_out_total"])
    torch.testing.assert_close(counted, true, rtol=1e-5, atol=0)
    traced = evaluate(parse(f"net_sum(trace({ones.format('act_cov')}))"), pk).scores
    torch.testing.assert_close(traced, _per_arch(stats, lambda n: n.scalars["channels_out_total"]), rtol=1e-5, atol=0)
    traced = evaluate(parse(f"net_sum(trace({ones.format('act_kernel')}))"), pk).scores
    torch.testing.assert_close(traced, _per_arch(stats, lambda n: BATCH), rtol=1e-5, atol=0)


def test_sampled_kernels_are_principal_submatrices(stats):
    full, sketched = pack(stats), pack(stats, batch_sample=5, seed=3)
    index = next(torch.tensor(idx) for idx in _subsets(BATCH, 5)
                 if torch.equal(full.kernels["act_kernel"][:, idx][:, :, idx], sketched.kernels["act_kernel"]))
    sums = torch.stack([sum(n.tensors["relu_kernel"] * n.scalars["input_post_relu"] for n in s.nodes) for s in stats])
    nwot = torch.linalg.slogdet(sums[:, index][:, :, index].double())[1].float()
    torch.testing.assert_close(evaluate(parse("logdet(net_ksum(mul(relu_kernel, input_post_relu)))"), sketched).scores,
                               nwot, rtol=1e-5, atol=0)


def _subsets(n: int, k: int):
    return (list(c) for c in combinations(range(n), k))


ROW_PATHS = [f"net_sum(node_{kind}(mul(weight, grad)))" for kind in ("sum", "mean", "std", "l1", "l2")] + [
    "net_sum(node_std(standardise(grad)))", "net_sum(node_sum(normalise(hess_grad)))",
    "net_sum(node_l1(div(grad, fan_in)))", "net_mean(node_sum(sub(weight, depth)))",
]


@pytest.mark.parametrize("text", ROW_PATHS)
def test_param_rows_layout_equals_segment_layout(stats, text):
    pk = pack(stats, param_sample=16)
    assert pk.param_width == 16
    rows, segments = evaluate(parse(text), pk), evaluate(parse(text), replace(pk, param_width=None))
    assert rows.valid and segments.valid, (rows.reason, segments.reason)
    torch.testing.assert_close(rows.scores, segments.scores, rtol=1e-5, atol=0)


def test_bad_sample_size_is_a_cache_error(stats):
    with pytest.raises(CacheError, match="batch_sample"):
        pack(stats, batch_sample=0)
