"""``matgrad.array_api``: the Python Array API standard (2024.12) over matgrad tensors.

Code written against the standard runs on matgrad tensors and can be differentiated::

    def logistic_loss(w, X, y):
        xp = w.__array_namespace__()
        z = xp.matmul(X, w)
        return xp.mean(xp.logaddexp(0.0, -y * z))

    w = matgrad.zeros(3, requires_grad=True)
    logistic_loss(w, X, y).backward()   # w.grad

Every differentiable function goes through matgrad's ops, so it records the graph:
``xp.exp(x)`` records ``ExpBackward0``, ``xp.sum(x, axis=1)`` ``SumBackward0``, ``xp.sort``
a gather (``TakeAlongAxisBackward0``), ``xp.cumulative_sum`` ``CumsumBackward0``. Functions with
a zero or undefined derivative (``floor``, ``sign``, comparisons, bitwise and logical functions,
``argmax``, ``argsort``, ...) return tensors without a graph. Integer, boolean and complex
tensors follow NumPy 2's semantics (its type promotion is the standard's, Python scalars are
"weak"); floating and complex tensors can require gradients. ``linalg`` (over
:mod:`matgrad.linalg`) and ``fft`` (over :mod:`matgrad.fft`, the same rows, with gradients) are
the two extensions; ``special``
(SciPy's special functions over :mod:`matgrad.special`, not part of the standard) is where
SciPy's Array API dispatch (``SCIPY_ARRAY_API=1``) finds ``scipy.special``'s functions.

Devices: ``"cpu"`` (NumPy data, the default; Dask data is on ``"cpu"`` too). A CuPy-backed
tensor reports its GPU, and ``to_device`` moves data between libraries.

The package follows the standard's sections: ``_creation``, ``_data_types`` (and the dtypes,
``_dtypes``), ``_elementwise``, ``_indexing``, ``_info`` (inspection), ``_linear_algebra``,
``_manipulation``, ``_searching``, ``_set``, ``_sorting``, ``_statistical``, ``_utility`` and the
extensions ``linalg`` and ``fft``. Functions that are exactly one op of the rule table (most
elementwise functions, and ``where``) are not written here: they are their rows' ``array_api``
variants in ``derivatives.yaml`` (see :mod:`._helpers`).

Conformance with the consortium's suite (``data-apis/array-api-tests``): see
``docs/array_api.md``.
"""

# ruff: noqa: F401, F403 - the namespace: it re-exports the names of every section
from __future__ import annotations

import math as _math

from ..core.tensor_base import Tensor as _Tensor
from . import (
    _creation,
    _data_types,
    _dtypes,
    _elementwise,
    _indexing,
    _info,
    _linear_algebra,
    _manipulation,
    _searching,
    _set,
    _sorting,
    _statistical,
    _utility,
    fft,
    linalg,
    special,
)
from ._creation import *
from ._data_types import *
from ._dtypes import *
from ._elementwise import *
from ._indexing import *
from ._info import *
from ._linear_algebra import *
from ._manipulation import *
from ._searching import *
from ._set import *
from ._sorting import *
from ._statistical import *
from ._utility import *
from .linalg import EighResult, QRResult, SlogdetResult, SVDResult

__array_api_version__ = "2024.12"
SUPPORTED_VERSIONS = ("2021.12", "2022.12", "2023.12", "2024.12")

Array = _Tensor

# -- constants ---------------------------------------------------------------------------------
e = _math.e
inf = _math.inf
nan = _math.nan
pi = _math.pi
newaxis = None

_SECTIONS = (
    _creation,
    _data_types,
    _dtypes,
    _elementwise,
    _indexing,
    _info,
    _linear_algebra,
    _manipulation,
    _searching,
    _set,
    _sorting,
    _statistical,
    _utility,
)
__all__ = sorted(
    {
        *(name for section in _SECTIONS for name in section.__all__),
        *("EighResult", "QRResult", "SlogdetResult", "SVDResult"),
        *("Array", "SUPPORTED_VERSIONS", "e", "inf", "nan", "pi", "newaxis"),
        *("fft", "linalg", "special"),
    }
    - {"__array_namespace_info__"}  # a dunder, as before: not exported by `import *`
)
