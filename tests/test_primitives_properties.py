"""Property tests: random valid trees (depth up to 8) never raise, and their text and JSON forms round-trip."""
from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoproxy.spaces import get_space
from autoproxy.statistics import compute_statistics
from primitives.evaluate import Evaluator
from primitives.packed import pack
from primitives.pset import random_tree
from primitives.tree import from_json, parse, to_json, to_string

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _tree(seed: int):
    random.seed(seed)          # ephemeral constants draw from the global random, as DEAP does
    return random_tree(random.Random(seed), 1, 8)


@pytest.fixture(scope="module")
def evaluator():
    torch.manual_seed(0)
    space = get_space("nb201")
    inputs, targets = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    stats = [compute_statistics(space.build(k, width=4, depth=1), inputs, targets, max_channels=4, max_positions=16)
             for k in ("(2, 3, 2, 3, 2, 3)", "(4, 0, 3, 2, 1, 2)")]
    return Evaluator(pack(stats, param_sample=32))


@settings(max_examples=300, deadline=None)
@given(seeds)
def test_text_round_trip(seed):
    tree = _tree(seed)
    assert tree.height <= 8
    assert parse(to_string(tree)) == tree


@settings(max_examples=300, deadline=None)
@given(seeds)
def test_json_round_trip(seed):
    tree = _tree(seed)
    assert from_json(to_json(tree)) == tree


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seeds)
def test_evaluator_never_raises_on_valid_trees(evaluator, seed):
    result = evaluator.evaluate(_tree(seed))
    assert not result.shape_error, result.reason
    assert result.valid == (result.scores is not None)
    if result.valid:
        assert result.scores.shape == (2,) and bool(torch.isfinite(result.scores).all())
