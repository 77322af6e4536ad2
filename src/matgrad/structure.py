"""Recognise the structure of a Jacobian matrix and say it in words and as a formula.

Conventions
-----------
A Jacobian of an output ``Y`` (any shape) with respect to an input ``X`` (any shape) is the
matrix ``J`` of shape ``(Y.size, X.size)`` with ``J[i, j] = d vec(Y)[i] / d vec(X)[j]``, where
``vec`` is **row-major** (C order), i.e. NumPy's ``ravel``: ``vec(X) = X.ravel()``. For a matrix
``X`` of shape ``(m, n)``, element ``X[i, j]`` sits at position ``i * n + j`` of ``vec(X)``.

In this convention the classic identities read (note the transposes and the order of the factors,
which differ from the column-major textbook forms ``kron(B^T, I)``/``kron(I, A)``)::

    C = A * B      (elementwise)   dvec(C)/dvec(A) = diag(vec(B))
    C = A @ B      A: m x k        dvec(C)/dvec(A) = kron(I_m, B^T)
                   B: k x n        dvec(C)/dvec(B) = kron(A, I_n)
    C = A.T        A: m x n        dvec(C)/dvec(A) = K_(m,n), the commutation matrix

:func:`describe_jacobian` recognises: all zero, identity, a multiple of the identity, diagonal
(named ``diag(vec(B))`` when the diagonal is, up to a scalar factor, the vec of a named candidate
tensor), permutation / commutation matrices, selection matrices (rows of the identity),
Kronecker products ``kron(X, Y)`` (found with the Van Loan-Pitsianis rearrangement and a rank-1
test over candidate factor shapes; a factor that is the identity, all ones, or a named candidate
or its transpose is named), block-diagonal matrices (with their block sizes), and otherwise
reports the sparsity: the number and percentage of nonzeros and, for small matrices, the zero
pattern.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["JacobianStructure", "commutation_matrix", "describe_jacobian", "vlp_rearrange"]

#: Largest matrix (rows * columns) searched over every divisor pair of its shape for a
#: Kronecker factorisation; bigger ones try only the splits that follow the tensor shapes.
FULL_SEARCH_LIMIT = 65_536
#: Largest matrix for which any structure beyond counting nonzeros is looked for.
ANALYSIS_LIMIT = 4_000_000
#: Largest matrix (each side) whose zero pattern is drawn.
PATTERN_LIMIT = 64


@dataclass(frozen=True)
class JacobianStructure:
    """What a Jacobian looks like.

    ``kind`` is one of ``zero``, ``identity``, ``scaled_identity``, ``diagonal``,
    ``permutation``, ``selection``, ``constant``, ``kronecker``, ``block_diagonal``,
    ``sparse`` or ``dense``. ``formula`` is a short formula in the row-major vec convention
    (``diag(vec(B))``, ``kron(I_3, B^T)``, ``K_(3,3)``; empty when there is none), ``words`` a
    sentence. ``nnz``/``density`` count the nonzero entries (``density`` in [0, 1]).
    ``block_sizes`` lists the (rows, columns) of each diagonal block when the matrix is
    block-diagonal with at least two blocks, ``kron_factors`` the shapes of the two Kronecker
    factors when one was found, ``pattern`` the zero pattern (``#`` nonzero, ``.`` zero) of a
    matrix up to 64 x 64.
    """

    kind: str
    formula: str
    words: str
    shape: tuple[int, int]
    nnz: int
    density: float
    is_zero: bool = False
    is_diagonal: bool = False
    is_block_diagonal: bool = False
    block_sizes: tuple[tuple[int, int], ...] = ()
    kron_factors: tuple[tuple[int, int], tuple[int, int]] | None = None
    pattern: tuple[str, ...] | None = field(default=None, repr=False)

    @property
    def percent_nonzero(self) -> float:
        """Share of nonzero entries, in percent."""
        return 100.0 * self.density

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (tuples become lists)."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["block_sizes"] = [list(b) for b in self.block_sizes]
        d["kron_factors"] = (
            None if self.kron_factors is None else [list(f) for f in self.kron_factors]
        )
        d["pattern"] = None if self.pattern is None else list(self.pattern)
        d["percent_nonzero"] = self.percent_nonzero
        return d


# -- small helpers -----------------------------------------------------------------------------
def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape) if len(shape) else "scalar"


def _prod(shape: Iterable[int]) -> int:
    return math.prod(int(s) for s in shape)


def _tolerance(J: np.ndarray, rtol: float | None, atol: float | None = 0.0) -> float:
    """Entries up to ``rtol * max|J|`` or ``atol`` (default: 64 machine epsilons of J's dtype,
    rounding noise such as the 1e-16 entries of a gradient that is exactly zero) are zero."""
    if rtol is None:
        rtol = 1e-5 if J.dtype == np.float32 else 1e-9
    if atol is None:
        atol = 64 * float(np.finfo(J.dtype if J.dtype == np.float32 else np.float64).eps)
    scale = float(np.max(np.abs(J))) if J.size else 0.0
    return max(rtol * max(scale, np.finfo(np.float64).tiny), atol)


def _coef_text(c: float, scalars: Sequence[tuple[str, float]] = ()) -> str:
    """``2 * `` for a coefficient 2, ``-`` for -1, empty for 1; ``L * `` when the coefficient
    is the value of a named scalar ``L`` (e.g. det(A) in the gradient of L = det(A))."""
    if math.isclose(c, 1.0, rel_tol=1e-6):
        return ""
    if math.isclose(c, -1.0, rel_tol=1e-6):
        return "-"
    for name, value in scalars:
        if value != 0 and math.isclose(c, value, rel_tol=1e-6):
            return f"{name} * "
        if value != 0 and math.isclose(c, -value, rel_tol=1e-6):
            return f"-{name} * "
        if value != 0 and math.isclose(c, 1 / value, rel_tol=1e-6):
            return f"(1/{name}) * "
    return f"{c:.4g} * "


def _t_label(name: str) -> str:
    """The label of a candidate's transpose: ``B^T``; ``A^-T`` for ``A^-1``."""
    return name[:-3] + "^-T" if name.endswith("^-1") else f"{name}^T"


def commutation_matrix(m: int, n: int) -> np.ndarray:
    """The ``(m*n, m*n)`` permutation ``K`` with ``vec(X.T) = K @ vec(X)`` for ``X`` of shape
    ``(m, n)`` (row-major vec)."""
    K = np.zeros((m * n, m * n))
    for i in range(m):
        for j in range(n):
            K[j * m + i, i * n + j] = 1.0
    return K


def vlp_rearrange(J: np.ndarray, m1: int, n1: int) -> np.ndarray:
    """The Van Loan-Pitsianis rearrangement of ``J`` (``(m1*m2, n1*n2)``) into ``R`` of shape
    ``(m1*n1, m2*n2)`` with ``R[i1*n1 + j1, i2*n2 + j2] = J[i1*m2 + i2, j1*n2 + j2]``.

    ``J = kron(X, Y)`` (X ``m1 x n1``, Y ``m2 x n2``) exactly when ``R = vec(X) vec(Y)^T`` has
    rank one; the leading singular pair of ``R`` gives the nearest Kronecker product."""
    M, N = J.shape
    m2, n2 = M // m1, N // n1
    return J.reshape(m1, m2, n1, n2).transpose(0, 2, 1, 3).reshape(m1 * n1, m2 * n2)


def _rank_one_factors(R: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray] | None:
    """``(u, v)`` with ``R == outer(u, v)`` (within ``tol``), or None when ``R`` does not have
    rank one. One step of cross approximation around the largest entry: exact for a rank-one
    matrix, O(size), where the leading singular pair of the Van Loan-Pitsianis method would
    cost a full SVD of ``R``."""
    i, j = np.unravel_index(int(np.argmax(np.abs(R))), R.shape)
    pivot = R[i, j]
    if pivot == 0:
        return None
    u, v = R[:, j].copy(), R[i, :] / pivot
    if np.max(np.abs(R - np.outer(u, v))) > tol:
        return None
    return u, v


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _shape_splits(shape: Sequence[int]) -> list[int]:
    """Products of leading axes of ``shape``: the factor sizes that follow the tensor layout."""
    out = []
    for a in range(len(shape) + 1):
        out.append(_prod(shape[:a]))
    return out


# -- naming against candidate tensors ------------------------------------------------------------
def _as_candidates(factors: Mapping[str, Any] | None) -> list[tuple[str, np.ndarray]]:
    out = []
    for name, value in (factors or {}).items():
        arr = np.asarray(getattr(value, "_data", value), dtype=np.float64)
        if arr.size and np.all(np.isfinite(arr)):
            out.append((str(name), arr))
    return out


def _fit(target: np.ndarray, ref: np.ndarray, tol: float) -> float | None:
    """The scalar ``c`` with ``target == c * ref`` (within ``tol``), or None."""
    denom = float(np.vdot(ref, ref))
    if denom == 0.0:
        return None
    c = float(np.vdot(ref, target)) / denom
    if c == 0.0 or np.max(np.abs(target - c * ref)) > tol:
        return None
    return c


def _name_vector(
    d: np.ndarray, candidates: list[tuple[str, np.ndarray]], tol: float
) -> tuple[str, float] | None:
    """Name ``d`` as ``vec(X)`` or ``vec(X^T)`` (up to a scalar) for a candidate ``X`` of the
    same size, or as ``vec(I_n)`` (the gradient of a trace)."""
    n = math.isqrt(d.size)
    if n > 1 and n * n == d.size:
        c = _fit(d, np.eye(n).ravel(), tol)
        if c is not None:
            return f"I_{n}", c
    for name, arr in candidates:
        if arr.size == d.size:
            variants = [(name, arr)] + ([(_t_label(name), arr.T)] if arr.ndim == 2 else [])
            for label, mat in variants:
                c = _fit(d, mat.ravel(), tol)
                if c is not None:
                    return label, c
    return None


def _name_matrix(
    F: np.ndarray, candidates: list[tuple[str, np.ndarray]], tol: float
) -> tuple[str, float] | None:
    """Name the matrix ``F`` as ``c * X`` or ``c * X^T`` for a candidate matrix ``X``; the
    identity and all-ones matrices are named ``I_n`` and ``ones(r,c)``."""
    r, s = F.shape
    if r == s:
        c = _fit(F, np.eye(r), tol)
        if c is not None:
            return f"I_{r}", c
    c = _fit(F, np.ones_like(F), tol)
    if c is not None:
        return f"ones({r},{s})", c
    for name, arr in candidates:
        mats = []
        if arr.ndim == 2:
            mats = [(name, arr), (_t_label(name), arr.T)]
        elif arr.ndim == 1:
            mats = [(name, arr.reshape(-1, 1)), (_t_label(name), arr.reshape(1, -1))]
        for label, mat in mats:
            if mat.shape == F.shape:
                c = _fit(F, mat, tol)
                if c is not None:
                    return label, c
    return None


# -- the recognisers ---------------------------------------------------------------------------
def _block_diagonal(nz: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Finest split of ``nz`` (a boolean matrix) into contiguous diagonal blocks; ``()`` when
    there is at most one block."""
    M, N = nz.shape
    rows_any = nz.any(axis=1)
    first = np.where(rows_any, np.argmax(nz, axis=1), N)
    last = np.where(rows_any, N - np.argmax(nz[:, ::-1], axis=1), 0)  # one past the last
    prefix_max = np.concatenate([[0], np.maximum.accumulate(last)])  # over rows < r
    suffix_min = np.concatenate([np.minimum.accumulate(first[::-1])[::-1], [N]])  # rows >= r
    cuts = [(0, 0)]
    for r in range(1, M):
        c = int(prefix_max[r])
        if c <= suffix_min[r] and 0 < c < N and c > cuts[-1][1] and rows_any[cuts[-1][0] : r].any():
            cuts.append((r, c))
    if len(cuts) < 2:
        return ()
    cuts.append((M, N))
    return tuple((r1 - r0, c1 - c0) for (r0, c0), (r1, c1) in zip(cuts, cuts[1:], strict=False))


def _kronecker(
    J: np.ndarray,
    out_shape: Sequence[int],
    in_shape: Sequence[int],
    candidates: list[tuple[str, np.ndarray]],
    tol: float,
    scalars: Sequence[tuple[str, float]] = (),
) -> tuple[str, str, tuple[tuple[int, int], tuple[int, int]]] | None:
    """Find ``J = kron(X, Y)`` with both factors bigger than 1 x 1; return (formula, words,
    factor shapes) for the most telling split, or None."""
    M, N = J.shape
    if M < 2 or N < 2:
        return None
    natural_m, natural_n = _shape_splits(out_shape), _shape_splits(in_shape)
    pairs: list[tuple[int, int]] = [(a, b) for a in natural_m for b in natural_n]
    if M * N <= FULL_SEARCH_LIMIT:
        pairs += [(a, b) for a in _divisors(M) for b in _divisors(N)]
    seen: set[tuple[int, int]] = set()
    found: list[tuple[tuple, str, str, tuple]] = []
    for m1, n1 in pairs:
        if (m1, n1) in seen or M % m1 or N % n1:
            continue
        seen.add((m1, n1))
        m2, n2 = M // m1, N // n1
        if m1 * n1 < 2 or m2 * n2 < 2:
            continue
        R = vlp_rearrange(J, m1, n1)
        factors = _rank_one_factors(R, tol)
        if factors is None:
            continue
        X, Y = factors[0].reshape(m1, n1), factors[1].reshape(m2, n2)
        nx = _name_matrix(X, candidates, tol=_tolerance(X, 1e-7))
        ny = _name_matrix(Y, candidates, tol=_tolerance(Y, 1e-7))
        identity_size = 0
        for named, size in ((nx, m1), (ny, m2)):
            if named is not None and named[0].startswith("I_"):
                identity_size = max(identity_size, size)
        named_count = (nx is not None) + (ny is not None)
        score = (
            named_count,
            identity_size,
            (m1, n1) in [(a, b) for a in natural_m for b in natural_n],
        )
        labels, shown = [], []
        coef = 1.0
        for named in (nx, ny):
            if named is None:
                labels.append(f"F{len(labels) + 1}")
            else:
                labels.append(named[0])
                coef *= named[1]
        if named_count < 2:  # an unnamed factor carries the scale
            coef = 1.0
            for named, mat, label in ((nx, X, labels[0]), (ny, Y, labels[1])):
                other = ny if named is nx else nx
                if named is None:
                    scaled = mat * (other[1] if other is not None else 1.0)
                    if scaled.size <= 16:
                        text = np.array2string(
                            scaled + 0.0, precision=3, suppress_small=True, separator=", "
                        ).replace("\n", "")
                        shown.append(f"{label} = {' '.join(text.split())}")
        formula = f"{_coef_text(coef, scalars)}kron({labels[0]}, {labels[1]})"
        words = (
            f"Kronecker product of a {m1}x{n1} factor ({labels[0]}) and a {m2}x{n2} factor "
            f"({labels[1]})" + "".join(f", {t}" for t in shown)
        )
        if nx is not None and nx[0].startswith("I_"):
            words = f"block-diagonal: {m1} copies of the {m2}x{n2} block {labels[1]}, i.e. " + words
        found.append((score, formula, words, ((m1, n1), (m2, n2))))
    if not found:
        return None
    best = max(found, key=lambda f: f[0])
    return best[1], best[2], best[3]


def _pattern(nz: np.ndarray) -> tuple[str, ...] | None:
    if nz.shape[0] > PATTERN_LIMIT or nz.shape[1] > PATTERN_LIMIT:
        return None
    return tuple("".join("#" if v else "." for v in row) for row in nz)


def describe_jacobian(
    J: Any,
    out_shape: Sequence[int],
    in_shape: Sequence[int],
    factors: Mapping[str, Any] | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> JacobianStructure:
    """Describe the structure of the Jacobian ``J`` of an output of shape ``out_shape`` with
    respect to an input of shape ``in_shape``.

    ``J`` is ``(prod(out_shape), prod(in_shape))`` or ``out_shape + in_shape``; its rows and
    columns follow the row-major vec convention (``vec(X) = X.ravel()``, see the module
    docstring). ``factors`` maps names to candidate tensors (arrays or matgrad tensors) used
    to name what is found: a diagonal equal to ``c * vec(B)`` is ``diag(vec(B))``, a Kronecker
    factor equal to ``B`` or ``B.T`` is ``B`` / ``B^T``. Entries within ``rtol`` times the
    largest entry (default 1e-9; 1e-5 for float32), or within ``atol`` (default 64 machine
    epsilons: rounding noise), count as zero.

    >>> import numpy as np
    >>> A, B = np.arange(9.).reshape(3, 3), np.arange(1., 10.).reshape(3, 3)
    >>> describe_jacobian(np.diag(B.ravel()), (3, 3), (3, 3), {"A": A, "B": B}).formula
    'diag(vec(B))'
    >>> describe_jacobian(np.kron(np.eye(3), B.T), (3, 3), (3, 3), {"A": A, "B": B}).formula
    'kron(I_3, B^T)'
    """
    out_shape = tuple(int(s) for s in out_shape)
    in_shape = tuple(int(s) for s in in_shape)
    M, N = _prod(out_shape), _prod(in_shape)
    arr = np.asarray(getattr(J, "_data", J))
    if arr.size != M * N:
        raise ValueError(
            f"describe_jacobian: a Jacobian of a {_shape_text(out_shape)} output with respect to "
            f"a {_shape_text(in_shape)} input has {M}x{N} entries, got an array of shape "
            f"{arr.shape}"
        )
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    J = arr.astype(dtype, copy=False).reshape(M, N)
    shape = (M, N)
    tol = _tolerance(J, rtol, atol)
    finite = bool(np.all(np.isfinite(J)))
    nz = np.abs(J) > tol if finite else ~(J == 0)
    nnz = int(nz.sum())
    density = nnz / J.size if J.size else 0.0
    base: dict[str, Any] = {"shape": shape, "nnz": nnz, "density": density}
    pct = f"{nnz} of {J.size} entries nonzero ({100 * density:.1f}%)"
    if nnz == 0:
        return JacobianStructure(
            "zero",
            "0",
            f"all zero ({M}x{N}): at these values the output does not change with this input",
            is_zero=True,
            **base,
        )
    pattern = _pattern(nz)
    if not finite:
        return JacobianStructure(
            "dense", "", f"contains NaN or inf; {pct}", pattern=pattern, **base
        )
    if J.size > ANALYSIS_LIMIT:
        kind = "sparse" if density < 0.5 else "dense"
        return JacobianStructure(kind, "", f"{kind} ({pct}); too large to analyse further", **base)
    named_arrays = _as_candidates(factors)
    candidates = [(n, a) for n, a in named_arrays if a.size > 1]
    scalars = [(n, float(a.ravel()[0])) for n, a in named_arrays if a.size == 1]
    blocks = _block_diagonal(nz)
    block_info: dict[str, Any] = {"is_block_diagonal": bool(blocks), "block_sizes": blocks}

    # diagonal family
    if M == N and not (nz & ~np.eye(M, dtype=bool)).any():
        d = np.diag(J)
        c = _fit(d, np.ones(M), tol)
        if c is not None and math.isclose(c, 1.0, rel_tol=1e-9, abs_tol=tol):
            return JacobianStructure(
                "identity",
                f"I_{M}",
                f"the identity I_{M}: each output "
                "element moves one-for-one with the matching input element",
                is_diagonal=True,
                **base,
                **block_info,
            )
        if c is not None:
            return JacobianStructure(
                "scaled_identity",
                f"{_coef_text(c, scalars)}I_{M}",
                f"{c:.4g} times the identity I_{M}",
                is_diagonal=True,
                **base,
                **block_info,
            )
        named = _name_vector(d, candidates, tol)
        formula = (
            "diag(d)" if named is None else f"{_coef_text(named[1], scalars)}diag(vec({named[0]}))"
        )
        who = (
            "an unnamed vector d"
            if named is None
            else f"{_coef_text(named[1], scalars)}vec({named[0]})".replace(" * ", "*")
        )
        words = (
            f"diagonal: output element i depends only on input element i, with slope "
            f"{who}[i]; {pct}"
        )
        return JacobianStructure(
            "diagonal", formula, words, is_diagonal=True, pattern=pattern, **base, **block_info
        )

    zero_one = bool(np.all((J == 0) | (np.abs(J - 1) <= tol)))
    per_row, per_col = nz.sum(axis=1), nz.sum(axis=0)
    if zero_one and M == N and np.all(per_row == 1) and np.all(per_col == 1):
        if len(in_shape) == 2 and out_shape == (in_shape[1], in_shape[0]):
            m, n = in_shape
            if np.array_equal(J, commutation_matrix(m, n)):
                return JacobianStructure(
                    "permutation",
                    f"K_({m},{n})",
                    f"the commutation matrix K_({m},{n}): "
                    "a permutation with vec(X^T) = K vec(X), i.e. a transpose moves entries "
                    "without changing them",
                    pattern=pattern,
                    **base,
                    **block_info,
                )
        return JacobianStructure(
            "permutation",
            "P",
            "a permutation matrix: every output element is one input element, moved",
            pattern=pattern,
            **base,
            **block_info,
        )
    if zero_one and np.all(per_row <= 1) and np.all(per_col <= 1):
        return JacobianStructure(
            "selection",
            "S",
            f"a selection matrix (rows of the identity): "
            f"each output element is a copy of one input element; {pct}",
            pattern=pattern,
            **base,
            **block_info,
        )
    c = _fit(J, np.ones_like(J), tol)
    if c is not None:
        formula = f"{_coef_text(c, scalars)}ones({M},{N})"
        return JacobianStructure(
            "constant",
            formula,
            f"every entry equals {c:.4g}: each output "
            "element is the same multiple of the sum of the input elements",
            pattern=pattern,
            **base,
            **block_info,
        )
    if N == 1 and M > 1:
        named = _name_vector(J[:, 0], candidates, tol)
        if named is not None:
            formula = f"{_coef_text(named[1], scalars)}vec({named[0]})"
            return JacobianStructure(
                "dense" if density > 0.5 else "sparse",
                formula,
                f"a single column, equal to {formula}; {pct}",
                pattern=pattern,
                **base,
                **block_info,
            )
    if M == 1:
        named = _name_vector(J[0], candidates, tol)
        if named is not None:
            formula = f"{_coef_text(named[1], scalars)}vec({named[0]})^T"
            return JacobianStructure(
                "dense" if density > 0.5 else "sparse",
                formula,
                f"a single row, the gradient, equal to {formula}; {pct}",
                pattern=pattern,
                **base,
                **block_info,
            )
    named = _name_matrix(J, candidates, tol)
    if named is not None and M > 1 and N > 1:
        formula = f"{_coef_text(named[1], scalars)}{named[0]}"
        kind = "sparse" if density <= 0.5 else "dense"
        return JacobianStructure(
            kind,
            formula,
            f"the matrix {formula} itself; {pct}",
            pattern=pattern,
            **base,
            **block_info,
        )
    kron = _kronecker(J, out_shape, in_shape, candidates, tol, scalars)
    if kron is not None:
        formula, words, kron_shapes = kron
        return JacobianStructure(
            "kronecker",
            formula,
            f"{words}; {pct}",
            kron_factors=kron_shapes,
            pattern=pattern,
            **base,
            **block_info,
        )
    if blocks:
        sizes = f"{len(blocks)} blocks of sizes " + ", ".join(_shape_text(b) for b in blocks)
        if len(set(blocks)) == 1:
            sizes = f"{len(blocks)} blocks of {_shape_text(blocks[0])}"
        return JacobianStructure(
            "block_diagonal",
            f"blkdiag(D_1, ..., D_{len(blocks)})",
            f"block-diagonal: {sizes}; {pct}",
            pattern=pattern,
            **base,
            **block_info,
        )
    if M == 1:
        return JacobianStructure(
            "dense" if density > 0.5 else "sparse",
            "",
            f"a single row (the gradient); {pct}",
            pattern=pattern,
            **base,
            **block_info,
        )
    kind = "sparse" if density <= 0.5 else "dense"
    return JacobianStructure(kind, "", f"{kind}: {pct}", pattern=pattern, **base, **block_info)
