"""matgrad: automatic differentiation of tensor (matrix) programs over NumPy arrays.

Operations on tensors record a graph; each node applies a tensor-level derivative rule from
``derivatives.yaml``. The API follows PyTorch's, so ``import matgrad as torch`` runs code such as::

    A = torch.randn(5, 5, requires_grad=True)
    B = torch.randn(5, 5, requires_grad=True)
    C = A @ B
    C.grad_fn                      # <MmBackward0>
    C.grad_fn._saved_self          # A
    C.grad_fn(torch.randn(5, 5))   # (grad_A, grad_B): a vector-Jacobian product
"""

import sys as _sys
from builtins import bool as _bool

import numpy as _np

from . import array_api, autograd, func, viz
from . import tensor as _tensor  # attaches the Tensor methods first
from .autograd.anomaly_mode import (
    is_anomaly_check_nan_enabled,
    is_anomaly_enabled,
)
from .core.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from .core.tensor_base import Size, as_tensor, get_default_dtype, set_default_dtype
from .creation import (
    Generator,
    arange,
    asarray,
    compute,
    default_generator,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    linspace,
    manual_seed,
    ones,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
)
from .devices import backends, cuda, device, get_default_device, set_default_device
from .func import vmap  # torch.vmap
from .ops import fft, linalg, special
from .ops.bindings import FUNCTIONS as _FUNCTIONS
from .ops.composite import *  # noqa: F403 - the composites (composite.__all__)
from .ops.einsum import einsum
from .ops.linalg import tensor_norm as norm
from .serialization import load, save
from .tensor import Tensor

float32 = _np.dtype("float32")
float64 = _np.dtype("float64")
float16 = _np.dtype("float16")
int32 = _np.dtype("int32")
int64 = _np.dtype("int64")
uint8 = _np.dtype("uint8")
bool = _np.dtype("bool")  # noqa: A001 - PyTorch's name
float = float32  # noqa: A001 - torch.float is float32
double = float64
long = int64
complex64 = _np.dtype("complex64")
complex128 = _np.dtype("complex128")
cfloat = complex64  # PyTorch's names
cdouble = complex128


globals().update(_FUNCTIONS)  # the table's top-level functions (`variants: [function]`)
_sys.modules[__name__ + ".linalg"] = linalg  # `import matgrad.linalg` works too
_sys.modules[__name__ + ".fft"] = fft  # `import matgrad.fft` too
_sys.modules[__name__ + ".special"] = special  # `import matgrad.special` too
globals().update(special.TOP_LEVEL)  # polygamma(n, input)


def is_tensor(obj: object) -> _bool:
    """Whether ``obj`` is a matgrad tensor."""
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:  # noqa: A002 - PyTorch's name
    """The number of elements of ``input``."""
    return input.numel()


__version__ = "0.1.0"


_LAZY = ("explain", "nn", "optim", "utils")


def __getattr__(name: str) -> object:
    # `matgrad.explain`, `matgrad.nn` and `matgrad.optim` are imported on first use (PEP 562):
    # programs that do not use them do not pay for them at `import matgrad`. The explain
    # package is callable (`matgrad.explain("C = A @ B")`), so it serves as the function too.
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'matgrad' has no attribute {name!r}")


__all__ = [name for name in dir() if not name.startswith("_")] + list(_LAZY)
