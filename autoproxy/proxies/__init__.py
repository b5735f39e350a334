"""Reference zero-cost proxies, written directly after zero-cost-nas / NASLib (not via statistics).

Each is ``fn(net, inputs, targets, loss_fn=None, split_data=1) -> float``; ``net`` is never modified
(each works on a train-mode deep copy, as NASLib does). Every docstring gives the proxy as a formula
over the names of :mod:`autoproxy.statistics`, with Σ_n a sum over nodes (:mod:`autoproxy.nodes`:
convolutions, Linear, MultiheadAttention), so that an expression over the statistics reproduces it
(``split_data=1``, no sketching). ``split_data`` chunks are weighted by their share of the batch, so a
value does not depend on it (up to rounding, without train-mode batch norm); see
:mod:`autoproxy.proxies.common`. A proxy undefined on a model returns NaN with a one-line warning.
"""
from autoproxy.proxies import activation, gradient, recent, structure, synflow  # noqa: F401  (they register)
from autoproxy.proxies.registry import reference_names, reference_proxy, register

__all__ = ["reference_names", "reference_proxy", "register"]
