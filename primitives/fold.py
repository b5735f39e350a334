"""The one traversal of expression trees: evaluation, SymPy forms, text, JSON, complexity and type
checks are all folds with their own ``leaf`` and ``call`` functions.

A tree is a prefix-order sequence of nodes, as DEAP's ``PrimitiveTree`` stores it (and as
``primitives/program.py`` rebuilds it without DEAP). ``fold`` reads one attribute, ``arity`` (0 for a
statistic or a constant); ``leaf`` and ``call`` read what they need: a DEAP ``Primitive`` has ``name``
(the typed variant key), a ``Terminal`` has ``value`` (the statistic's name, or the constant) and
``ret`` (its shape class). Standard library only: exported modules bundle this file.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

Folded = TypeVar("Folded")


def fold(tree: Sequence[Any], leaf: Callable[[Any], Folded],
         call: Callable[[Any, list[Folded]], Folded]) -> Folded:
    """The root's value: ``leaf(node)`` for each node without arguments and ``call(node, values of
    its arguments)`` for each other node, children before parents. An explicit stack, not recursion,
    so that no depth of tree exhausts Python's recursion limit; ``ValueError`` for a sequence that is
    not exactly one tree."""
    open_calls: list[tuple[Any, list[Folded]]] = []
    for position, node in enumerate(tree):
        if node.arity:
            open_calls.append((node, []))
            continue
        value = leaf(node)
        while open_calls:
            parent, args = open_calls[-1]
            args.append(value)
            if len(args) < parent.arity:
                break
            open_calls.pop()
            value = call(parent, args)
        else:
            if position != len(tree) - 1:
                raise ValueError(f"not one tree: {len(tree) - position - 1} node(s) after the root's last argument")
            return value
    raise ValueError("not one tree: it ends before every call has its arguments")
