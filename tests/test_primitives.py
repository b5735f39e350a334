"""Typed primitives: text/JSON forms, parser errors, SymPy keys, packing and the evaluator."""
from __future__ import annotations

import json
import random

import pytest
import torch

from autoproxy.errors import ExpressionError
from autoproxy.spaces import get_space
from autoproxy.statistics import compute_statistics
from primitives import types as T
from primitives.evaluate import Evaluator, evaluate
from primitives.fold import fold
from primitives.packed import pack
from primitives.per_node import PerNodeData, evaluate_per_node
from primitives.program import from_program, to_program
from primitives.pset import complexity, random_tree
from primitives.reference import REFERENCE_EXPRESSIONS, reference_tree
from primitives.symbolic import algebraic_key, simplified_latex, simplified_text
from primitives.parse import MAX_DEPTH
from primitives.tree import from_json, parse, to_json, to_string

KEYS = ["(2, 3, 2, 3, 2, 3)", "(2, 0, 4, 2, 1, 3)", "(3, 3, 0, 2, 4, 2)"]


def _stats(sketch: bool):
    torch.manual_seed(0)
    space = get_space("nb201")
    inputs, targets = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    kwargs = {"max_channels": 4, "max_positions": 16} if sketch else {}
    return [compute_statistics(space.build(k, width=4, depth=1), inputs, targets, **kwargs) for k in KEYS]


@pytest.fixture(scope="module")
def exact():
    return _stats(sketch=False)


@pytest.fixture(scope="module")
def sketched():
    return _stats(sketch=True)


def test_text_and_json_round_trip_of_reference_forms():
    for text in REFERENCE_EXPRESSIONS.values():
        tree = parse(text)
        assert to_string(tree) == text
        assert from_json(to_json(tree)) == tree


@pytest.mark.parametrize("text, culprit", [
    ("net_sum(node_sum(abs(mul(weight, gradd))))", "gradd"),
    ("net_sum(frobnicate(weight))", "frobnicate"),
    ("net_sum(weight)", "net_sum"),
    ("net_sum(node_sum(mul(weight, act_out)))", "mul"),
    ("node_sum(weight)", "expected NetScalar"),
    ("weight(grad)", "weight"),
    ("net_sum(node_sum(weight)) extra", "extra"),
    ("net_sum(node_sum(weight)", "end of text"),
    ("__import__('os')", "__import__"),
])
def test_bad_expressions_name_the_culprit(text, culprit):
    with pytest.raises(ExpressionError, match=culprit.replace("(", r"\(")):
        parse(text)


def test_bad_json_is_an_expression_error():
    with pytest.raises(ExpressionError, match="op/leaf/const"):
        from_json({"op": "net_sum", "leaf": "weight"})
    with pytest.raises(ExpressionError, match="unknown primitive 'nope'"):
        from_json({"op": "nope", "args": [{"leaf": "weight"}]})


def nested_abs(depth: int) -> tuple[str, dict]:
    """``net_sum(node_sum(abs(...abs(weight))))`` with ``depth`` nested calls, as text and as JSON
    (built without recursion, so any depth can be made)."""
    names = ["net_sum", "node_sum", *["abs"] * (depth - 2)]
    doc: dict = {"leaf": "weight"}
    for name in reversed(names):
        doc = {"op": name, "args": [doc]}
    return "".join(f"{name}(" for name in names) + "weight" + ")" * depth, doc


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 3000])
def test_too_deep_expressions_are_refused_not_a_recursion_error(depth):
    text, doc = nested_abs(depth)
    with pytest.raises(ExpressionError, match=f"nested deeper than {MAX_DEPTH} calls"):
        parse(text)
    with pytest.raises(ExpressionError, match=f"nested deeper than {MAX_DEPTH} calls"):
        from_json(doc)


def test_the_deepest_allowed_expression_parses_and_folds_in_every_form(exact):
    text, doc = nested_abs(MAX_DEPTH)
    tree = parse(text)
    assert from_json(doc) == tree and to_string(tree) == text and to_json(tree) == doc
    assert complexity(tree) == MAX_DEPTH + 1 and "weight" in algebraic_key(tree)
    pk = pack(exact)
    torch.testing.assert_close(Evaluator(pk).values(tree), evaluate(parse("net_sum(node_l1(weight))"), pk).scores)


def test_fold_refuses_a_sequence_that_is_not_one_tree():
    tree = list(parse("net_sum(node_sum(mul(weight, grad)))"))
    for broken in (tree[:-1], tree + tree[-1:], []):
        with pytest.raises(ValueError, match="not one tree"):
            fold(broken, lambda node: 1, lambda node, args: sum(args))


def test_program_runs_the_same_variants_without_deap(exact):
    pk = pack(exact)
    random.seed(5)
    for tree in [reference_tree("fisher"), *(random_tree(random.Random(seed), 2, 6) for seed in range(20))]:
        program = json.loads(json.dumps(to_program(tree)))
        nodes = from_program(program)
        assert [node.arity for node in nodes] == [node.arity for node in tree]
        torch.testing.assert_close(Evaluator(pk).values(nodes), Evaluator(pk).values(tree), rtol=0, atol=0,
                                   equal_nan=True)


@pytest.mark.parametrize("program, message", [
    ([{"op": "net_sum__NodeScalar"}, {"op": "system__Param"}, {"leaf": "weight"}], "unknown primitive variant"),
    ([{"op": "net_sum__NodeScalar"}, {"op": "node_sum__Param"}, {"leaf": "gradd"}], "unknown statistic"),
    ([{"op": "net_sum__NodeScalar"}, {"op": "node_sum__Param"}, {"leaf": "act_out"}], "ill-typed"),
    ([{"op": "node_sum__Param"}, {"leaf": "weight"}], "expected NetScalar"),
    ([{"op": "net_sum__NodeScalar"}, {"op": "node_sum__Param"}], "not one tree"),
    ([{"op": "net_sum__NodeScalar"}, {"const": 2.0, "type": "NodeScalar"}, {"leaf": "weight"}], "not one tree"),
    ([{"op": "net_sum__NodeScalar"}, {"const": float("inf"), "type": "NodeScalar"}], "finite number"),
    ([{"op": "net_sum__NodeScalar"}, {"const": 1.0, "type": "Param"}], "scalar type"),
    ([{"op": "net_sum__NodeScalar", "code": "print(1)"}, {"const": 1.0, "type": "NodeScalar"}], "primitive variant"),
    ({"op": "net_sum__NodeScalar"}, "list of nodes"),
])
def test_program_refuses_what_to_program_does_not_write(program, message):
    with pytest.raises(ExpressionError, match=message):
        from_program(program)


def test_overloads_resolve_by_argument_type():
    tree = parse("net_sum(add(node_sum(abs(act_in)), node_l2(abs(weight))))")
    names = [node.name for node in tree]
    assert "abs__ActIn" in names and "abs__Param" in names


def test_algebraic_key_merges_algebraic_duplicates_only():
    key = lambda text: algebraic_key(parse(text))
    assert key("net_sum(node_sum(mul(weight, grad)))") == key("net_sum(node_sum(mul(grad, weight)))")
    assert key("net_sum(node_sum(add(grad, grad)))") == key("net_sum(node_sum(mul(grad, 2.0)))")
    assert key("net_sum(node_sum(sqrt(square(grad))))") == key("net_sum(node_sum(abs(grad)))")
    assert key("net_sum(node_sum(mul(weight, grad)))") != key("net_sum(node_sum(mul(weight, hess_grad)))")
    assert simplified_text(parse("net_sum(node_sum(mul(grad, 2.0)))")) == "net_sum(node_sum(2*grad))"
    assert "net" in simplified_latex(reference_tree("fisher"))


def _by_hand(stats, per_node) -> torch.Tensor:
    return torch.tensor([sum(float(per_node(n)) for n in s.nodes) for s in stats])


def test_reference_forms_match_hand_computation(exact):
    pk = pack(exact)
    snip = _by_hand(exact, lambda n: (n.tensors["weight"] * n.tensors["grad"]).abs().sum())
    torch.testing.assert_close(evaluate(reference_tree("snip"), pk).scores, snip, rtol=1e-5, atol=0)
    fisher = _by_hand(exact, lambda n: 0.5 * n.scalars["fan_in"] * (n.tensors["act_out"] * n.tensors["grad_act_out"]).sum(-1)
                      .square().mean(0).sum())
    torch.testing.assert_close(evaluate(reference_tree("fisher"), pk).scores, fisher, rtol=1e-5, atol=0)
    nwot = torch.stack([torch.linalg.slogdet(sum(n.tensors["relu_kernel"] * n.scalars["input_post_relu"]
                                                 for n in s.nodes).double())[1]
                        for s in exact]).float()
    torch.testing.assert_close(evaluate(reference_tree("nwot"), pk).scores, nwot, rtol=1e-5, atol=0)
    jacov = []
    for s in exact:
        v = torch.linalg.eigvalsh(s.tensors["jacobian_corr"].double()) + 1e-5
        jacov.append(float(-(v.log() + 1 / v).sum()))
    torch.testing.assert_close(evaluate(reference_tree("jacov"), pk).scores, torch.tensor(jacov), rtol=1e-4, atol=0)


def test_sketches_are_rescaled_to_true_sizes(sketched):
    """Counting nonzero entries gives the true count even when only a sample is kept."""
    pk = pack(sketched, param_sample=64)
    assert pk.params["weight"].numel() < sum(n.tensors["weight"].numel() for s in sketched for n in s.nodes)
    counted = evaluate(parse("net_sum(node_sum(sign(abs(weight))))"), pk).scores
    true = torch.tensor([sum(n.tensors["weight"].count_nonzero() for n in s.nodes) for s in sketched],
                        dtype=torch.float32)
    torch.testing.assert_close(counted, true, rtol=1e-5, atol=0)
    counted = evaluate(parse("net_sum(node_sum(inv(inv(sign(abs(add(act_out, 1000.0)))))))"), pk).scores
    true = torch.tensor([sum(8 * n.scalars["channels_out_total"] * n.scalars["positions_out_total"]
                             for n in s.nodes) for s in sketched])
    torch.testing.assert_close(counted, true, rtol=1e-5, atol=0)


def test_param_sample_keeps_small_nodes_exact(exact):
    full, sampled = pack(exact), pack(exact, param_sample=10**9)
    tree = reference_tree("snip")
    torch.testing.assert_close(evaluate(tree, full).scores, evaluate(tree, sampled).scores)


def test_vectorised_evaluator_equals_per_node_loop(sketched):
    pk = pack(sketched)
    data, evaluator, rng = PerNodeData(pk), Evaluator(pk), random.Random(3)
    random.seed(3)
    compared = 0
    for _ in range(150):
        tree = random_tree(rng, 2, 6)
        fast, slow = evaluator.evaluate(tree), evaluate_per_node(tree, data)
        assert not fast.shape_error and not slow.shape_error, (fast.reason, slow.reason)
        if fast.valid and slow.valid:
            compared += 1
            scale = float(slow.scores.abs().max())
            torch.testing.assert_close(fast.scores, slow.scores, rtol=1e-3, atol=1e-5 * scale,
                                       msg=lambda m: f"{to_string(tree)}: {m}")
    assert compared > 75


def test_invalid_results_say_why(exact):
    pk = pack(exact)
    assert evaluate(parse("net_mean(mul(0.5, 2.0))"), pk).reason == "constant"
    assert evaluate(parse("div(num_nodes, num_nodes)"), pk).reason == "constant"
    result = evaluate(parse("net_sum(node_sum(square(square(exp(mul(abs(act_out), 1000.0))))))"), pk)
    assert not result.valid and result.reason == "non-finite" and not result.shape_error


def test_node_level_and_typed_parse():
    tree = parse("node_sum(weight)", expected=T.NodeScalar)
    assert tree[0].ret is T.NodeScalar


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(sketched):
    cpu, gpu = pack(sketched), pack(sketched, device="cuda")
    for name in REFERENCE_EXPRESSIONS:
        tree = reference_tree(name)
        torch.testing.assert_close(evaluate(tree, gpu).scores.cpu(), evaluate(tree, cpu).scores, rtol=1e-3, atol=1e-4)


def test_a_tree_sympy_refuses_is_keyed_and_shown_by_its_text():
    """``Max(zoo, x)`` after a symbolic 1/0 makes SymPy raise; a 2-hour soak died on it once."""
    tree = parse("net_sum(node_sum(max(inv(sub(weight, weight)), grad)))")
    assert algebraic_key(tree) == "text:" + to_string(tree)
    assert simplified_text(tree) == to_string(tree)
    assert simplified_latex(tree).startswith(r"\mathtt{net\_sum(")
