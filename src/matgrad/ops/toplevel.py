"""PyTorch's top-level names for functions of :mod:`matgrad.ops.linalg` (``torch.det``,
``torch.inverse``, ``torch.tensordot``, ...), with PyTorch's top-level signatures where they
differ from ``torch.linalg``'s (``torch.cross``'s default ``dim``, ``torch.pinverse``'s
``rcond``, ``torch.svd``'s V): the ``torch_<name>`` functions. :mod:`matgrad.ops.bindings`
adds them to the top-level functions; they are here, not in :mod:`matgrad.ops.composite`,
because linalg itself is written over composite. Top-level names of the linalg rows
(``torch.det``, ``torch.inverse``) are the rows' ``function`` variants, and those of linalg's
composites (``torch.logdet``, ``torch.kron``) are in ``linalg.TOP_LEVEL``.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.tensor_base import Tensor, as_tensor
from . import composite, linalg
from .registry import OPS


def functions() -> dict[str, Any]:
    """{PyTorch's top-level name: matgrad's function} of this module."""
    out = dict({name[len("torch_") :]: fn for name, fn in globals().items()
                if name.startswith("torch_") and callable(fn)})  # fmt: skip
    out.update(linalg.TOP_LEVEL)  # torch.lu, lu_solve, lu_unpack, geqrf, orgqr, ormqr
    return out


def torch_tensordot(a: Any, b: Any, dims: Any = 2) -> Tensor:
    """Contract the axes ``dims`` of ``a`` and ``b`` (``linalg.tensordot``); a contracted
    axis of size 1 against one of size n sums the other tensor over it first, as PyTorch's
    (sum_k a[0] b[k] = a[0] sum_k b[k])."""
    a, b = as_tensor(a), as_tensor(b)
    if isinstance(dims, int) or (isinstance(dims, Tensor) and dims.ndim == 0):
        n = int(dims)
        axes_a, axes_b = list(range(a.ndim - n, a.ndim)), list(range(n))
    else:
        axes_a, axes_b = ([int(d)] if not isinstance(d, list | tuple) else [int(x) for x in d]
                          for d in dims)  # fmt: skip
    for i, j in zip(axes_a, axes_b, strict=False):
        sa, sb = a.shape[i], b.shape[j]
        if sa != sb and sa == 1:
            b = composite.sum(b, j, keepdim=True)
        elif sa != sb and sb == 1:
            a = composite.sum(a, i, keepdim=True)
    return linalg.tensordot(a, b, (axes_a, axes_b))


def torch_pinverse(input: Any, rcond: float = 1e-15) -> Tensor:  # noqa: A002 - PyTorch's name
    """The pseudo-inverse; singular values below ``rcond`` times the largest are dropped."""
    return linalg.pinv(input, rtol=rcond)


def torch_chain_matmul(*matrices: Any) -> Tensor:
    """The product of the 2-d ``matrices`` in the cheapest order (``linalg.multi_dot``)."""
    if len(matrices) == 1 and isinstance(matrices[0], list | tuple):
        matrices = tuple(matrices[0])
    if len(matrices) == 1:
        return as_tensor(matrices[0])
    return linalg.multi_dot(list(matrices))


def torch_cross(input: Any, other: Any, dim: int | None = None) -> Tensor:  # noqa: A002
    """The cross product of 3-vectors along ``dim``; without ``dim``, along the first axis
    of size 3 of the broadcast shape (PyTorch's ``torch.cross``; ``linalg.cross`` takes the
    last axis)."""
    a, b = as_tensor(input), as_tensor(other)
    if dim is None:
        shape = _broadcast(a.shape, b.shape)
        dim = next((i for i, n in enumerate(shape) if n == 3), None)
        if dim is None:
            raise RuntimeError(
                f"cross: no dimension of size 3 in input of shape {tuple(a.shape)} and other "
                f"of shape {tuple(b.shape)}"
            )
    if a.ndim != b.ndim:
        raise RuntimeError(
            f"linalg.cross: inputs must have the same number of dimensions, got {a.ndim} and "
            f"{b.ndim}"
        )
    return linalg.cross(a, b, dim=dim)


def _broadcast(*shapes: Sequence[int]) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))


QR = namedtuple("QR", ["Q", "R"])
SVD = namedtuple("SVD", ["U", "S", "V"])
TriangularSolve = namedtuple("TriangularSolve", ["solution", "cloned_coefficient"])


def torch_qr(input: Any, some: bool = True) -> QR:  # noqa: A002
    """A = QR (``torch.qr``): ``some`` gives the reduced factors, else the complete ones."""
    return QR(*linalg.qr(input, "reduced" if some else "complete"))


def torch_svd(input: Any, some: bool = True, compute_uv: bool = True) -> SVD:  # noqa: A002
    """A = U diag(S) V^H (``torch.svd``: V, not V^H; ``some`` gives the reduced factors).
    Without ``compute_uv``, U and V are zeros of shape (m, m) and (n, n), as PyTorch's."""
    A = as_tensor(input)
    if not compute_uv:
        m, n = A.shape[-2], A.shape[-1]
        zeros = [Tensor._wrap(np.zeros(A.shape[:-2] + (k, k), dtype=A.dtype)) for k in (m, n)]
        return SVD(zeros[0], linalg.svdvals(A), zeros[1])
    U, S, Vh = linalg.svd(A, full_matrices=not some)
    return SVD(U, S, linalg._mH(Vh))


def torch_cholesky(input: Any, upper: bool = False) -> Tensor:  # noqa: A002
    """L with A = L L^H (``torch.cholesky``; U = L^H with ``upper``)."""
    return linalg.cholesky(input, upper=bool(upper))


def torch_cholesky_solve(input: Any, input2: Any, upper: bool = False) -> Tensor:  # noqa: A002
    """X with A X = B for A = L L^H (``input2`` = L; U^H U with ``upper``) and B = ``input``:
    two triangular solves."""
    B, L = as_tensor(input), as_tensor(input2)
    lead = np.broadcast_shapes(B.shape[:-2], L.shape[:-2])
    B = composite.expand(B, lead + tuple(B.shape[-2:]))
    L = composite.expand(L, lead + tuple(L.shape[-2:]))
    Y = linalg.solve_triangular(linalg._mH(L) if upper else L, B, upper=False)
    return linalg.solve_triangular(L if upper else linalg._mH(L), Y, upper=True)


def torch_cholesky_inverse(input: Any, upper: bool = False) -> Tensor:  # noqa: A002
    """(L L^H)^-1 from its Cholesky factor L (U^H U with ``upper``)."""
    L = as_tensor(input)
    n = L.shape[-1]
    eye = Tensor._wrap(np.broadcast_to(np.eye(n, dtype=L.dtype), L.shape))
    return torch_cholesky_solve(eye, L, upper)


def torch_triangular_solve(
    b: Any, A: Any, upper: bool = True, transpose: bool = False, unitriangular: bool = False
) -> TriangularSolve:
    """X with op(A) X = b for triangular A (op: the transpose with ``transpose``), and a copy
    of A (``torch.triangular_solve``; batch axes broadcast)."""
    b, A = as_tensor(b), as_tensor(A)
    lead = np.broadcast_shapes(b.shape[:-2], A.shape[:-2])
    bb = composite.expand(b, lead + tuple(b.shape[-2:]))
    AA = composite.expand(A, lead + tuple(A.shape[-2:]))
    M = composite.mT(AA) if transpose else AA
    X = linalg.solve_triangular(M, bb, upper=bool(upper) != bool(transpose),
                                unitriangular=bool(unitriangular))  # fmt: skip
    return TriangularSolve(X, OPS["clone"](AA))


for _fn in [f for n, f in globals().items() if n.startswith("torch_") and callable(f)]:
    _fn.__name__ = _fn.__qualname__ = _fn.__name__.removeprefix("torch_")  # torch's name
