"""Reference proxies: registry, sanity and determinism (their agreement with the expression forms over
the statistics is tested in test_primitives_reference.py)."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from autoproxy.errors import UnknownProxyError
from autoproxy.proxies import reference_names, reference_proxy

pytestmark = pytest.mark.usefixtures("one_torch_thread_per_module")
REFERENCE = ["flops", "fisher", "grad_norm", "grasp", "jacov", "l2_norm", "meco", "nwot", "params", "plain", "snip",
             "synflow", "zico"]


def tiny_net(batch_norm: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4) if batch_norm else nn.Identity(),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    )


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 6, 6, generator=generator), torch.randint(0, 5, (8,), generator=generator)


def test_registry_lists_reference_proxies_and_rejects_unknown():
    assert set(REFERENCE) <= set(reference_names())
    with pytest.raises(UnknownProxyError, match="nope"):
        reference_proxy("nope")


@pytest.mark.parametrize("name", REFERENCE)
def test_proxy_is_finite_deterministic_and_leaves_net_alone(name, batch):
    net = tiny_net().eval()
    before = copy.deepcopy(net.state_dict())
    score = reference_proxy(name)(net, *batch)
    assert math.isfinite(score)
    assert score == reference_proxy(name)(net, *batch)
    assert not net.training and all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("name", REFERENCE)
def test_split_data_weights_chunks_by_their_share(name, batch):
    """Each chunk's mean loss is weighted by its share of the batch, so the value is the whole batch's
    (zero-cost-nas sums unweighted chunk losses: twice the gradient for two chunks)."""
    net = tiny_net(batch_norm=False)
    whole = reference_proxy(name)(net, *batch)
    assert reference_proxy(name)(net, *batch, split_data=2) == pytest.approx(whole, rel=1e-5)
    assert reference_proxy(name)(net, *batch, split_data=3) == pytest.approx(whole, rel=1e-5)


def test_known_values_on_a_linear_model():
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[3.0, -4.0]]))
    inputs, targets = torch.ones(2, 1, 1, 2), torch.zeros(2, dtype=torch.long)
    assert reference_proxy("l2_norm")(net, inputs, targets) == pytest.approx(5.0)
    assert reference_proxy("params")(net, inputs, targets) == pytest.approx(2e-6)
    assert reference_proxy("synflow")(net, inputs, targets) == pytest.approx(math.log(7.0))  # ln Σ |w| · 1
    # a single logit: cross-entropy is constant, so every gradient vanishes
    assert reference_proxy("snip")(net, inputs, targets) == 0.0
