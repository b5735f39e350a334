"""Canonical text and JSON forms of a tree (a ``deap.gp.PrimitiveTree`` over ``build_pset()``).

The text form writes the overloaded names (``abs``, not ``abs__Param``) in prefix notation with
constants as Python float literals, so ``parse(to_string(t)) == t``.
"""
from __future__ import annotations

import reprlib
from typing import Any, Sequence

from deap import gp

from autoproxy.errors import ExpressionError
from primitives import types as T
from primitives.catalog import PRIMITIVES_BY_KEY
from primitives.parse import MAX_DEPTH, Ast, parse, too_deep, typed_tree

__all__ = ["to_string", "to_json", "from_json", "parse", "node_label", "subtrees"]


def node_label(node) -> str:
    """What a node is written as: the primitive's plain name, the leaf name, or the constant."""
    if isinstance(node, gp.Primitive):
        return PRIMITIVES_BY_KEY[node.name].name
    if isinstance(node.value, str):
        return node.value
    return repr(float(node.value))


def _nested(tree: Sequence, build_call, build_leaf, build_const):
    """Fold a prefix list into nested form with the given constructors."""
    stack: list[tuple[Any, list]] = []
    result = None
    for node in tree:
        stack.append((node, []))
        while stack and len(stack[-1][1]) == stack[-1][0].arity:
            node, args = stack.pop()
            if isinstance(node, gp.Primitive):
                built = build_call(node, args)
            elif isinstance(node.value, str):
                built = build_leaf(node)
            else:
                built = build_const(node)
            if not stack:
                result = built
                break
            stack[-1][1].append(built)
    return result


def to_string(tree: Sequence) -> str:
    return _nested(tree, lambda n, a: f"{node_label(n)}({', '.join(a)})", node_label, node_label)


def to_json(tree: Sequence) -> dict:
    """``{"op": name, "args": [...]}``, ``{"leaf": name}``, ``{"const": value}``."""
    return _nested(tree, lambda n, a: {"op": node_label(n), "args": a},
                   lambda n: {"leaf": n.value}, lambda n: {"const": float(n.value)})


def _ast_from_json(doc: Any, depth: int = 0) -> Ast:
    """``depth``: the calls enclosing ``doc``, limited as in the text form."""
    if not isinstance(doc, dict) or len(doc.keys() & {"op", "leaf", "const"}) != 1:
        raise ExpressionError(f"expression JSON node must have exactly one of op/leaf/const: {reprlib.repr(doc)}")
    if "leaf" in doc:
        return Ast(str(doc["leaf"]))
    if "const" in doc:
        value = doc["const"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExpressionError(f"expression JSON constant must be a number, got {value!r}")
        return Ast(None, value=float(value))
    args = doc.get("args")
    if not isinstance(args, list) or not args:
        raise ExpressionError(f"expression JSON op {doc['op']!r} needs a non-empty 'args' list")
    if depth >= MAX_DEPTH:
        raise too_deep("expression JSON")
    return Ast(str(doc["op"]), [_ast_from_json(a, depth + 1) for a in args], is_call=True)


def from_json(doc: dict, expected: type = T.NetScalar) -> gp.PrimitiveTree:
    return typed_tree(_ast_from_json(doc), expected)


def subtrees(tree: Sequence) -> list[tuple[int, int]]:
    """(start, end) slice of every node's subtree in the prefix list, in prefix order."""
    ends = [0] * len(tree)
    stack: list[list[int]] = []    # [start, remaining args]
    for i, node in enumerate(tree):
        stack.append([i, node.arity])
        while stack and stack[-1][1] == 0:
            start, _ = stack.pop()
            ends[start] = i + 1
            if stack:
                stack[-1][1] -= 1
    return [(i, ends[i]) for i in range(len(tree))]
