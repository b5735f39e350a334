"""Known zero-cost proxies written in the expression language.

Checked against the zero-cost-nas measures (foresight/pruners/measures) and the ZiCo and MeCo papers'
code; the test ``tests/test_primitives_reference.py`` compares each with the registry's direct
implementation. Where the statistics differ from the original (noted below) the expression follows
the statistics of ARCHITECTURE.md.
"""
from __future__ import annotations

from deap import gp

from autoproxy.errors import ExpressionError
from primitives.parse import parse

REFERENCE_EXPRESSIONS: dict[str, str] = {
    # sum over layers of sum |W * dL/dW|
    "snip": "net_sum(node_sum(abs(mul(weight, grad))))",
    # sum over layers of ||dL/dW||_2
    "grad_norm": "net_sum(node_l2(grad))",
    # sum |W| * dR/dW with R the |W|-network's output on ones (dR/dW >= 0, so |W * g|)
    "synflow": "add(log(net_sum(node_sum(abs(mul(weight, synflow_grad))))), synflow_log_scale)",
    # -sum W * Hg
    "grasp": "neg(net_sum(node_sum(mul(weight, hess_grad))))",
    # per layer: sum over channels of 0.5 * mean over batch of (sum over positions of act * dL/dact)^2,
    # each channel's value counted once per weight of the channel (fan_in times), as zero-cost-nas
    # broadcasts it to the weight's shape before summing
    "fisher": "net_sum(mul(node_sum(mean_batch(square(sum_pos(mul(act_out, grad_act_out))))), mul(fan_in, 0.5)))",
    # sum over layers of ||W||_2
    "l2_norm": "net_sum(node_l2(weight))",
    # sum W * dL/dW
    "plain": "net_sum(node_sum(mul(weight, grad)))",
    # log|det K| for K the sum of the binary-code kernels over layers whose input is a ReLU output
    # (NASLib hooks ReLUs)
    "nwot": "logdet(net_ksum(mul(relu_kernel, input_post_relu)))",
    # -sum_v log(v + k) + 1/(v + k) over eigenvalues v of the Jacobian correlation, k = 1e-5:
    # log det(C + kI) + trace((C + kI)^-1)
    "jacov": "neg(add(logdet(ridge(jacobian_corr)), trace(minv(ridge(jacobian_corr)))))",
    # sum over layers of log(sum over weights of |g| / std(g)), zero-std weights skipped (div gives 0,
    # log(0) gives 0); grad_abs_mean is the mean of |g| over the sub-batches, as ZiCo
    "zico": "net_sum(log(node_sum(div(grad_abs_mean, grad_std))))",
    # sum over layers of the smallest eigenvalue of the output channels' correlation matrix
    "meco": "net_sum(eig_min(corr(act_cov)))",
}


def reference_tree(name: str) -> gp.PrimitiveTree:
    """The tree of a known proxy by name (see ``REFERENCE_EXPRESSIONS``)."""
    try:
        text = REFERENCE_EXPRESSIONS[name]
    except KeyError:
        raise ExpressionError(f"unknown reference proxy {name!r}; known: {', '.join(REFERENCE_EXPRESSIONS)}") from None
    return parse(text)
