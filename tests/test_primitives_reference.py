"""Expression forms of the known proxies equal the registry's direct implementations."""
from __future__ import annotations

import pytest
import torch

from autoproxy import proxies, statistics
from autoproxy.spaces import get_space
from primitives.evaluate import evaluate
from primitives.packed import pack
from primitives.reference import REFERENCE_EXPRESSIONS, reference_tree

KEYS = ["(2, 3, 2, 3, 2, 3)", "(2, 0, 4, 2, 1, 3)"]


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    space = get_space("nb201")
    nets = [space.build(key, width=4, depth=1) for key in KEYS]
    inputs, targets = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    packed = pack([statistics.compute_statistics(net, inputs, targets) for net in nets])
    return nets, inputs, targets, packed


@pytest.mark.parametrize("name", sorted(REFERENCE_EXPRESSIONS))
def test_expression_form_equals_direct_implementation(name, setting):
    assert name in proxies.reference_names(), f"registry has no direct implementation of {name!r}"
    nets, inputs, targets, packed = setting
    direct = torch.tensor([float(proxies.reference_proxy(name)(net, inputs, targets)) for net in nets])
    result = evaluate(reference_tree(name), packed)
    assert result.valid, result.reason
    torch.testing.assert_close(result.scores.double(), direct.double(), rtol=1e-4, atol=1e-6)
