"""SymPy forms of trees: readable simplified formulas and a key for algebraic duplicates.

Leaves become real symbols, constants exact rationals, elementwise primitives their mathematical
form (protections ignored: ``log x`` is ``log|x|``, ``inv x`` is ``1/x``), and reductions,
aggregations and matrix functions opaque SymPy functions. SymPy's automatic canonicalisation
(commutativity, collecting terms and powers) is cheap and is what the duplicate key uses; the full
``sympy.simplify`` is only for display.
"""
from __future__ import annotations

from typing import Sequence

import sympy
from deap import gp

from primitives.catalog import PRIMITIVES_BY_KEY

SIMPLIFY_MAX_OPS = 150   # beyond this, sympy.simplify can take seconds; show the canonical form instead


def to_sympy(tree: Sequence) -> sympy.Expr:
    stack: list[tuple[object, list]] = []
    for node in tree:
        stack.append((node, []))
        while stack and len(stack[-1][1]) == stack[-1][0].arity:
            node, args = stack.pop()
            if isinstance(node, gp.Primitive):
                expr = PRIMITIVES_BY_KEY[node.name].sympy_fn(*args)
            elif isinstance(node.value, str):
                expr = sympy.Symbol(node.value, real=True)
            else:
                expr = sympy.Rational(repr(float(node.value)))
            if not stack:
                return expr
            stack[-1][1].append(expr)
    raise ValueError("empty tree")


def simplify(tree: Sequence) -> sympy.Expr:
    """A simplified formula: SymPy's ``simplify`` when it makes the formula shorter and keeps it free of
    case distinctions (it rewrites ``sign`` and ``Max`` into ``Piecewise``), else the canonical form."""
    expr = to_sympy(tree)
    if sympy.count_ops(expr) > SIMPLIFY_MAX_OPS:
        return expr
    simplified = sympy.simplify(expr)
    if simplified.has(sympy.Piecewise) or sympy.count_ops(simplified) >= sympy.count_ops(expr):
        return expr
    return simplified


def simplified_text(tree: Sequence) -> str:
    return str(simplify(tree))


def simplified_latex(tree: Sequence) -> str:
    return sympy.latex(simplify(tree))


def canonical_key(tree: Sequence) -> str:
    """Equal for trees that SymPy's automatic canonicalisation makes identical (``mul(a, b)`` and
    ``mul(b, a)``, ``add(x, x)`` and ``mul(x, 2.0)``, ``sqrt(square(x))`` and ``abs(x)``)."""
    return sympy.srepr(to_sympy(tree))
