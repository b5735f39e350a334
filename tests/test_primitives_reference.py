"""Expression forms of the known proxies equal the registry's direct implementations."""
from __future__ import annotations

import pytest
import torch

statistics = pytest.importorskip("autoproxy.statistics")
proxies = pytest.importorskip("autoproxy.proxies")

from autoproxy.spaces import get_space  # noqa: E402
from primitives.evaluate import evaluate  # noqa: E402
from primitives.packed import pack  # noqa: E402
from primitives.reference import REFERENCE_EXPRESSIONS, reference_tree  # noqa: E402

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
    if name not in proxies.list_proxies():
        pytest.skip(f"registry has no direct implementation of {name!r}")
    nets, inputs, targets, packed = setting
    direct = torch.tensor([float(proxies.get_proxy(name)(net, inputs, targets)) for net in nets])
    result = evaluate(reference_tree(name), packed)
    assert result.valid, result.reason
    torch.testing.assert_close(result.scores.double(), direct.double(), rtol=1e-4, atol=1e-6)
