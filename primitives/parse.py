"""The project's own parser: text to an untyped tree (``primitives.syntax``), SymPy's notation to the
language's primitives (``primitives.sympy_forms``), then type resolution.

Text is never handed to ``eval``, ``sympify`` or ``gp.compile``: only whitelisted primitive and leaf
names and plain numbers are accepted. Names are overloaded (``abs`` on every shape class), so typing
runs in two passes: bottom-up, the set of shape classes each subtree can have (a number can be a node
or a network scalar); top-down, from the expected root type, the first variant in catalog order whose
result and argument types fit.

Binary primitives take (X, X) or (X, scalar of X's level). SymPy prints the scalar first (``2*grad``,
``2 - grad``, ``2/grad``), so a binary call that fits no variant as written is retried with the scalar
second: swapped for a symmetric primitive, ``a - b`` as ``-b + a`` and ``a/b`` as ``(1/b)*a`` (the same
values, and the same protection of a division by ~0).
"""
from __future__ import annotations

from deap import gp

from autoproxy.errors import ExpressionError
from primitives import types as T
from primitives.catalog import PRIMITIVES, PrimitiveSpec
from primitives.leaves import LEAVES_BY_NAME
from primitives.pset import NET_CONSTANT, NODE_CONSTANT, build_pset
from primitives.syntax import MAX_DEPTH, Ast, call, parse_syntax, too_deep, where
from primitives.sympy_forms import SYMMETRIC_PRIMITIVES, to_primitives

__all__ = ["MAX_DEPTH", "Ast", "too_deep", "parse_ast", "typed_tree", "parse"]

_VARIANTS: dict[str, list[PrimitiveSpec]] = {}
for _spec in PRIMITIVES:
    _VARIANTS.setdefault(_spec.name, []).append(_spec)
_SCALARS = frozenset({T.NodeScalar, T.NetScalar})      # what a number can be
_SHAPE_LOST = ("; if SymPy printed this formula, it may have simplified a statistic away (x - x is 0 and x/x is 1), "
               "losing its shape class: write that part in the prefix form")


def parse_ast(text: str) -> Ast:
    """Text in either notation to an untyped tree of the language's names; syntax errors name the position."""
    return to_primitives(parse_syntax(text))


def _scalar_second(node: Ast) -> Ast | None:
    """A binary call with its first argument moved second (same values), or None where none exists."""
    a, b = node.args
    if node.name in SYMMETRIC_PRIMITIVES:
        return call(node.name, [b, a], node.pos)
    if node.name == "sub":
        return call("add", [call("neg", [b], b.pos), a], node.pos)
    if node.name == "div":
        return call("mul", [call("inv", [b], b.pos), a], node.pos)
    return None


def _call_types(node: Ast) -> set:
    """Result types of the variants of a call whose argument types fit (``node.args`` typed already)."""
    return {v.out_type for v in _VARIANTS[node.name] if len(v.in_types) == len(node.args)
            and all(t in a.types for t, a in zip(v.in_types, node.args))}


def _retype_scalar_second(node: Ast) -> bool:
    """Rewrite ``node`` in place with its scalar argument second, if that is well-typed."""
    swapped = _scalar_second(node) if len(node.args) == 2 else None
    if swapped is None:
        return False
    for arg in swapped.args:
        if not arg.types:       # the neg or inv just wrapped around a typed argument
            arg.types = _call_types(arg)
    types = _call_types(swapped)
    if types:
        node.name, node.args, node.types = swapped.name, swapped.args, types
    return bool(types)


def _describe(types: set) -> str:
    return "|".join(sorted(t.__name__ for t in types))


def _infer(node: Ast) -> set:
    """Fill ``node.types`` bottom-up with the shape classes the subtree can have."""
    if node.value is not None:
        node.types = set(_SCALARS)
        return node.types
    if not node.is_call:
        leaf = LEAVES_BY_NAME.get(node.name)
        if leaf is None:
            what = "primitive used without arguments" if node.name in _VARIANTS else "name"
            raise ExpressionError(f"unknown {what} {node.name!r}{where(node)}")
        node.types = {leaf.type}
        return node.types
    if node.name in LEAVES_BY_NAME:
        raise ExpressionError(f"{node.name!r}{where(node)} is a statistic, not a primitive: it takes no arguments")
    variants = _VARIANTS.get(node.name)
    if variants is None:
        raise ExpressionError(f"unknown primitive {node.name!r}{where(node)}")
    arg_types = [_infer(a) for a in node.args]
    if not any(len(v.in_types) == len(arg_types) for v in variants):
        raise ExpressionError(f"primitive {node.name!r}{where(node)} takes {len(variants[0].in_types)} argument(s), "
                              f"got {len(arg_types)}")
    node.types = _call_types(node)
    if not node.types and not _retype_scalar_second(node):
        described = ", ".join(_describe(s) for s in arg_types)
        raise ExpressionError(f"ill-typed: {node.name!r}{where(node)} has no variant taking ({described})"
                              + (_SHAPE_LOST if any(types <= _SCALARS for types in arg_types) else ""))
    return node.types


def _emit(node: Ast, expected: type, pset: gp.PrimitiveSetTyped, out: list) -> None:
    if node.value is not None:
        cls = pset.mapping[NODE_CONSTANT if expected is T.NodeScalar else NET_CONSTANT]
        const = cls.__new__(cls)
        const.value = node.value
        out.append(const)
    elif not node.is_call:
        out.append(pset.mapping[node.name])
    else:
        spec = next(v for v in _VARIANTS[node.name] if v.out_type is expected and len(v.in_types) == len(node.args)
                    and all(t in a.types for t, a in zip(v.in_types, node.args)))
        out.append(pset.mapping[spec.key])
        for arg, arg_type in zip(node.args, spec.in_types):
            _emit(arg, arg_type, pset, out)


def typed_tree(node: Ast, expected: type = T.NetScalar) -> gp.PrimitiveTree:
    """Resolve an untyped tree against the primitive set; ``ExpressionError`` names the culprit."""
    types = _infer(node)
    if expected not in types:
        raise ExpressionError(f"expression has type {_describe(types)}, expected {expected.__name__}")
    out: list = []
    _emit(node, expected, build_pset(), out)
    return gp.PrimitiveTree(out)


def parse(text: str, expected: type = T.NetScalar) -> gp.PrimitiveTree:
    """The prefix form (``net_sum(node_sum(abs(mul(weight, grad))))``), SymPy's printed form
    (``net_sum(node_sum(Abs(grad*weight)))``) or a mix of both, as a typed tree."""
    return typed_tree(parse_ast(text), expected)
