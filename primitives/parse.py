"""The project's own parser: tokenizer, recursive descent, then type resolution.

Text is never handed to ``eval`` or ``gp.compile``: only whitelisted primitive and leaf names and
plain numbers are accepted. Names are overloaded (``abs`` on every shape class), so typing runs in
two passes: bottom-up, the set of shape classes each subtree can have (a number can be a node or a
network scalar); top-down, from the expected root type, the first variant in catalog order whose
result and argument types fit.

Nesting is limited to ``MAX_DEPTH`` calls, checked before any recursion: the typing passes, the
evaluator and SymPy recurse once or more per level, so much deeper text would exhaust Python's
recursion limit instead of giving one line naming the problem.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from deap import gp

from autoproxy.errors import ExpressionError
from primitives import types as T
from primitives.catalog import PRIMITIVES, PrimitiveSpec
from primitives.leaves import LEAVES_BY_NAME
from primitives.pset import NET_CONSTANT, NODE_CONSTANT, build_pset

MAX_DEPTH = 100   # nested calls; the search grows trees of height <= its max_height (about 17 at most)
_TOKEN = re.compile(r"\s*(?:(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_]\w*)|(?P<punct>[(),]))")
_VARIANTS: dict[str, list[PrimitiveSpec]] = {}
for _spec in PRIMITIVES:
    _VARIANTS.setdefault(_spec.name, []).append(_spec)


@dataclass
class Ast:
    """An untyped expression: a call (args), a leaf (no args) or a constant (value)."""

    name: str | None
    args: list["Ast"] = field(default_factory=list)
    value: float | None = None
    is_call: bool = False
    types: set = field(default_factory=set)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ExpressionError(f"unexpected character {text[pos:].lstrip()[:1]!r} at position {pos} in {text!r}")
        kind = match.lastgroup
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def too_deep(what: str) -> ExpressionError:
    """The error for an expression nested deeper than ``MAX_DEPTH`` calls."""
    return ExpressionError(f"{what} is nested deeper than {MAX_DEPTH} calls, the limit of the expression language")


def _check_nesting(tokens: list[tuple[str, str]], text: str) -> None:
    depth = 0
    for token in tokens:
        if token == ("punct", "("):
            depth += 1
            if depth > MAX_DEPTH:
                raise too_deep(f"expression {text[:60]!r}...")
        elif token == ("punct", ")"):
            depth -= 1


def parse_ast(text: str) -> Ast:
    """Text to an untyped tree; syntax errors name the position."""
    tokens = _tokens(text)
    if not tokens:
        raise ExpressionError("empty expression")
    _check_nesting(tokens, text)
    pos = 0

    def expect(punct: str) -> None:
        nonlocal pos
        if pos >= len(tokens) or tokens[pos] != ("punct", punct):
            got = tokens[pos][1] if pos < len(tokens) else "end of text"
            raise ExpressionError(f"expected {punct!r}, got {got!r} in {text!r}")
        pos += 1

    def term() -> Ast:
        nonlocal pos
        if pos >= len(tokens):
            raise ExpressionError(f"unexpected end of expression {text!r}")
        kind, tok = tokens[pos]
        pos += 1
        if kind == "num":
            value = float(tok)
            if not math.isfinite(value):
                raise ExpressionError(f"constant {tok!r} is not finite")
            return Ast(None, value=value)
        if kind != "name":
            raise ExpressionError(f"unexpected {tok!r} in {text!r}")
        if pos < len(tokens) and tokens[pos] == ("punct", "("):
            pos += 1
            args = [term()]
            while pos < len(tokens) and tokens[pos] == ("punct", ","):
                pos += 1
                args.append(term())
            expect(")")
            return Ast(tok, args, is_call=True)
        return Ast(tok)

    tree = term()
    if pos != len(tokens):
        raise ExpressionError(f"unexpected {tokens[pos][1]!r} after a complete expression in {text!r}")
    return tree


def _infer(node: Ast) -> set:
    """Fill ``node.types`` bottom-up with the shape classes the subtree can have."""
    if node.value is not None:
        node.types = {T.NodeScalar, T.NetScalar}
        return node.types
    if not node.is_call:
        leaf = LEAVES_BY_NAME.get(node.name)
        if leaf is None:
            what = "primitive used without arguments" if node.name in _VARIANTS else "name"
            raise ExpressionError(f"unknown {what} {node.name!r}")
        node.types = {leaf.type}
        return node.types
    if node.name in LEAVES_BY_NAME:
        raise ExpressionError(f"{node.name!r} is a statistic, not a primitive: it takes no arguments")
    variants = _VARIANTS.get(node.name)
    if variants is None:
        raise ExpressionError(f"unknown primitive {node.name!r}")
    arg_types = [_infer(a) for a in node.args]
    arity = [v for v in variants if len(v.in_types) == len(arg_types)]
    if not arity:
        raise ExpressionError(f"primitive {node.name!r} takes {len(variants[0].in_types)} argument(s), "
                              f"got {len(arg_types)}")
    node.types = {v.out_type for v in arity if all(t in s for t, s in zip(v.in_types, arg_types))}
    if not node.types:
        described = ", ".join("|".join(sorted(t.__name__ for t in s)) for s in arg_types)
        raise ExpressionError(f"ill-typed: {node.name!r} has no variant taking ({described})")
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
        have = "|".join(sorted(t.__name__ for t in types))
        raise ExpressionError(f"expression has type {have}, expected {expected.__name__}")
    out: list = []
    _emit(node, expected, build_pset(), out)
    return gp.PrimitiveTree(out)


def parse(text: str, expected: type = T.NetScalar) -> gp.PrimitiveTree:
    """Canonical (or hand-written) prefix text, e.g. ``net_sum(node_sum(abs(mul(weight, grad))))``."""
    return typed_tree(parse_ast(text), expected)
