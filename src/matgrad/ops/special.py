"""``matgrad.special``: PyTorch's ``torch.special``, with derivatives.

The functions are the rows of ``derivatives.yaml`` (section "special functions": forwards
through SciPy, derivatives with their sources in Abramowitz & Stegun and the DLMF) and a few
composites of them (``ndtr``, ``softmax``, ``log_softmax``, ``logsumexp``)::

    x = matgrad.tensor([0.5, 1.5], requires_grad=True)
    y = matgrad.special.i0e(x)        # SpecialI0eBackward0
    y.sum().backward()                # x.grad = i1e(x) - sign(x) i0e(x)

Where PyTorch has no derivative (``zeta`` in its first argument, ``gammainc`` in ``a``) the
backward pass raises ``NotImplementedError`` instead of giving zero. ``bessel_j0``,
``bessel_j1``, ``modified_bessel_i0`` and ``modified_bessel_i1`` have derivatives here
(PyTorch's return tensors without a graph).

Also here: the top-level function whose PyTorch signature is not its row's
(``matgrad.polygamma(n, input)``); :mod:`matgrad` exports it (``TOP_LEVEL``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.tensor_base import Tensor
from . import composite as _composite
from .registry import OPS

__all__ = [
    "bessel_j0",
    "bessel_j1",
    "digamma",
    "entr",
    "erf",
    "erfc",
    "erfcx",
    "erfinv",
    "exp2",
    "expit",
    "expm1",
    "gammainc",
    "gammaincc",
    "gammaln",
    "i0",
    "i0e",
    "i1",
    "i1e",
    "log1p",
    "log_ndtr",
    "log_softmax",
    "logit",
    "logsumexp",
    "modified_bessel_i0",
    "modified_bessel_i1",
    "multigammaln",
    "ndtr",
    "ndtri",
    "polygamma",
    "psi",
    "round",
    "sinc",
    "softmax",
    "xlog1py",
    "xlogy",
    "zeta",
]

# -- the rows, under torch.special's names -----------------------------------------------------
erf = OPS["erf"]
erfc = OPS["erfc"]
erfcx = OPS["special_erfcx"]
erfinv = OPS["erfinv"]
expit = OPS["sigmoid"]
exp2 = OPS["exp2"]
expm1 = OPS["expm1"]
log1p = OPS["log1p"]
log_ndtr = OPS["special_log_ndtr"]
ndtri = OPS["special_ndtri"]
gammaln = OPS["lgamma"]
digamma = psi = OPS["digamma"]
multigammaln = OPS["mvlgamma"]
i0 = modified_bessel_i0 = OPS["i0"]
i0e = OPS["special_i0e"]
i1 = modified_bessel_i1 = OPS["special_i1"]
i1e = OPS["special_i1e"]
bessel_j0 = OPS["special_bessel_j0"]
bessel_j1 = OPS["special_bessel_j1"]
xlogy = OPS["xlogy"]
xlog1py = OPS["special_xlog1py"]
entr = OPS["special_entr"]
sinc = OPS["sinc"]
logit = OPS["logit"]
gammainc = OPS["igamma"]
gammaincc = OPS["igammac"]


def zeta(input: Any, other: Any) -> Tensor:
    """The Hurwitz zeta function zeta(x, q) = sum_k (k + q)^-x (DLMF 25.11.1); differentiable
    in q only (dq: -x zeta(x + 1, q), DLMF 25.11.17), as PyTorch's."""
    return OPS["special_zeta"](input, other)


def polygamma(n: int, input: Any) -> Tensor:
    """psi^(n)(input), the n-th derivative of the digamma function (``torch.polygamma(n,
    input)``; the method is ``input.polygamma(n)``)."""
    return OPS["polygamma"](input, _integer("polygamma", "n", n))


def round(input: Any, *, decimals: int = 0) -> Tensor:  # noqa: A001 - torch.special's name
    """Round half to even at ``decimals`` digits; zero gradient."""
    return OPS["round"](input, decimals=_integer("round", "decimals", decimals))


def ndtr(input: Any) -> Tensor:
    """The standard normal CDF Phi(x) = erfc(-x / sqrt(2)) / 2 (DLMF 7.2.2): through erfc, so
    the left tail keeps its relative precision (1 + erf(x / sqrt(2)) would not)."""
    return OPS["erfc"](_composite._tensor(input) * (-1 / math.sqrt(2))) * 0.5


def softmax(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    return _composite.softmax(input, dim, dtype=dtype)


def log_softmax(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    return _composite.log_softmax(input, dim, dtype=dtype)


def logsumexp(input: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    return _composite.logsumexp(input, dim, keepdim)


def _integer(op: str, name: str, value: Any) -> int:
    """A Python int from an int, a NumPy integer or a one-element integer tensor/array."""
    if isinstance(value, Tensor):
        value = value.detach().numpy()
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iu":
        value = value.reshape(())[()]
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{op}: {name} must be an integer, got {type(value).__name__} {value!r}")
    return int(value)


# -- top-level functions (matgrad.<name>) ------------------------------------------------------
#: what :mod:`matgrad` exports at top level from here
TOP_LEVEL = {"polygamma": polygamma}
