"""Array backends: which library holds a tensor's data, and moving data between libraries.

NumPy is the default. A tensor may also wrap a Dask array (lazy, chunked, possibly on a
``dask.distributed`` cluster) or a CuPy array (GPU). Forward implementations call NumPy's API,
which hands Dask and CuPy arrays to their own implementations (``__array_ufunc__`` and
``__array_function__``), so the same code runs on all three without a per-op look-up of the
namespace; the few functions that must create arrays ask :func:`namespace` for the array's own
(Array API) namespace.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BACKENDS = ("numpy", "dask", "cupy")


def backend_of(array: Any) -> str:
    """'numpy', 'dask', 'cupy' (or the root module of another array type)."""
    if isinstance(array, np.ndarray | np.generic) or getattr(
        array, "__matgrad_numpy_like__", False
    ):
        return "numpy"
    return type(array).__module__.partition(".")[0]


def is_array(obj: Any) -> bool:
    """True for arrays of a supported library other than Python numbers and lists."""
    return isinstance(obj, np.ndarray | np.generic) or backend_of(obj) in ("dask", "cupy")


def namespace(array: Any) -> Any:
    """The array's own Array API namespace (NumPy itself for NumPy arrays)."""
    if isinstance(array, np.ndarray | np.generic):
        return np
    import array_api_compat

    return array_api_compat.array_namespace(array)


class ChunkedShape(tuple):
    """A Dask array's shape that also carries its chunks, so that a gradient broadcast back
    to this shape (the gradient of a sum or mean) gets the chunking of the array it belongs
    to, instead of one big chunk that every later op would have to split."""

    chunks: tuple[tuple[int, ...], ...]


def shape_of(array: Any) -> tuple[int, ...]:
    shape = tuple(np.shape(array))
    if backend_of(array) == "dask":
        shape = ChunkedShape(shape)
        shape.chunks = array.chunks
    return shape


def broadcast_to(array: Any, shape: tuple[int, ...]) -> Any:
    """``np.broadcast_to``, keeping the chunks a :class:`ChunkedShape` asks for."""
    chunks = getattr(shape, "chunks", None)
    if chunks is not None and backend_of(array) == "dask":
        import dask.array as da

        return da.broadcast_to(array, tuple(shape), chunks=chunks)
    return np.broadcast_to(array, shape)


def check_same_backend(op: str, arrays: list[Any]) -> None:
    """Refuse an op whose tensor inputs live in different array libraries."""
    names = {backend_of(a) for a in arrays}
    if len(names) > 1:
        raise TypeError(
            f"{op}: inputs live in different array libraries ({', '.join(sorted(names))}); "
            "move them to one first, e.g. tensor.to('dask') or tensor.to('numpy')"
        )


def to_backend(array: Any, name: str, **options: Any) -> Any:
    """``array`` in library ``name`` ('numpy', 'dask' or 'cupy'). Moving to Dask takes
    ``chunks=`` (default 'auto'); moving a Dask array to NumPy computes it."""
    source = backend_of(array)
    if name == source:
        return array
    if name == "numpy":
        if source == "dask":
            return np.asarray(array.compute())
        if source == "cupy":
            return array.get()
        return np.asarray(array)
    host = to_backend(array, "numpy")
    if name == "dask":
        import dask.array as da

        return da.from_array(host, chunks=options.get("chunks", "auto"))
    if name == "cupy":
        try:
            import cupy
        except ImportError as exc:
            raise RuntimeError(
                "the 'cupy' backend needs CuPy and a CUDA GPU: pip install cupy-cuda12x"
            ) from exc
        return cupy.asarray(host)
    raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")


def unsupported(op: str, array: Any, why: str = "") -> NotImplementedError:
    return NotImplementedError(
        f"{op} is not supported for {backend_of(array)} arrays" + (f": {why}" if why else "")
    )
