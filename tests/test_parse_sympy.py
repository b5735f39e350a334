"""Formulas as ``simplified_text`` prints them parse back: grammar, the inverse of the catalog's SymPy
forms, refused forms, depth limits, and the property that the parsed tree has the printed tree's values."""
from __future__ import annotations

import random

import pytest
import torch
from click.testing import CliRunner

from autoproxy.errors import ExpressionError
from primitives.parse import MAX_DEPTH, parse
from primitives.tree import to_string
from search_support import tiny_cache

ISSUE_FORMULAS = [
    "net_sum(eig_min(corr(act_cov)))*net_sum(node_sum(normalise(Max(0, normalise(grad_act_in**2)))"
    " + sign(grad_act_in)))**2",
    "jacobian_norm*net_sum(node_sum(sqrt(Abs(grad))))/net_mean(node_sum(grad**4))",
    "sqrt(Abs(net_depth_sum(spec_entropy(act_cov))/net_max(node_std(sqrt(Abs(hess_grad))))))",
]


@pytest.fixture(scope="module")
def cache_dir(request) -> str:
    return tiny_cache(request)


@pytest.mark.parametrize("text, prefix", [
    (ISSUE_FORMULAS[0], "mul(net_sum(eig_min(corr(act_cov))), square(net_sum(node_sum(add(normalise(relu(normalise("
                        "square(grad_act_in)))), sign(grad_act_in))))))"),
    (ISSUE_FORMULAS[1], "div(mul(jacobian_norm, net_sum(node_sum(sqrt(grad)))), "
                        "net_mean(node_sum(square(square(grad)))))"),
    (ISSUE_FORMULAS[2], "sqrt(div(net_depth_sum(spec_entropy(act_cov)), net_max(node_std(sqrt(hess_grad)))))"),
    ("1/(1 + exp(-net_params))", "sigmoid(net_params)"),
    ("1/(exp(net_params) + 1)", "sigmoid(neg(net_params))"),
    ("-1/(1 + exp(-2*net_params))", "neg(sigmoid(mul(2.0, net_params)))"),
    ("-net_params", "neg(net_params)"),
    ("log(Abs(net_params))", "log(net_params)"),
    ("Abs(net_params)", "abs(net_params)"),
    ("Min(net_params, num_nodes)", "min(net_params, num_nodes)"),
    ("Max(0, net_params)", "relu(net_params)"),
    ("Max(net_params, 0)", "relu(net_params)"),
    ("Max(0, net_params, num_nodes)", "max(relu(net_params), num_nodes)"),
    ("1/net_params", "inv(net_params)"),
    ("net_params**(-1)", "inv(net_params)"),
    ("net_params**0.5", "sqrt(net_params)"),
    ("net_params**(-2)", "inv(square(net_params))"),
    ("net_params**3", "mul(square(net_params), net_params)"),
    ("Abs(net_params)**(3/2)", "mul(square(sqrt(net_params)), sqrt(net_params))"),
    ("Abs(net_params)**(1/3)", "exp(mul(log(net_params), 0.3333333333333333))"),
    ("2**net_params", "exp(mul(log(2.0), net_params))"),
    ("E*net_params", "mul(exp(1.0), net_params)"),
    ("exp(re(net_params))", "exp(net_params)"),
    ("net_params + im(net_params)**2", "add(net_params, square(0.0))"),
    ("0.5", "0.5"),
    ("-3", "-3.0"),
    ("1/2", "0.5"),
    ("net_params + 1/10", "add(net_params, 0.1)"),
    ("3*net_params/10", "div(mul(3.0, net_params), 10.0)"),
    ("net_sum(node_sum(2*grad))", "net_sum(node_sum(mul(grad, 2.0)))"),
    ("net_sum(node_sum(2 - grad))", "net_sum(node_sum(add(neg(grad), 2.0)))"),
    ("net_sum(node_sum(2/grad))", "net_sum(node_sum(mul(inv(grad), 2.0)))"),
    ("net_sum(node_sum(params*Max(1, grad)))", "net_sum(node_sum(mul(max(grad, 1.0), params)))"),
    ("2*net_sum(node_sum(abs(mul(weight, grad))))", "mul(2.0, net_sum(node_sum(abs(mul(weight, grad)))))"),
])
def test_printed_forms_read_as_primitives(text, prefix):
    assert to_string(parse(text)) == prefix


@pytest.mark.parametrize("text, prefix", [
    ("-net_params**2", "neg(square(net_params))"),
    ("net_params - num_nodes - jacobian_norm", "sub(sub(net_params, num_nodes), jacobian_norm)"),
    ("net_params/num_nodes/jacobian_norm", "div(div(net_params, num_nodes), jacobian_norm)"),
    ("net_params + num_nodes*jacobian_norm", "add(net_params, mul(num_nodes, jacobian_norm))"),
    ("(net_params + num_nodes)*jacobian_norm", "mul(add(net_params, num_nodes), jacobian_norm)"),
    ("net_params**num_nodes**2", "exp(mul(log(net_params), square(num_nodes)))"),
    ("net_params*-num_nodes", "mul(net_params, neg(num_nodes))"),
    ("- - net_params", "net_params"),
    ("mul(net_params, -1.0)", "mul(net_params, -1.0)"),
    ("add(net_params, 1e-05)", "add(net_params, 1e-05)"),
])
def test_precedence_associativity_and_signs(text, prefix):
    assert to_string(parse(text)) == prefix


@pytest.mark.parametrize("text, culprit", [
    ("net_params*zoo", "'zoo' at position 11 is SymPy's complex infinity"),
    ("net_params + oo", "'oo' at position 13"),
    ("trace(0)", "'trace' at position 0 has no variant taking (NetScalar|NodeScalar); if SymPy printed"),
    ("Abs(net_params, num_nodes)", "'Abs' at position 0 with 2 argument(s) is not SymPy's form"),
    ("tanh(net_params)", "unknown primitive 'tanh' at position 0"),
    ("_0 + net_params", "unknown name '_0' at position 0"),
    ("net_params; num_nodes", "unexpected character ';' at position 10"),
    ("net_params * * 2", "unexpected '*' at position 13"),
    ("net_params % 2", "unexpected character '%' at position 11"),
    ("net_params**", "unexpected end of expression"),
    ("1e999*net_params", "constant '1e999' at position 0 is not finite"),
    ("net_sum(node_sum(grad)) num_nodes", "unexpected 'num_nodes' after a complete expression at position 24"),
])
def test_refused_forms_are_one_line_naming_position_and_culprit(text, culprit):
    with pytest.raises(ExpressionError) as error:
        parse(text)
    message = str(error.value)
    assert culprit in message and "\n" not in message


def _chain(n: int) -> str:
    return " + ".join(["net_params"] * n)


def _repeated_power(times: int) -> str:
    text = "net_params"
    for _ in range(times):
        text = f"({text})**1023"
    return text


@pytest.mark.parametrize("text", [
    _chain(MAX_DEPTH + 2), _chain(100_000), "(" * 3000 + "net_params" + ")" * 3000,
    "**".join(["net_params"] * 3000), _repeated_power(60),
])
def test_infix_nesting_is_limited_not_a_recursion_error(text):
    with pytest.raises(ExpressionError, match=f"nested deeper than {MAX_DEPTH} calls"):
        parse(text)


def test_a_chain_of_max_depth_operators_and_many_signs_parse():
    assert to_string(parse(_chain(MAX_DEPTH + 1))).count("add(") == MAX_DEPTH
    assert to_string(parse("-" * 10_001 + "net_params")) == "neg(net_params)"


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """allclose at a tight rtol, NaN equal to NaN, and any two undefined (non-finite) values equal."""
    close = torch.isclose(a, b, rtol=1e-4, atol=1e-30, equal_nan=True)
    return bool((close | (~torch.isfinite(a) & ~torch.isfinite(b))).all())


def test_printed_formulas_have_the_values_of_their_trees(cache_dir):
    """``parse(simplified_text(tree))`` against ``tree`` on real statistics, over random trees. The parser
    reads the printed formula exactly; what differs is what the printing loses: SymPy drops the language's
    protections (``x/x`` is 1, ``exp(log(x))`` is ``x``, ``exp(a)**2`` is ``exp(2*a)`` past the clamp at
    50) and reassociates float arithmetic. Forms that cannot be read back are refused with a documented
    message; a few percent of formulas may differ in value, never more."""
    from autoproxy.cache import open_cache
    from primitives.evaluate import Evaluator
    from primitives.packed import pack
    from primitives.pset import random_tree
    from primitives.symbolic import simplified_text

    evaluator = Evaluator(pack(open_cache(cache_dir).load()), memo_bytes=0)
    printed, refused, differ = 0, [], []
    for seed in range(200):
        random.seed(seed)
        tree = random_tree(random.Random(seed), 1, 6)
        try:
            text = simplified_text(tree)
        except (ValueError, TypeError):     # SymPy's simplify fails on a few formulas (Max of nan)
            continue
        printed += 1
        try:
            parsed = parse(text)
        except ExpressionError as error:
            refused.append(str(error))
            continue
        if not _same_values(evaluator.values(tree).double(), evaluator.values(parsed).double()):
            differ.append(text)
    assert printed >= 190
    assert all("if SymPy printed this formula" in message or "SymPy's" in message for message in refused), refused
    assert len(refused) <= 0.08 * printed, refused
    assert len(differ) <= 0.02 * printed, differ


@pytest.mark.parametrize("formula", ISSUE_FORMULAS)
def test_try_scores_a_formula_as_printed(cache_dir, formula):
    from autoproxy.cli import main

    result = CliRunner().invoke(main, ["try", formula, "--cache", cache_dir])
    assert result.exit_code == 0, result.output
    assert f"simplified: {formula}" in result.output and "kendall_tau" in result.output


def test_registry_accepts_a_printed_formula_and_stores_its_prefix_form():
    from autoproxy.registry import proxy_document, validate_document

    doc = {**proxy_document("pasted", parse(ISSUE_FORMULAS[1])), "expression": ISSUE_FORMULAS[1]}
    assert validate_document(doc, "pasted.json")["expression"] == to_string(parse(ISSUE_FORMULAS[1]))


def test_simplify_falls_back_to_the_canonical_form_when_sympy_fails():
    """SymPy's ``simplify`` raises comparing nan/zoo inside Max/Min for some trees (seed 135 at depth 8);
    the printed formula must then be the unsimplified SymPy form, not a traceback."""
    from primitives.pset import random_tree
    from primitives.symbolic import simplified_text, to_sympy

    tree = random_tree(random.Random(135), 2, 8)
    assert simplified_text(tree) == str(to_sympy(tree))
