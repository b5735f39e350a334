"""The unified proxy registry, its safety against code in files, the Python API, and the torch-only
interpreter that exported modules carry (held equal to the engine's evaluator)."""
from __future__ import annotations

import importlib.metadata
import json
import math
import random

import pytest
import torch

import autoproxy
from autoproxy.expression_proxy import expression_score
from autoproxy.proxy_runtime import (NETWORK_SCALAR_LEAVES, NETWORK_TENSOR_LEAVES, NODE_SCALAR_LEAVES,
                                     NODE_TENSOR_LEAVES, RUNTIME_OPS, evaluate_expression)
from autoproxy.registry import (ENTRY_POINT_GROUP, REGISTRY_ENV, RegistryError, all_proxies, get_proxy,
                                proxy_document, save_proxy)
from autoproxy.spaces import get_space
from autoproxy.statistics import compute_statistics
from primitives import types as T
from primitives.catalog import NAMES
from primitives.leaves import LEAVES
from primitives.evaluate import Evaluator
from primitives.packed import pack
from primitives.pset import random_tree
from primitives.reference import REFERENCE_EXPRESSIONS, reference_tree
from primitives.tree import node_label, parse, to_json

# A document a third-party package could ship through the entry-point group (see the entry-point test).
THIRD_PARTY_DOC = proxy_document("third_party", parse("net_sum(node_l2(grad_std))"))


@pytest.fixture(autouse=True)
def registry(tmp_path, monkeypatch):
    directory = tmp_path / "registry"
    monkeypatch.setenv(REGISTRY_ENV, str(directory))
    return directory


@pytest.fixture(scope="module")
def net_and_batch():
    torch.manual_seed(0)
    net = get_space("nb201").build("(2, 3, 0, 4, 2, 3)", num_classes=10, width=4, depth=1)
    generator = torch.Generator().manual_seed(1)
    return net, torch.randn(8, 3, 32, 32, generator=generator), torch.randint(0, 10, (8,), generator=generator)


@pytest.fixture(scope="module")
def statistics(net_and_batch):
    net, inputs, targets = net_and_batch
    return compute_statistics(net, inputs, targets, sub_batches=4)


def test_runtime_knows_every_leaf_and_primitive():
    node_leaves = {leaf.name for leaf in LEAVES if leaf.type.level == "node"}
    assert node_leaves == NODE_TENSOR_LEAVES | NODE_SCALAR_LEAVES
    assert {leaf.name for leaf in LEAVES if leaf.type is T.NodeScalar} == NODE_SCALAR_LEAVES
    assert {leaf.name: leaf.key for leaf in LEAVES if leaf.type.level == "network"} == \
        {**NETWORK_TENSOR_LEAVES, **NETWORK_SCALAR_LEAVES}
    assert NAMES == RUNTIME_OPS


def _agree(engine: float, runtime: float) -> bool:
    if math.isnan(engine) or math.isnan(runtime):
        return math.isnan(engine) and math.isnan(runtime)
    return engine == runtime or math.isclose(engine, runtime, rel_tol=1e-4, abs_tol=1e-6)


def test_runtime_equals_engine_on_reference_and_random_expressions(statistics):
    engine = Evaluator(pack([statistics]), memo_bytes=0)
    for name in REFERENCE_EXPRESSIONS:
        tree = reference_tree(name)
        assert _agree(float(engine.values(tree)[0]), evaluate_expression(to_json(tree), statistics)), name
    trees = [random_tree(random.Random(seed), 1, 6) for seed in range(400)]
    agreeing, covered = 0, set()
    for tree in trees:
        if _agree(float(engine.values(tree)[0]), evaluate_expression(to_json(tree), statistics)):
            agreeing += 1
            covered |= {node_label(node) for node in tree if node.arity > 0}
    # a few random formulas divide by float32 cancellation noise (e.g. the mean of a Hessian-gradient
    # that is zero in exact arithmetic), where any two summation orders differ; everything else agrees
    assert agreeing >= 0.99 * len(trees)
    assert covered == NAMES


def test_registry_round_trip(registry, net_and_batch):
    net, inputs, targets = net_and_batch
    tree = parse("net_sum(node_sum(abs(mul(weight, grad_abs_mean))))")
    path = save_proxy(proxy_document("my_proxy", tree, source={"run": "runs/x"}))
    assert path == registry / "my_proxy.json"
    proxy = get_proxy("my_proxy")
    assert proxy.kind == "expression" and proxy.expression == "net_sum(node_sum(abs(mul(weight, grad_abs_mean))))"
    assert proxy.document["source"] == {"run": "runs/x"}
    assert get_proxy(str(path)).expression == proxy.expression
    assert "my_proxy" in autoproxy.list_proxies() and "nwot" in autoproxy.list_proxies()
    assert autoproxy.load_proxy("my_proxy").expression == proxy.expression
    expected = expression_score(tree, net, inputs, targets)
    assert autoproxy.score(net, inputs, targets, proxy="my_proxy") == expected
    with pytest.raises(RegistryError, match="exists"):
        save_proxy(proxy_document("my_proxy", tree))


def test_builtin_proxies_are_in_the_same_registry(net_and_batch):
    from autoproxy.proxies import get_proxy as direct

    net, inputs, targets = net_and_batch
    assert autoproxy.score(net, inputs, targets, proxy="snip") == direct("snip")(net, inputs, targets)
    assert all_proxies()["params"].origin == "built-in"
    with pytest.raises(RegistryError, match="built-in"):
        save_proxy(proxy_document("snip", reference_tree("snip")))


def test_reference_expression_matches_direct_proxy_through_the_registry(registry, net_and_batch):
    net, inputs, targets = net_and_batch
    save_proxy(proxy_document("expr_snip", reference_tree("snip")))
    assert math.isclose(autoproxy.score(net, inputs, targets, proxy="expr_snip"),
                        autoproxy.score(net, inputs, targets, proxy="snip"), rel_tol=1e-4)


@pytest.mark.parametrize("content, message", [
    ("import os\nos.system('echo pwned')\n", "not JSON"),
    ('__import__("os").system("echo pwned")', "not JSON"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "expression": "__import__('os').system('echo pwned')"}),
     "refused"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "expression": "net_sum(node_sum(exec(weight)))"}), "refused"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "tree": {"op": "system", "args": [{"leaf": "weight"}]}}),
     "refused"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "tree": to_json(reference_tree("snip"))}), "disagree"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "evil", "code": "print(1)"}), "unknown fields"),
    (json.dumps({**THIRD_PARTY_DOC, "name": "../evil"}), "invalid proxy name"),
])
def test_files_holding_code_or_unknown_names_are_refused(registry, content, message):
    registry.mkdir(parents=True)
    (registry / "evil.json").write_text(content)
    with pytest.raises(RegistryError, match=message) as caught:
        get_proxy("evil")
    assert "evil.json" in str(caught.value)
    with pytest.raises(RegistryError):
        autoproxy.list_proxies()


def test_unknown_name_lists_what_is_known():
    with pytest.raises(RegistryError, match="unknown proxy 'nope'.*nwot"):
        get_proxy("nope")


def test_entry_point_proxies(monkeypatch, net_and_batch):
    net, inputs, targets = net_and_batch
    points = [importlib.metadata.EntryPoint("third_party", "test_registry:THIRD_PARTY_DOC", ENTRY_POINT_GROUP),
              importlib.metadata.EntryPoint("their_fn", "autoproxy.proxies.gradient:snip", ENTRY_POINT_GROUP)]
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: points if kw.get("group") == ENTRY_POINT_GROUP else real(**kw))
    assert {"third_party", "their_fn"} <= set(autoproxy.list_proxies())
    assert get_proxy("third_party").kind == "expression"
    assert autoproxy.score(net, inputs, targets, proxy="their_fn") == autoproxy.score(net, inputs, targets, proxy="snip")
