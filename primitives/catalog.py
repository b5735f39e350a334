"""Every primitive of the expression language, declared once: the typed variants and their torch
kernels (``primitives/kernels.py``, the only implementation) with, per name, the SymPy form and the
complexity weight.

Elementwise primitives get their mathematical form (protections ignored: ``log x`` is ``log|x|``,
``inv x`` is ``1/x``); reductions, aggregations and matrix functions are opaque SymPy functions of
their name. The parser picks a name's variant from the argument types, in catalog order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy

from primitives.kernels import VARIANTS, Variant

SYMPY_FORMS: dict[str, Callable] = {
    "abs": sympy.Abs,
    "square": lambda x: x ** 2,
    "sqrt": lambda x: sympy.sqrt(sympy.Abs(x)),
    "log": lambda x: sympy.log(sympy.Abs(x)),
    "exp": sympy.exp,
    "neg": lambda x: -x,
    "inv": lambda x: 1 / x,
    "sigmoid": lambda x: 1 / (1 + sympy.exp(-x)),
    "relu": lambda x: sympy.Max(x, 0),
    "sign": sympy.sign,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "min": sympy.Min,
    "max": sympy.Max,
}
# What a reader pays to understand a primitive; 1 unless listed.
COMPLEXITY: dict[str, int] = {
    "standardise": 2, "normalise": 2, "corr": 2,
    "logdet": 3, "eig_min": 3, "eig_max": 3, "spec_entropy": 3, "minv": 3,
}


@dataclass(frozen=True)
class PrimitiveSpec(Variant):
    """A typed variant with its SymPy form and complexity weight."""

    sympy_fn: Callable                          # sympy_fn(*exprs) -> sympy expression
    complexity: int


def _declare(variant: Variant) -> PrimitiveSpec:
    sympy_fn = SYMPY_FORMS.get(variant.name) or sympy.Function(variant.name)
    return PrimitiveSpec(variant.name, variant.in_types, variant.out_type, variant.fn, sympy_fn,
                         COMPLEXITY.get(variant.name, 1))


PRIMITIVES: tuple[PrimitiveSpec, ...] = tuple(_declare(v) for v in VARIANTS)
PRIMITIVES_BY_KEY: dict[str, PrimitiveSpec] = {p.key: p for p in PRIMITIVES}
NAMES: frozenset[str] = frozenset(p.name for p in PRIMITIVES)
