"""The DEAP typed primitive set and tree generators that respect it.

DEAP's own ``genFull``/``genGrow`` fail when they must end a branch in a shape class that has no
terminal (``BatchChanOut``, ``ChanOut``, ``Batch``, ...), so the generators here plan every branch
with the minimum height that type needs; they have DEAP's signature and work with
``gp.mutUniform(expr=...)``.
"""
from __future__ import annotations

import functools
import random
from typing import Sequence

from deap import gp

from primitives import types as T
from primitives.catalog import PRIMITIVES, PRIMITIVES_BY_KEY
from primitives.fold import fold
from primitives.leaves import LEAVES

# A short menu keeps constants readable and lets SymPy treat them as exact rationals.
CONSTANTS: tuple[float, ...] = (-1.0, 0.001, 0.1, 0.5, 1.0, 2.0, 3.0, 10.0)
NODE_CONSTANT = "const_node"
NET_CONSTANT = "const_net"


def _random_constant() -> float:
    return random.choice(CONSTANTS)


def _placeholder(*args):
    """DEAP wants a callable per primitive; trees are run by ``primitives.evaluate``, never compiled."""
    raise TypeError("autoproxy trees are evaluated with primitives.evaluate, not gp.compile")


@functools.lru_cache(maxsize=None)
def build_pset() -> gp.PrimitiveSetTyped:
    """The primitive set: root type ``NetScalar``, typed variant names ``name__ArgType...``."""
    pset = gp.PrimitiveSetTyped("autoproxy", [], T.NetScalar)
    for spec in PRIMITIVES:
        pset.addPrimitive(_placeholder, list(spec.in_types), spec.out_type, name=spec.key)
    for leaf in LEAVES:
        pset.addTerminal(leaf.name, leaf.type, name=leaf.name)
    pset.addEphemeralConstant(NODE_CONSTANT, _random_constant, T.NodeScalar)
    pset.addEphemeralConstant(NET_CONSTANT, _random_constant, T.NetScalar)
    return pset


@functools.lru_cache(maxsize=None)
def min_heights(pset: gp.PrimitiveSetTyped) -> dict[type, int]:
    """Smallest height of a tree of each type (0 where a terminal exists)."""
    heights = {t: 0 for t, terms in pset.terminals.items() if terms}
    changed = True
    while changed:
        changed = False
        for ret, prims in pset.primitives.items():
            for prim in prims:
                if all(a in heights for a in prim.args):
                    h = 1 + max(heights[a] for a in prim.args)
                    if h < heights.get(ret, 1 << 30):
                        heights[ret] = h
                        changed = True
    return heights


def _generate(pset, min_: int, max_: int, type_, full: bool, rng) -> list:
    type_ = pset.ret if type_ is None else type_
    heights = min_heights(pset)
    height = rng.randint(min_, max_)
    terminal_ratio = pset.terms_count / (pset.terms_count + pset.prims_count)
    expr: list = []
    stack = [(0, type_)]
    while stack:
        depth, ret = stack.pop()
        remaining = max(height - depth, heights[ret])
        feasible = [p for p in pset.primitives[ret] if 1 + max(heights[a] for a in p.args) <= remaining]
        terminals = pset.terminals[ret]
        if full:
            use_terminal = not feasible
        else:
            use_terminal = not feasible or (depth >= min_ and rng.random() < terminal_ratio)
        if use_terminal and terminals:
            term = rng.choice(terminals)
            expr.append(term() if isinstance(term, type) else term)
        else:
            prim = rng.choice(feasible)
            expr.append(prim)
            for arg in reversed(prim.args):
                stack.append((depth + 1, arg))
    return expr


def gen_full(pset, min_: int, max_: int, type_=None, rng: random.Random | None = None) -> list:
    """Every branch as deep as its types allow, up to a height drawn in [min_, max_]."""
    return _generate(pset, min_, max_, type_, True, rng or random)


def gen_grow(pset, min_: int, max_: int, type_=None, rng: random.Random | None = None) -> list:
    """Branches end early at random once min_ is reached (DEAP's grow, type-aware)."""
    return _generate(pset, min_, max_, type_, False, rng or random)


def gen_half_and_half(pset, min_: int, max_: int, type_=None, rng: random.Random | None = None) -> list:
    rng = rng or random
    return (gen_full if rng.random() < 0.5 else gen_grow)(pset, min_, max_, type_, rng)


def random_tree(rng: random.Random, min_depth: int = 2, max_depth: int = 6,
                pset: gp.PrimitiveSetTyped | None = None) -> gp.PrimitiveTree:
    """A random valid ``NetScalar`` tree (ramped half-and-half). Constants draw from the global
    ``random`` (DEAP's ephemerals do), so seed it too for full determinism."""
    pset = pset or build_pset()
    return gp.PrimitiveTree(gen_half_and_half(pset, min_depth, max_depth, rng=rng))


def complexity(tree: Sequence) -> int:
    """Sum of the primitives' complexity weights (leaves and constants count 1)."""
    return fold(tree, lambda node: 1, lambda node, args: PRIMITIVES_BY_KEY[node.name].complexity + sum(args))
