"""The catalog's SymPy forms read backwards: SymPy's printed notation to the language's primitives.

Each primitive declares its SymPy form once (``primitives.catalog``). Printing that form on placeholder
arguments gives a template (``sqrt(Abs(_0))`` for sqrt, ``1/(1 + exp(-_0))`` for sigmoid, ``_0 - _1``
for sub), and a subtree that matches a template is that primitive of the matched arguments. Templates
are tried most specific first (``1/_0`` inv before ``_0/_1`` div, ``Max(0, _0)`` relu before
``Max(_0, _1)`` max); the arguments of a form that SymPy treats as symmetric (``+ * Min Max``) match in
either order, and a negated placeholder inside a template matches any subtree (``1/(exp(x) + 1)`` is
sigmoid(-x)). Names of the language (the prefix form) pass through unchanged, so both notations mix.

Where the printed form is not one primitive, it is read as the tree that gives the same values:

- ``x**n`` (integer n, from nested square and mul): squares and products, ``x**(-n)`` is inv(x**n);
  ``x**(n/2)`` is a power of sqrt(x) (SymPy writes it only for x >= 0);
- any other ``x**y``: exp(log(x)*y), the form SymPy rewrites into ``x**y`` (``Abs(x)**(1/3)``);
- ``Max(a, b, c)`` / ``Min(...)`` (SymPy flattens nested ones): nested pairs; ``E`` is exp(1);
- ``re(x)`` is x and ``im(x)`` is 0 (SymPy does not know the opaque functions are real; they are).

SymPy's ``zoo``, ``oo``, ``nan`` and ``I`` have no counterpart (SymPy printed a protected division or
log by zero as a value): they are refused with one line naming them.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import sympy

from autoproxy.errors import ExpressionError
from primitives.catalog import PRIMITIVES
from primitives.syntax import MAX_DEPTH, NEGATION, POWER, Ast, call, number, parse_syntax, too_deep, where

_PLACEHOLDERS = ("_0", "_1")
_EULER = str(sympy.E)
_REAL_PART, _IMAGINARY_PART = "re", "im"   # SymPy's, of functions it does not know are real (all values are)
_EXPANDED_POWER_BITS = 32       # larger integer exponents could not be expanded within MAX_DEPTH anyway
_POWER_DENOMINATORS = 64        # x**(p/q) with q a power of two up to this: nested square roots
_NO_COUNTERPART = {
    "zoo": "complex infinity (its value of x/0 and log(0))",
    "oo": "infinity",
    "nan": "undefined value (its value of 0/0)",
    "I": "imaginary unit",
}


@dataclass(frozen=True)
class _Form:
    template: Ast        # the printed SymPy form on placeholders, parsed
    text: str
    primitive: str
    arity: int


def _symbols(arity: int) -> list[sympy.Symbol]:
    return [sympy.Symbol(name, real=True) for name in _PLACEHOLDERS[:arity]]


def _specificity(template: Ast) -> int:
    """Nodes of a template that are not placeholders: a form with more of them is tried first."""
    stack, count = [template], 0
    while stack:
        node = stack.pop()
        count += node.name not in _PLACEHOLDERS
        stack.extend(node.args)
    return count


def _forms() -> tuple[dict[str, list[_Form]], frozenset[str]]:
    """Root name -> forms, most specific first; and the primitives whose forms SymPy treats as symmetric
    (``a + b`` is ``b + a``)."""
    forms: dict[str, _Form] = {}
    symmetric = set()
    for spec in PRIMITIVES:
        if spec.name in forms:
            continue
        symbols = _symbols(len(spec.in_types))
        text = str(spec.sympy_fn(*symbols))
        forms[spec.name] = _Form(parse_syntax(text), text, spec.name, len(symbols))
        if len(symbols) == 2 and spec.sympy_fn(*symbols) == spec.sympy_fn(*symbols[::-1]):
            symmetric.add(spec.name)
    by_root: dict[str, list[_Form]] = {}
    for form in sorted(forms.values(), key=lambda f: -_specificity(f.template)):
        by_root.setdefault(form.template.name, []).append(form)
    return by_root, frozenset(symmetric)


_FORMS, SYMMETRIC_PRIMITIVES = _forms()
_SYMMETRIC_ROOTS = frozenset(form.template.name for forms in _FORMS.values() for form in forms
                             if form.primitive in SYMMETRIC_PRIMITIVES)
_LANGUAGE_NAMES = frozenset(spec.name for spec in PRIMITIVES)


def _is_negated_placeholder(template: Ast) -> bool:
    return template.name == NEGATION and len(template.args) == 1 and template.args[0].name in _PLACEHOLDERS


def _is_negation(node: Ast) -> bool:
    return node.is_call and node.name == NEGATION and len(node.args) == 1


def _match(template: Ast, subject: Ast, bound: dict[str, Ast]) -> bool:
    """Whether ``subject`` has the shape of ``template`` (below its root), binding placeholders."""
    if template.name in _PLACEHOLDERS:
        bound[template.name] = subject
        return True
    if template.value is not None:
        return subject.value == template.value
    if _is_negated_placeholder(template) and not _is_negation(subject):
        value = subject.value
        bound[template.args[0].name] = number(-value, subject.pos) if value is not None else call(NEGATION, [subject])
        return True
    if subject.name != template.name or subject.is_call != template.is_call or len(subject.args) != len(template.args):
        return False
    orders = [subject.args, subject.args[::-1]] if template.name in _SYMMETRIC_ROOTS else [subject.args]
    for args in orders:
        trial = dict(bound)
        if all(_match(t, s, trial) for t, s in zip(template.args, args)):
            bound.update(trial)
            return True
    return False


def _exact_exponent(value: float) -> Fraction | None:
    """The exponent as p/q when squares, products and square roots can build the power, else None."""
    ratio = Fraction(value).limit_denominator(_POWER_DENOMINATORS)
    q = ratio.denominator
    if float(ratio) != value or ratio == 0 or q & (q - 1) or abs(ratio.numerator).bit_length() > _EXPANDED_POWER_BITS:
        return None
    return ratio


def _power(node: Ast) -> Ast:
    """``base**exponent`` in SymPy's own notation, one step closer to single primitives."""
    base, exponent = node.args
    ratio = None if exponent.value is None else _exact_exponent(exponent.value)
    at = node.pos

    def power(b: Ast, r: Fraction) -> Ast:
        return call(POWER, [b, number(float(r), at)], at)

    if ratio is None:
        return call("exp", [call("*", [call("log", [base], at), exponent], at)], at)
    if ratio < 0:
        return call("/", [number(1.0, at), power(base, -ratio)], at)
    if ratio.denominator > 1:
        return power(call("sqrt", [base], at), ratio * 2)
    if ratio == 1:
        return base
    if ratio.numerator % 2:
        return call("*", [power(base, ratio - 1), base], at)
    return power(power(base, ratio / 2), Fraction(2))


def _pairs(node: Ast) -> Ast:
    """``Max(a, b, c)`` as ``Max(Max(a, b), c)``."""
    tree = node.args[0]
    for arg in node.args[1:]:
        tree = call(node.name, [tree, arg], node.pos)
    return tree


def _refuse_no_counterpart(leaf: Ast) -> Ast:
    if leaf.name in _NO_COUNTERPART:
        raise ExpressionError(f"{leaf.name!r}{where(leaf)} is SymPy's {_NO_COUNTERPART[leaf.name]}, which no tree "
                              f"of the language has (a protected division or log was printed as its limit): "
                              f"use the prefix form of the formula")
    return leaf


def to_primitives(tree: Ast, calls_above: int = 0) -> Ast:
    """A tree in SymPy's notation, the prefix form or a mix, as a tree of the language's names; refused
    once it nests deeper than ``MAX_DEPTH`` calls (each operator counts, and so do the squares and products
    a power expands into), before Python's recursion limit could be reached."""
    if tree.value is not None:
        return tree
    rewritten = _rewritten(tree)
    if rewritten is not None:
        return to_primitives(rewritten, calls_above)
    if not tree.is_call:
        return _refuse_no_counterpart(tree)
    if calls_above + 1 > MAX_DEPTH:
        raise too_deep(f"expression ({tree.name!r}{where(tree)}; each operator counts as a call)")
    name, args = _primitive_of(tree)
    return call(name, [to_primitives(arg, calls_above + 1) for arg in args], tree.pos)


def _rewritten(tree: Ast) -> Ast | None:
    """SymPy notation that is no single primitive, in simpler SymPy notation; None for the rest."""
    if tree.name == _EULER and not tree.is_call:
        return call("exp", [number(1.0, tree.pos)], tree.pos)
    if tree.name == _REAL_PART and len(tree.args) == 1:
        return tree.args[0]
    if tree.name == _IMAGINARY_PART and len(tree.args) == 1:
        return number(0.0, tree.pos)
    if tree.name in _SYMMETRIC_ROOTS and len(tree.args) > 2:
        return _pairs(tree)
    if tree.name == POWER and _form_of(tree) is None:
        return _power(tree)
    return None


def _form_of(tree: Ast) -> tuple[str, list[Ast]] | None:
    """The primitive whose SymPy form ``tree`` has at its root, and that primitive's arguments."""
    for form in _FORMS.get(tree.name, ()):
        bound: dict[str, Ast] = {}
        if len(form.template.args) == len(tree.args) and _match(form.template, tree, bound):
            return form.primitive, [bound[p] for p in _PLACEHOLDERS[:form.arity]]
    return None


def _primitive_of(tree: Ast) -> tuple[str, list[Ast]]:
    """The primitive of a SymPy form, or a name of the language as it stands."""
    found = _form_of(tree)
    if found is not None:
        return found
    if tree.name in _FORMS and tree.name not in _LANGUAGE_NAMES:
        forms = ", ".join(repr(form.text) for form in _FORMS[tree.name])
        raise ExpressionError(f"{tree.name!r}{where(tree)} with {len(tree.args)} argument(s) is not SymPy's form "
                              f"of any primitive ({forms})")
    return tree.name, tree.args
