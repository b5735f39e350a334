"""Shape classes: the types of the expression language.

Typed GP uses them so that every generated, crossed or mutated tree is shape-valid by construction.
A *node* class holds one value per parameterised layer, a *network* class one value per
architecture. The classes are plain marker types (DEAP compares them with ``issubclass``), so none
derives from another.
"""
from __future__ import annotations


class _StableHash(type):
    """Hash shape classes by their position in ``ALL_TYPES``, not by memory address.

    DEAP iterates sets of types (``gp.cxOnePoint`` draws ``random.choice(list(common_types))``); with
    the default identity hash the set's order, and so the drawn type, differed between processes and
    the same seed evolved different formulas. A fixed small integer per class makes every such set
    iterate in the same order in every process (string hashes would not: ``PYTHONHASHSEED``).
    """

    _order: dict[str, int] = {"ShapeClass": 0}

    def __hash__(cls) -> int:
        return _StableHash._order[cls.__name__]


class ShapeClass(metaclass=_StableHash):
    """Marker base; never used as a type in the primitive set itself."""

    level: str = ""       # "node" | "network"
    layout: str = ""      # short description of the per-node (or per-network) shape


def _shape_class(name: str, level: str, layout: str) -> type:
    _StableHash._order[name] = len(_StableHash._order)
    return _StableHash(name, (ShapeClass,), {"level": level, "layout": layout, "__module__": __name__})


Param = _shape_class("Param", "node", "(numel of weight,)")
ActOut = _shape_class("ActOut", "node", "(B, C_out, P_out)")
ActIn = _shape_class("ActIn", "node", "(B, C_in, P_in)")
BatchChanOut = _shape_class("BatchChanOut", "node", "(B, C_out): act_out reduced over positions")
BatchChanIn = _shape_class("BatchChanIn", "node", "(B, C_in): act_in reduced over positions")
ChanOut = _shape_class("ChanOut", "node", "(C_out,): reduced over positions and batch")
ChanIn = _shape_class("ChanIn", "node", "(C_in,): reduced over positions and batch")
Batch = _shape_class("Batch", "node", "(B,): one value per sample")
Kernel = _shape_class("Kernel", "node", "(B, B)")
ChanMatrix = _shape_class("ChanMatrix", "node", "(C_out, C_out)")
NodeScalar = _shape_class("NodeScalar", "node", "()")
NetKernel = _shape_class("NetKernel", "network", "(B, B)")
NetScalar = _shape_class("NetScalar", "network", "()")

ALL_TYPES: tuple[type, ...] = (
    Param, ActOut, ActIn, BatchChanOut, BatchChanIn, ChanOut, ChanIn, Batch, Kernel, ChanMatrix,
    NodeScalar, NetKernel, NetScalar,
)
TYPES_BY_NAME: dict[str, type] = {t.__name__: t for t in ALL_TYPES}
# Classes stored as per-node buckets of equal shape (activations and what is reduced from them).
BUCKETED_OUT = (ActOut, BatchChanOut, ChanOut)
BUCKETED_IN = (ActIn, BatchChanIn, ChanIn)
