"""``matgrad.save`` / ``matgrad.load``: tensors, state dicts and nested containers in a file
format that holds data only, so loading a file can never run code.

The file is a zip archive (stored, not compressed) of

- ``matgrad.json``: ``{"format": "matgrad.save", "version": 1, "root": NODE}``, where a
  NODE is a JSON object with a ``"kind"``: ``none``, ``bool``, ``int``, ``float`` (finite
  values as numbers, ``"nan"``, ``"inf"``, ``"-inf"`` as strings), ``complex``, ``str``,
  ``bytes`` (base64), ``list``, ``tuple``, ``set``, ``frozenset``, ``dict``,
  ``ordered_dict``, ``counter`` (mappings as ``[key, value]`` node pairs, so keys keep their
  types), ``size`` (``matgrad.Size``), ``dtype``, ``device``, ``tensor`` (array, dtype,
  shape, ``requires_grad``, device), ``ndarray`` (also NumPy scalars), and ``ref`` (a tensor
  or array saved earlier in the same file: the same object is saved once and loaded once);
- ``arrays/<n>.npy``: each array in NumPy's ``.npy`` format, written and read without
  pickle (``allow_pickle=False``; the header is checked against the JSON before any data is
  read).

How this differs from ``torch.save``: PyTorch pickles (``weights_only=True`` restricts what
its unpickler may build; ``weights_only=False`` runs whatever the file says). matgrad never
unpickles, so the files are **not interchangeable** with PyTorch's: ``matgrad.load`` refuses a
``torch.save`` file (and any pickle) with a clear error, and PyTorch cannot read these.
``weights_only`` is accepted for compatibility and changes nothing. Only the types above can
be saved (anything else, and object or structured arrays, raise ``TypeError`` at save time);
``nn.Parameter`` is saved as a tensor (its ``requires_grad`` kept) and loads as one; two
different tensors that share memory (a view and its base) load as independent copies;
``.grad`` is not saved (as in PyTorch). Malformed or hostile files raise
:class:`SerializationError`, a ``pickle.UnpicklingError`` (what ``torch.load`` raises for a
refused file) that is also a ``RuntimeError``.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import zipfile
from collections import Counter, OrderedDict
from pickle import UnpicklingError  # the exception class only: nothing is ever unpickled
from typing import Any, BinaryIO

import numpy as np

from .backend import arrays as _backend
from .core.tensor_base import Size, SizeInt, Tensor
from .devices import device as _device

__all__ = ["SerializationError", "load", "save"]

FORMAT = "matgrad.save"
VERSION = 1
_DOCUMENT = "matgrad.json"
_MAX_DOCUMENT_BYTES = 256 * 2**20  # a structure document larger than this is refused
_ARRAY_KINDS = "biufc"  # bool, signed, unsigned, float, complex


class SerializationError(UnpicklingError, RuntimeError):
    """A file ``matgrad.load`` cannot read: not a matgrad file, or malformed."""


# -- save ----------------------------------------------------------------------------------------
class _Writer:
    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.memo: dict[int, int] = {}  # id(tensor or array) -> its array number
        self.active: set[int] = set()  # containers being encoded (to catch cycles)

    def array_node(self, obj: Any, arr: np.ndarray, where: str) -> dict | None:
        if id(obj) in self.memo:
            return {"kind": "ref", "id": self.memo[id(obj)]}
        if arr.dtype.hasobject or arr.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(
                f"matgrad.save: cannot save the array at {where}: dtype {arr.dtype} (only "
                "bool, integer, floating and complex arrays; object arrays would need pickle)"
            )
        self.memo[id(obj)] = len(self.arrays)
        self.arrays.append(arr)
        return None

    def encode(self, obj: Any, where: str) -> dict:  # noqa: C901 - one case per type
        if obj is None:
            return {"kind": "none"}
        if isinstance(obj, bool):
            return {"kind": "bool", "value": obj}
        if isinstance(obj, Tensor):
            arr = np.asarray(_backend.to_backend(obj._data, "numpy"))
            ref = self.array_node(obj, arr, where)
            if ref is not None:
                return ref
            return {
                "kind": "tensor",
                "id": self.memo[id(obj)],
                "dtype": arr.dtype.str,
                "shape": list(arr.shape),
                "requires_grad": bool(obj.requires_grad),
                "device": str(obj.device),
            }
        if isinstance(obj, np.ndarray | np.generic):
            arr = np.asarray(obj)
            ref = self.array_node(obj, arr, where)
            if ref is not None:
                return ref
            return {
                "kind": "ndarray",
                "id": self.memo[id(obj)],
                "dtype": arr.dtype.str,
                "shape": list(arr.shape),
                "scalar": isinstance(obj, np.generic),
            }
        if type(obj) is int or isinstance(obj, SizeInt):  # not other int subclasses (enums)
            return {"kind": "int", "value": int(obj)}
        if type(obj) is float:
            return {"kind": "float", "value": _float_out(obj)}
        if type(obj) is complex:
            return {"kind": "complex", "real": _float_out(obj.real), "imag": _float_out(obj.imag)}
        if type(obj) is str:
            return {"kind": "str", "value": obj}
        if type(obj) is bytes:
            return {"kind": "bytes", "value": base64.b64encode(obj).decode("ascii")}
        if isinstance(obj, np.dtype):
            self.check_dtype(obj, where)
            return {"kind": "dtype", "value": obj.str}
        if isinstance(obj, _device):
            return {"kind": "device", "value": str(obj)}
        if type(obj) is Size:
            return {"kind": "size", "value": [int(s) for s in obj]}
        kind = _CONTAINERS.get(type(obj))
        if kind is None:
            raise TypeError(
                f"matgrad.save: cannot save {type(obj).__module__}.{type(obj).__qualname__} at "
                f"{where} (saveable: tensors, NumPy arrays and scalars, None, bool, int, float, "
                "complex, str, bytes, dtype, device, Size, and list, tuple, set, frozenset, "
                "dict, OrderedDict, Counter of these)"
            )
        if id(obj) in self.active:
            raise ValueError(f"matgrad.save: {where} contains itself (a circular reference)")
        self.active.add(id(obj))
        try:
            if kind in ("dict", "ordered_dict", "counter"):
                items = [
                    [self.encode(k, f"{where} (a key)"), self.encode(v, f"{where}[{k!r}]")]
                    for k, v in obj.items()
                ]
                return {"kind": kind, "items": items}
            return {
                "kind": kind,
                "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)],
            }
        finally:
            self.active.discard(id(obj))

    @staticmethod
    def check_dtype(dt: np.dtype, where: str) -> None:
        if dt.hasobject or dt.kind not in _ARRAY_KINDS:
            raise TypeError(f"matgrad.save: cannot save the dtype {dt} at {where}")


_CONTAINERS: dict[type, str] = {
    list: "list",
    tuple: "tuple",
    set: "set",
    frozenset: "frozenset",
    dict: "dict",
    OrderedDict: "ordered_dict",
    Counter: "counter",
}


def _float_out(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def save(obj: Any, f: str | os.PathLike | BinaryIO) -> None:
    """Save ``obj`` (tensors, NumPy arrays, numbers, strings, None, and lists, tuples, sets,
    dicts and OrderedDicts of these: a module's or an optimizer's ``state_dict``) to ``f``, a
    path or a binary file object, in matgrad's data-only format (see the module notes)."""
    writer = _Writer()
    root = writer.encode(obj, "the object")
    document = json.dumps(
        {"format": FORMAT, "version": VERSION, "root": root}, allow_nan=False
    ).encode()
    if isinstance(f, str | os.PathLike):
        with open(f, "wb") as fp:
            _write_zip(fp, document, writer.arrays)
    elif hasattr(f, "write"):
        _write_zip(f, document, writer.arrays)
    else:
        raise TypeError(f"matgrad.save: f must be a path or a binary file, got {type(f).__name__}")


def _write_zip(fp: BinaryIO, document: bytes, arrays: list[np.ndarray]) -> None:
    with zipfile.ZipFile(fp, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(_DOCUMENT, document)
        for i, arr in enumerate(arrays):
            with zf.open(f"arrays/{i}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


# -- load ----------------------------------------------------------------------------------------
def _fail(message: str) -> SerializationError:
    return SerializationError(f"matgrad.load: {message}")


def _need(node: dict, key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in node:
        raise _fail(f"malformed file: {where} ({node.get('kind')}) has no {key!r}")
    value = node[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
        raise _fail(
            f"malformed file: {where} ({node.get('kind')}): {key!r} is "
            f"{type(value).__name__}, expected {' or '.join(t.__name__ for t in _tuple(types))}"
        )
    return value


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _float_in(value: Any, where: str) -> float:
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _fail(f"malformed file: {where}: {value!r} is not a float")


def _dtype_in(text: Any, where: str) -> np.dtype:
    if not isinstance(text, str):
        raise _fail(f"malformed file: {where}: the dtype {text!r} is not a string")
    try:
        dt = np.dtype(text)
    except TypeError as e:
        raise _fail(f"malformed file: {where}: unknown dtype {text!r}") from e
    if dt.hasobject or dt.kind not in _ARRAY_KINDS:
        raise _fail(f"{where}: refusing dtype {dt} (only bool, integer, floating, complex)")
    return dt


class _Reader:
    def __init__(self, zf: zipfile.ZipFile, map_location: Any) -> None:
        self.zf = zf
        self.map_location = map_location
        self.memo: dict[int, Any] = {}

    def read_array(self, node: dict, where: str) -> np.ndarray:
        """The array of ``node``, after checking its ``.npy`` header against the node."""
        number = _need(node, "id", int, where)
        dtype = _dtype_in(_need(node, "dtype", str, where), where)
        shape = _need(node, "shape", list, where)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise _fail(f"malformed file: {where}: bad shape {shape!r}")
        name = f"arrays/{number}.npy"
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise _fail(f"malformed file: {where} refers to {name}, which is missing") from None
        with self.zf.open(info) as fp:
            try:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    header = np.lib.format.read_array_header_1_0(fp)
                elif version == (2, 0):
                    header = np.lib.format.read_array_header_2_0(fp)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
            except (ValueError, SyntaxError, OSError, EOFError) as e:
                raise _fail(f"{name} is not a valid .npy array: {e}") from e
            file_shape, fortran, file_dtype = header
            if file_dtype.hasobject:
                raise _fail(f"{name} holds an object array (pickled data): refused")
            if file_dtype != dtype or list(file_shape) != shape:
                raise _fail(
                    f"malformed file: {name} holds {file_dtype} {tuple(file_shape)}, the "
                    f"structure says {dtype} {tuple(shape)}"
                )
            nbytes = math.prod(shape) * dtype.itemsize
            offset = fp.tell()
            if nbytes > info.file_size - offset:
                raise _fail(
                    f"malformed file: {name} is truncated: {info.file_size - offset} bytes of "
                    f"data for {nbytes} ({dtype} {tuple(shape)})"
                )
            try:
                data = fp.read(nbytes)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise _fail(f"{name} cannot be read: {e}") from e
        if len(data) != nbytes:
            raise _fail(f"malformed file: {name} is truncated")
        flat = np.frombuffer(bytearray(data), dtype=dtype)
        return flat.reshape(shape, order="F" if fortran else "C")

    def place(self, tensor: Tensor, saved: str, where: str) -> Tensor:
        loc = self.map_location
        if isinstance(loc, dict):
            target = loc.get(saved, saved)
        elif loc is None:
            target = saved
        elif isinstance(loc, str | _device):
            target = loc
        else:
            raise TypeError(
                "matgrad.load: map_location must be None, a device, a string or a dict "
                f"{{saved: target}}, got {type(loc).__name__}"
            )
        try:
            dev = _device(target)
        except (RuntimeError, TypeError) as e:
            raise _fail(f"{where}: bad device {target!r}: {e}") from e
        return tensor if dev.type == "cpu" else tensor.to(dev)

    def decode(self, node: Any, where: str, depth: int = 0) -> Any:  # noqa: C901
        if depth > 500:
            raise _fail("malformed file: the structure is nested more than 500 levels deep")
        if not isinstance(node, dict) or not isinstance(node.get("kind"), str):
            raise _fail(f"malformed file: {where} is not a node (an object with a 'kind')")
        kind = node["kind"]
        if kind == "none":
            return None
        if kind == "bool":
            return _need(node, "value", bool, where)
        if kind == "int":
            return _need(node, "value", int, where)
        if kind == "float":
            return _float_in(_need(node, "value", (int, float, str), where), where)
        if kind == "complex":
            return complex(_float_in(node.get("real"), where), _float_in(node.get("imag"), where))
        if kind == "str":
            return _need(node, "value", str, where)
        if kind == "bytes":
            try:
                return base64.b64decode(_need(node, "value", str, where), validate=True)
            except ValueError as e:
                raise _fail(f"malformed file: {where}: bad base64: {e}") from e
        if kind == "dtype":
            return _dtype_in(node.get("value"), where)
        if kind == "device":
            try:
                return _device(_need(node, "value", str, where))
            except RuntimeError as e:
                raise _fail(f"malformed file: {where}: {e}") from e
        if kind == "size":
            value = _need(node, "value", list, where)
            if not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
                raise _fail(f"malformed file: {where}: bad size {value!r}")
            return Size(value)
        if kind == "ref":
            number = _need(node, "id", int, where)
            if number not in self.memo:
                raise _fail(f"malformed file: {where} refers to array {number}, not loaded yet")
            return self.memo[number]
        if kind in ("tensor", "ndarray"):
            number = _need(node, "id", int, where)
            if number in self.memo:
                raise _fail(f"malformed file: {where}: array {number} is defined twice")
            arr = self.read_array(node, where)
            if kind == "ndarray":
                scalar = _need(node, "scalar", bool, where)
                if scalar and arr.ndim != 0:
                    raise _fail(f"malformed file: {where}: a scalar of shape {arr.shape}")
                out: Any = arr[()] if scalar else arr
            else:
                requires_grad = _need(node, "requires_grad", bool, where)
                if requires_grad and arr.dtype.kind != "f":
                    raise _fail(f"malformed file: {where}: a {arr.dtype} tensor requiring grad")
                out = self.place(Tensor._wrap(arr), _need(node, "device", str, where), where)
                if requires_grad:
                    out.requires_grad_()
            self.memo[number] = out
            return out
        if kind in ("list", "tuple", "set", "frozenset"):
            items = _need(node, "items", list, where)
            values = [self.decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(items)]
            maker = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[kind]
            try:
                return maker(values)
            except TypeError as e:  # an unhashable member of a set
                raise _fail(f"malformed file: {where}: {e}") from e
        if kind in ("dict", "ordered_dict", "counter"):
            items = _need(node, "items", list, where)
            out = {"dict": dict, "ordered_dict": OrderedDict, "counter": Counter}[kind]()
            for i, pair in enumerate(items):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise _fail(f"malformed file: {where}: item {i} is not a [key, value] pair")
                key = self.decode(pair[0], f"{where} (key {i})", depth + 1)
                value = self.decode(pair[1], f"{where}[{key!r}]", depth + 1)
                try:
                    out[key] = value
                except TypeError as e:  # an unhashable key
                    raise _fail(f"malformed file: {where}: key {i}: {e}") from e
            return out
        raise _fail(f"malformed file: {where} has the unknown kind {kind!r}")


def _open_archive(data: BinaryIO) -> zipfile.ZipFile:
    head = data.read(4)
    data.seek(0)
    if head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}"):
        raise _fail(
            "this looks like a pickle (a legacy torch.save file?): matgrad.load reads only files "
            "written by matgrad.save and never unpickles"
        )
    try:
        zf = zipfile.ZipFile(data)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise _fail(f"not a matgrad.save file (not a zip archive: {e})") from e
    names = zf.namelist()
    if _DOCUMENT not in names:
        zf.close()
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            raise _fail(
                "this is a torch.save file (it holds a pickle, data.pkl): matgrad.load reads "
                "only files written by matgrad.save and never unpickles; the formats are not "
                "interchangeable"
            )
        raise _fail(f"not a matgrad.save file: no {_DOCUMENT} in the archive")
    return zf


def load(
    f: str | os.PathLike | BinaryIO,
    map_location: Any = None,
    weights_only: bool | None = True,
) -> Any:
    """Load what :func:`save` wrote to ``f`` (a path or a binary file object). Tensors go
    back to the device they were saved from, or where ``map_location`` says (a device, a
    string, or a dict from saved to target device names). The format holds data only, so
    ``weights_only`` (accepted for PyTorch compatibility) changes nothing. Raises
    :class:`SerializationError` for a file that is not a well-formed matgrad file."""
    if weights_only not in (True, False, None):
        raise TypeError(f"matgrad.load: weights_only must be a bool, got {weights_only!r}")
    if not (map_location is None or isinstance(map_location, str | _device | dict)):
        # PyTorch also takes a function of (storage, location); matgrad has no storages
        raise TypeError(
            "matgrad.load: map_location must be None, a device, a string or a dict "
            f"{{saved: target}}, got {type(map_location).__name__}"
        )
    if isinstance(f, str | os.PathLike):
        with open(f, "rb") as fp:
            return _load(fp, map_location)
    if not hasattr(f, "read"):
        raise TypeError(f"matgrad.load: f must be a path or a binary file, got {type(f).__name__}")
    if not (hasattr(f, "seek") and getattr(f, "seekable", lambda: False)()):
        f = io.BytesIO(f.read())
    return _load(f, map_location)


def _load(fp: BinaryIO, map_location: Any) -> Any:
    with _open_archive(fp) as zf:
        info = zf.getinfo(_DOCUMENT)
        if info.file_size > _MAX_DOCUMENT_BYTES:
            raise _fail(f"{_DOCUMENT} is {info.file_size} bytes: refused (limit 256 MiB)")
        try:
            text = zf.read(info)
            document = json.loads(text.decode("utf-8"))
        except (zipfile.BadZipFile, UnicodeDecodeError, ValueError, RecursionError) as e:
            raise _fail(f"malformed file: {_DOCUMENT} is not valid JSON: {e}") from e
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise _fail(f"not a matgrad.save file: {_DOCUMENT} does not name the format")
        if document.get("version") != VERSION:
            raise _fail(
                f"the file has format version {document.get('version')!r}; this matgrad "
                f"reads version {VERSION}"
            )
        if "root" not in document:
            raise _fail(f"malformed file: {_DOCUMENT} has no 'root'")
        try:
            return _Reader(zf, map_location).decode(document["root"], "the root")
        except RecursionError as e:
            raise _fail("malformed file: the structure is nested too deeply") from e
