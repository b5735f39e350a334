"""SymPy forms of trees: readable simplified formulas and a key for algebraic duplicates.

Leaves become real symbols, constants exact rationals, elementwise primitives their mathematical
form (protections ignored: ``log x`` is ``log|x|``, ``inv x`` is ``1/x``), and reductions,
aggregations and matrix functions opaque SymPy functions. SymPy's automatic canonicalisation
(commutativity, collecting terms and powers) is cheap and is what the duplicate key uses; the full
``sympy.simplify`` is only for display. SymPy's automatic evaluation refuses some degenerate
combinations (``Max(zoo, x)`` after a ``1/0``: "not comparable"); such a tree has no SymPy form and is
keyed and shown by its prefix text instead, so a search never dies on one.
"""
from __future__ import annotations

from typing import Sequence

import sympy

from primitives.catalog import PRIMITIVES_BY_KEY
from primitives.fold import fold
from primitives.tree import to_string

SIMPLIFY_MAX_OPS = 150   # beyond this, sympy.simplify can take seconds; show the canonical form instead


def _sympy_leaf(node) -> sympy.Expr:
    if isinstance(node.value, str):
        return sympy.Symbol(node.value, real=True)
    return sympy.Rational(repr(float(node.value)))


def to_sympy(tree: Sequence) -> sympy.Expr:
    return fold(tree, _sympy_leaf, lambda node, args: PRIMITIVES_BY_KEY[node.name].sympy_fn(*args))


def _sympy_form(tree: Sequence) -> sympy.Expr | None:
    """The SymPy form, or None where SymPy's automatic evaluation refuses the combination."""
    try:
        return to_sympy(tree)
    except (ValueError, TypeError, ArithmeticError, NotImplementedError):
        return None


def simplify(tree: Sequence) -> sympy.Expr | None:
    """A simplified formula: SymPy's ``simplify`` when it makes the formula shorter and keeps it free of
    case distinctions (it rewrites ``sign`` and ``Max`` into ``Piecewise``), else the canonical form
    (also when SymPy's rewriting fails on it); None for a tree without a SymPy form."""
    expr = _sympy_form(tree)
    if expr is None or sympy.count_ops(expr) > SIMPLIFY_MAX_OPS:
        return expr
    try:
        simplified = sympy.simplify(expr)
    except (ValueError, TypeError):  # SymPy compares nan/zoo while rewriting Max/Min of some forms
        return expr
    if simplified.has(sympy.Piecewise) or sympy.count_ops(simplified) >= sympy.count_ops(expr):
        return expr
    return simplified


def simplified_text(tree: Sequence) -> str:
    expr = simplify(tree)
    return to_string(tree) if expr is None else str(expr)


def simplified_latex(tree: Sequence) -> str:
    expr = simplify(tree)
    return r"\mathtt{" + to_string(tree).replace("_", r"\_") + "}" if expr is None else sympy.latex(expr)


def algebraic_key(tree: Sequence) -> str:
    """Equal for trees that SymPy's automatic canonicalisation makes identical (``mul(a, b)`` and
    ``mul(b, a)``, ``add(x, x)`` and ``mul(x, 2.0)``, ``sqrt(square(x))`` and ``abs(x)``); a tree
    without a SymPy form is its own class, keyed by its text."""
    expr = _sympy_form(tree)
    return "text:" + to_string(tree) if expr is None else sympy.srepr(expr)
