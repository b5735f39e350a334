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
from primitives.fold import fold
from primitives.parse import MAX_DEPTH, Ast, parse, too_deep, typed_tree

__all__ = ["to_string", "to_json", "from_json", "parse", "node_label"]


def node_label(node) -> str:
    """What a node is written as: the primitive's plain name, the leaf name, or the constant."""
    if isinstance(node, gp.Primitive):
        return PRIMITIVES_BY_KEY[node.name].name
    if isinstance(node.value, str):
        return node.value
    return repr(float(node.value))


def _json_leaf(node) -> dict:
    return {"leaf": node.value} if isinstance(node.value, str) else {"const": float(node.value)}


def to_string(tree: Sequence) -> str:
    return fold(tree, node_label, lambda node, args: f"{node_label(node)}({', '.join(args)})")


def to_json(tree: Sequence) -> dict:
    """``{"op": name, "args": [...]}``, ``{"leaf": name}``, ``{"const": value}``."""
    return fold(tree, _json_leaf, lambda node, args: {"op": node_label(node), "args": args})


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
