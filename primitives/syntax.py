"""Expression text to an untyped tree, for both notations a user may paste.

The canonical prefix form (``net_sum(node_sum(abs(mul(weight, grad))))``) is a call per primitive;
``simplified_text`` prints SymPy's infix form (``net_sum(node_sum(Abs(grad*weight)))``). One
recursive descent reads both. Operators keep their symbols as node names (``+ - * / **``, a one-argument
``-`` is a negation): what they mean in the language comes from the catalog's SymPy forms
(``primitives.sympy_forms``), not from here. The grammar is Python's, except that a leading sign negates
the whole product after it, as SymPy prints it (``-1/(1 + exp(-x))`` is minus a sigmoid)::

    sum     := term (('+' | '-') term)*
    term    := sign* product
    product := power (('*' | '/') sign* power)*
    power   := atom ('**' sign* power)?              right-associative
    atom    := number | name | name '(' sum (',' sum)* ')' | '(' sum ')'

Arithmetic on numbers alone is folded into one number, so that SymPy's rationals read back as the
constants they print (``1/10`` is the constant 0.1, ``-3`` the constant -3.0).

Text is never evaluated. Nesting is limited to ``MAX_DEPTH`` levels, counted here (parentheses, calls and
exponents) and again when the tree is read as primitives (``sympy_forms``: a chain ``a + a + ... + a``
nests one level per operator): the typing passes, the evaluator and SymPy recurse once or more per level,
so much deeper text would exhaust Python's recursion limit instead of giving one line naming the problem.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from typing import Callable

from autoproxy.errors import ExpressionError

MAX_DEPTH = 100   # nested calls; the search grows trees of height <= its max_height (about 17 at most)
POWER = "**"
NEGATION = "-"    # with one argument; with two it is the subtraction
_TOKEN = re.compile(r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_]\w*)"
                    r"|(?P<op>\*\*|[-+*/])|(?P<punct>[(),]))")
_FOLD: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


@dataclass
class Ast:
    """An untyped expression: a call (args), a leaf (no args) or a constant (value); ``pos`` is its place
    in the text (an operator's for an operation; None for trees not read from text)."""

    name: str | None
    args: list["Ast"] = field(default_factory=list)
    value: float | None = None
    is_call: bool = False
    types: set = field(default_factory=set)
    pos: int | None = None


@dataclass(frozen=True)
class _Token:
    kind: str        # num | name | op | punct | end
    text: str
    pos: int


def call(name: str, args: list[Ast], pos: int | None = None) -> Ast:
    return Ast(name, args, is_call=True, pos=pos)


def number(value: float, pos: int | None = None) -> Ast:
    return Ast(None, value=value, pos=pos)


def where(node: Ast) -> str:
    """`` at position N`` for nodes read from text, else nothing (JSON has no positions)."""
    return "" if node.pos is None else f" at position {node.pos}"


def too_deep(what: str) -> ExpressionError:
    """The error for an expression nested deeper than ``MAX_DEPTH`` calls."""
    return ExpressionError(f"{what} is nested deeper than {MAX_DEPTH} calls, the limit of the expression language")


def _tokens(text: str) -> list[_Token]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            culprit = len(text) - len(text[pos:].lstrip())
            raise ExpressionError(f"unexpected character {text[culprit]!r} at position {culprit} in {text!r}")
        kind = match.lastgroup
        out.append(_Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return out + [_Token("end", "end of text", len(text))]


def _negated(node: Ast, pos: int) -> Ast:
    return number(-node.value, pos) if node.value is not None else call(NEGATION, [node], pos)


def _binary(symbol: str, left: Ast, right: Ast, pos: int) -> Ast:
    """``left symbol right``, folded into one number when both sides are numbers (and the result is
    finite: ``1/0`` stays a division, which the language protects)."""
    if left.value is not None and right.value is not None and not (symbol == "/" and right.value == 0):
        value = _FOLD[symbol](left.value, right.value)
        if math.isfinite(value):
            return number(value, left.pos)
    return call(symbol, [left, right], pos)


class _Parser:
    """Recursive descent over the tokens; ``level`` counts enclosing parentheses, calls and exponents."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokens(text.rstrip())
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, kind: str, *texts: str) -> _Token | None:
        token = self.peek()
        if token.kind == kind and token.text in texts:
            return self.take()
        return None

    def unexpected(self, token: _Token, context: str = "") -> ExpressionError:
        return ExpressionError(f"unexpected {token.text!r}{context} at position {token.pos} in {self.text!r}")

    def deeper(self, level: int, token: _Token) -> int:
        if level + 1 > MAX_DEPTH:
            raise too_deep(f"expression {self.text[:60]!r}... ({token.text!r} at position {token.pos})")
        return level + 1

    def whole(self) -> Ast:
        if self.peek().kind == "end":
            raise ExpressionError("empty expression")
        tree = self.sum(0)
        if self.peek().kind != "end":
            raise self.unexpected(self.peek(), " after a complete expression")
        return tree

    def sum(self, level: int) -> Ast:
        tree = self.signed(self.product, level)
        while (op := self.accept("op", "+", "-")) is not None:
            tree = _binary(op.text, tree, self.signed(self.product, level), op.pos)
        return tree

    def signed(self, inner: Callable[[int], Ast], level: int) -> Ast:
        """Leading signs negate what ``inner`` reads (an even number of minus signs cancels)."""
        signs = []
        while (sign := self.accept("op", "+", "-")) is not None:
            signs.append(sign)
        tree = inner(level)
        minus = [sign for sign in signs if sign.text == "-"]
        return _negated(tree, minus[0].pos) if len(minus) % 2 else tree

    def product(self, level: int) -> Ast:
        tree = self.power(level)
        while (op := self.accept("op", "*", "/")) is not None:
            tree = _binary(op.text, tree, self.signed(self.power, level), op.pos)
        return tree

    def power(self, level: int) -> Ast:
        base = self.atom(level)
        op = self.accept("op", POWER)
        if op is None:
            return base
        return call(POWER, [base, self.signed(self.power, self.deeper(level, op))], op.pos)

    def atom(self, level: int) -> Ast:
        token = self.take()
        if token.kind == "num":
            value = float(token.text)
            if not math.isfinite(value):
                raise ExpressionError(f"constant {token.text!r} at position {token.pos} is not finite")
            return number(value, token.pos)
        if token.kind == "name":
            if self.accept("punct", "(") is None:
                return Ast(token.text, pos=token.pos)
            return call(token.text, self.arguments(self.deeper(level, token)), token.pos)
        if token.text == "(":
            tree = self.sum(self.deeper(level, token))
            self.expect(")")
            return tree
        if token.kind == "end":
            raise ExpressionError(f"unexpected end of expression {self.text!r}")
        raise self.unexpected(token)

    def arguments(self, level: int) -> list[Ast]:
        args = [self.sum(level)]
        while self.accept("punct", ",") is not None:
            args.append(self.sum(level))
        self.expect(")")
        return args

    def expect(self, punct: str) -> None:
        if self.accept("punct", punct) is None:
            token = self.peek()
            raise ExpressionError(f"expected {punct!r}, got {token.text!r} at position {token.pos} in {self.text!r}")


def parse_syntax(text: str) -> Ast:
    """Text to an untyped tree of names, calls, operators and numbers; errors name the position."""
    return _Parser(text).whole()
