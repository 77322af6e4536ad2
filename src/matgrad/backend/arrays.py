"""Array backends: which library holds a tensor's data, how libraries mix in one op, and
moving data between libraries.

NumPy is the default. A tensor may also wrap a Dask array (lazy, chunked, possibly on a
``dask.distributed`` cluster) or a CuPy array (GPU). Forward implementations call NumPy's API,
which hands Dask and CuPy arrays to their own implementations (``__array_ufunc__`` and
``__array_function__``), so the same code runs on all three without a per-op look-up of the
namespace; the few functions that must create arrays ask :func:`namespace` for the array's own
(Array API) namespace.

Libraries mix in one op exactly as they mix on their own (:func:`check_backends`): Dask takes
NumPy arrays in (it wraps each as a one-chunk array), so an op on a Dask and a NumPy tensor runs
in Dask and its result is lazy; CuPy refuses NumPy arrays (no implicit copy between host and
GPU), and so does matgrad. Nothing is moved or computed behind the user's back.
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
    """``np.broadcast_to``, keeping the chunks a :class:`ChunkedShape` asks for (the result is
    then a Dask array, also from a NumPy ``array``: the gradient of a Dask input is lazy)."""
    chunks = getattr(shape, "chunks", None)
    source = backend_of(array)
    if chunks is None or source not in ("numpy", "dask"):
        return np.broadcast_to(array, shape)
    import dask.array as da

    if source == "numpy":
        array = da.from_array(np.asarray(array), chunks=-1)
    if array.size == 1:
        # one value over every chunk (the gradient of a full sum or mean): a blockwise product
        # with ones, which Dask fuses into the elementwise ops that follow, where broadcast_to
        # would add a layer of one task per chunk; x * 1 == x exactly
        return array.reshape(()) * da.ones(tuple(shape), dtype=array.dtype, chunks=chunks)
    return da.broadcast_to(array, tuple(shape), chunks=chunks)


def _library(array: Any) -> str:
    """:func:`backend_of`, telling Dask arrays of CuPy chunks ('dask/cupy') from Dask arrays of
    NumPy chunks ('dask'): only the latter take NumPy arrays in."""
    name = backend_of(array)
    if name == "dask":
        meta = getattr(array, "_meta", None)
        if meta is not None and backend_of(meta) == "cupy":
            return "dask/cupy"
    return name


_MOVE_HINT = "move one first, e.g. tensor.to('dask'), tensor.to('numpy') or tensor.cuda()"


def check_backends(op: str, inputs: list[Any], outputs: list[Any] = ()) -> None:
    """Refuse an op whose arrays do not mix the way their libraries mix.

    ``inputs`` are the arrays of the op's tensor inputs, ``outputs`` those it returned. One
    library throughout is fine. Dask with NumPy is fine when the result is Dask: that is Dask's
    own rule (``dask_array @ numpy_array`` is a lazy Dask array). A NumPy result from a Dask
    input means the forward loaded the Dask data into memory, which matgrad never does
    silently. CuPy with NumPy (or with Dask) is refused, as CuPy refuses it (``TypeError:
    Unsupported type numpy.ndarray``): there is no implicit copy between host and GPU.
    Raises ``TypeError`` naming the op and the libraries.
    """
    names = {_library(a) for a in inputs}
    out_names = {_library(a) for a in outputs}
    if len(names | out_names) <= 1:
        return
    if names <= {"dask", "numpy"} and "dask" in names:
        if out_names <= {"dask"}:
            return
        raise TypeError(
            f"{op}: returned a NumPy array from a Dask input, which would load the Dask data "
            "into memory; compute it explicitly first (tensor.compute() or matgrad.compute)"
        )
    if len(names) <= 1:  # one library in, another out
        raise TypeError(
            f"{op}: inputs in {', '.join(sorted(names))} gave a result in "
            f"{', '.join(sorted(out_names - names))}: refused (no silent conversion)"
        )
    listed = ", ".join(sorted(names))
    if "cupy" in names and "numpy" in names:
        raise TypeError(
            f"{op}: inputs live in different array libraries ({listed}): a CuPy (GPU) array does "
            "not combine with a NumPy (host) array, as in CuPy itself (no implicit copy between "
            "host and GPU); move one first: tensor.cuda() / tensor.to('cupy'), or tensor.cpu()"
        )
    raise TypeError(
        f"{op}: inputs live in different array libraries ({listed}) that do not mix; " + _MOVE_HINT
    )


def check_inplace(op: str, target: Any, result: Any) -> None:
    """Refuse writing ``result`` into ``target``'s memory across libraries (``numpy_tensor +=
    dask_tensor`` would compute the Dask value; Dask itself refuses NumPy ``out=`` arrays)."""
    if type(result) is type(target) or backend_of(result) == backend_of(target):
        return
    raise TypeError(
        f"{op}: the result is a {backend_of(result)} array and cannot be written in place into "
        f"a {backend_of(target)} tensor (that would "
        + ("compute it" if backend_of(result) == "dask" else "copy it between devices")
        + "); compute it first (matgrad.compute / tensor.compute()), move it (tensor.to(...)), "
        "or use the out-of-place op"
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
