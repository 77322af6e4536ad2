"""``matgrad.array_api.special``: SciPy's special functions, under SciPy's names and argument
orders, over matgrad tensors.

With ``SCIPY_ARRAY_API=1`` SciPy dispatches ``scipy.special.<name>(x)`` on an array whose
namespace has a ``special`` attribute to ``namespace.special.<name>`` (SciPy's
``_support_alternative_backends``); without this module it converts the tensor to NumPy (which
a tensor that requires grad refuses). So ``scipy.special.i0e(x)`` on a matgrad tensor records
``SpecialI0eBackward0`` and can be differentiated. The functions are :mod:`matgrad.special`'s
(the rows of ``derivatives.yaml``); only the signatures that differ from PyTorch's are written
here (``polygamma(n, x)``, ``multigammaln(a, d)``, ``zeta(x, q=None)``, ``gammainc(a, x)``,
``psi``, ``j0``, ``j1``).
"""

from __future__ import annotations

from typing import Any

from ..core.tensor_base import Tensor
from ..ops import special as _special
from ..ops.registry import OPS

__all__ = [
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
    "j0",
    "j1",
    "log1p",
    "log_ndtr",
    "logit",
    "multigammaln",
    "ndtr",
    "ndtri",
    "polygamma",
    "psi",
    "sinc",
    "xlog1py",
    "xlogy",
    "zeta",
]

# the same functions as matgrad.special (one argument each, or two in SciPy's order)
digamma = psi = _special.digamma
entr = _special.entr
erf = _special.erf
erfc = _special.erfc
erfcx = _special.erfcx
erfinv = _special.erfinv
exp2 = _special.exp2
expit = _special.expit
expm1 = _special.expm1
gammainc = _special.gammainc  # (a, x): P(a, x), differentiable in x
gammaincc = _special.gammaincc
gammaln = _special.gammaln
i0 = _special.i0
i0e = _special.i0e
i1 = _special.i1
i1e = _special.i1e
j0 = _special.bessel_j0
j1 = _special.bessel_j1
log1p = _special.log1p
log_ndtr = _special.log_ndtr
ndtr = _special.ndtr
ndtri = _special.ndtri
sinc = _special.sinc  # sin(pi x) / (pi x), as numpy.sinc and scipy.special.sinc
xlog1py = _special.xlog1py
xlogy = _special.xlogy


def logit(x: Any, /) -> Tensor:
    """log(x / (1 - x)) (SciPy's logit takes no eps)."""
    return OPS["logit"](x)


def polygamma(n: Any, x: Any, /) -> Tensor:
    """psi^(n)(x) for one integer order n (SciPy also broadcasts arrays of orders; a tensor or
    array of n must hold a single value here)."""
    return _special.polygamma(n, x)


def multigammaln(a: Any, d: int, /) -> Tensor:
    """The multivariate log-gamma function of dimension d (matgrad.special.multigammaln)."""
    return OPS["mvlgamma"](a, _special._integer("multigammaln", "d", d))


def zeta(x: Any, q: Any = None, /) -> Tensor:
    """The Hurwitz zeta function zeta(x, q); the Riemann zeta function zeta(x, 1) without q.
    Differentiable in q only (as PyTorch's): a gradient in x raises."""
    return OPS["special_zeta"](x, 1.0 if q is None else q)
