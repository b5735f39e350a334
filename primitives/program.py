"""A typed tree as plain JSON data, and back as nodes that the evaluator folds over, without DEAP.

Why: an exported module (``autoproxy export --python``) runs the engine's own evaluator but has
neither DEAP nor the parser. The exporter writes the parsed tree's typed variants in prefix order
(``to_program``); the module rebuilds the nodes (``from_program``), checking every name and type, so
it runs exactly the variants the engine runs. Only torch, the standard library and the torch-only
``primitives`` modules are imported: exported modules bundle this file.
"""
from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from typing import Any, Sequence

from autoproxy.errors import ExpressionError
from primitives.fold import fold
from primitives.kernels import VARIANTS_BY_KEY
from primitives.leaves import LEAVES_BY_NAME
from primitives.types import TYPES_BY_NAME, NetScalar, NodeScalar


@dataclass(frozen=True)
class ProgramNode:
    """The attributes of a DEAP node that folds read."""

    name: str                       # variant key, statistic name, or "const"
    arity: int
    ret: type                       # shape class of the node's value
    value: str | float | None = None  # statistic name or constant; None for a primitive


def to_program(tree: Sequence[Any]) -> list[dict[str, Any]]:
    """``{"op": variant key}``, ``{"leaf": name}`` or ``{"const": x, "type": shape class}`` per node, in
    prefix order."""
    return [{"op": node.name} if node.arity else
            {"leaf": node.value} if isinstance(node.value, str) else
            {"const": float(node.value), "type": node.ret.__name__} for node in tree]


def _lookup(table: dict[str, Any], name: Any) -> Any:
    return table.get(name) if isinstance(name, str) else None


def _node(item: Any) -> ProgramNode:
    if not isinstance(item, dict) or len(item.keys() & {"op", "leaf", "const"}) != 1:
        raise ExpressionError(f"program node must have exactly one of op/leaf/const: {reprlib.repr(item)}")
    if "op" in item:
        variant = _lookup(VARIANTS_BY_KEY, item["op"])
        if variant is None or item.keys() != {"op"}:
            raise ExpressionError(f"unknown primitive variant in program: {reprlib.repr(item)}")
        return ProgramNode(variant.key, len(variant.in_types), variant.out_type)
    if "leaf" in item:
        leaf = _lookup(LEAVES_BY_NAME, item["leaf"])
        if leaf is None or item.keys() != {"leaf"}:
            raise ExpressionError(f"unknown statistic in program: {reprlib.repr(item)}")
        return ProgramNode(leaf.name, 0, leaf.type, leaf.name)
    value, shape_class = item["const"], _lookup(TYPES_BY_NAME, item.get("type"))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or shape_class not in (NodeScalar, NetScalar) or item.keys() != {"const", "type"}:
        raise ExpressionError(f"program constant must be a finite number of a scalar type: {reprlib.repr(item)}")
    return ProgramNode("const", 0, shape_class, float(value))


def _checked_call(node: ProgramNode, arg_types: list[type]) -> type:
    variant = VARIANTS_BY_KEY[node.name]
    if tuple(arg_types) != variant.in_types:
        raise ExpressionError(f"program is ill-typed: {node.name} given "
                              f"({', '.join(t.__name__ for t in arg_types)})")
    return variant.out_type


def from_program(doc: Any) -> list[ProgramNode]:
    """The nodes of one well-typed tree with a network-scalar root; ``ExpressionError`` otherwise."""
    if not isinstance(doc, list):
        raise ExpressionError(f"program must be a list of nodes, got {type(doc).__name__}")
    nodes = [_node(item) for item in doc]
    try:
        root = fold(nodes, lambda node: node.ret, _checked_call)
    except ValueError as err:
        raise ExpressionError(f"program is {err}") from None
    if root is not NetScalar:
        raise ExpressionError(f"program has type {root.__name__}, expected NetScalar")
    return nodes
