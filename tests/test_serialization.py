"""matgrad.save / matgrad.load: round trips of every saveable type (values, dtypes, shapes,
container types and key types, requires_grad, shared objects), of a Module's and an
optimizer's state_dict (which then load and continue as PyTorch's uninterrupted run), paths,
file objects and streams, map_location; and refusal, with a clear error and without running
anything, of pickles, torch.save files and malformed or hostile archives."""

from __future__ import annotations

import io
import json
import math
import pickle
import zipfile
from collections import Counter, OrderedDict

import numpy as np
import pytest

import matgrad
import matgrad.nn as nn
import matgrad.optim as optim
from matgrad.serialization import SerializationError


def _round_trip(obj, **load_kw):
    buf = io.BytesIO()
    matgrad.save(obj, buf)
    buf.seek(0)
    return matgrad.load(buf, **load_kw)


def _same(a, b, where="root"):
    """``a`` (loaded) equals ``b`` (saved) in type, and in values, dtypes and shapes."""
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(b, matgrad.Tensor):
        assert a is not b
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.requires_grad == b.requires_grad and a.is_leaf, where
        np.testing.assert_array_equal(np.asarray(a._data), np.asarray(b._data), err_msg=where)
    elif isinstance(b, np.ndarray | np.generic):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(b, dict):
        assert list(a) == list(b), where
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
            _same(ka, kb, f"{where} key")
            _same(va, vb, f"{where}[{kb!r}]")
    elif isinstance(b, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(b, float) and math.isnan(b):
        assert math.isnan(a), where
    elif isinstance(b, float):
        assert a == b and math.copysign(1, a) == math.copysign(1, b), where
    else:
        assert a == b, where


def test_tensors_of_every_dtype_and_layout():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 6))
    tensors = [
        matgrad.tensor(base),
        matgrad.tensor(base.astype(np.float32), requires_grad=True),
        matgrad.tensor(base.astype(np.float16)),
        matgrad.tensor(np.arange(12, dtype=np.int64).reshape(3, 4)),
        matgrad.tensor(np.array([True, False, True])),
        matgrad.tensor(np.arange(5, dtype=np.uint8)),
        matgrad.tensor(base[:, ::2].T),  # a non-contiguous view: saved as its values
        matgrad.tensor(np.asfortranarray(base)),
        matgrad.tensor(2.5),  # 0-d
        matgrad.zeros(0, 3),  # empty
        matgrad.tensor(np.array([1 + 2j, -3.5j])),
        matgrad.tensor([math.nan, math.inf, -math.inf, -0.0]),
    ]
    out = _round_trip(tensors)
    _same(out, tensors)
    assert out[1].requires_grad and out[1].grad is None


def test_python_and_numpy_values():
    obj = {
        "none": None,
        "bools": [True, False],
        "ints": (0, -7, 2**100),
        "floats": [1.5, -0.0, math.nan, math.inf, -math.inf, 1e-310],
        "complex": complex(1.5, -math.inf),
        "text": "grüße ✓",
        "bytes": b"\x00\x80\xff",
        "np": [np.float32(1.25), np.int64(-3), np.bool_(True), np.arange(4.0)],
        "set": {1, 2, 3},
        "frozen": frozenset({"a"}),
        "size": matgrad.zeros(2, 3).shape,
        "dtype": np.dtype("float32"),
        "device": matgrad.device("cpu"),
        7: "int key",
        (1, "a"): "tuple key",
        None: "None key",
        2.5: "float key",
        "ordered": OrderedDict([("b", 1), ("a", 2)]),
        "counter": Counter({3: 2, 5: 1}),
        "empty": [[], {}, ()],
    }
    out = _round_trip(obj)
    _same(out, obj)
    assert isinstance(out["size"], matgrad.Size) and out["size"] == (2, 3)


def test_the_same_tensor_twice_loads_as_one_object():
    w = matgrad.randn(3)
    out = _round_trip({"a": w, "b": [w, w], "c": w.detach()})
    assert out["a"] is out["b"][0] is out["b"][1]
    assert out["c"] is not out["a"]
    np.testing.assert_array_equal(out["c"]._data, w._data)


def test_module_state_dict_round_trip(tmp_path):
    matgrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    sd = model.state_dict()
    path = tmp_path / "model.mg"
    matgrad.save(sd, path)
    loaded = matgrad.load(str(path))
    assert type(loaded) is OrderedDict and list(loaded) == list(sd)
    _same(loaded, OrderedDict((k, v) for k, v in sd.items()))
    fresh = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    fresh.load_state_dict(loaded)
    x = matgrad.randn(5, 3)
    np.testing.assert_array_equal(fresh(x).detach()._data, model(x).detach()._data)
    # a Parameter is saved as a tensor that requires grad
    p = _round_trip(model[0].weight)
    assert type(p) is matgrad.Tensor and p.requires_grad


def test_optimizer_state_dict_round_trip_continues_the_torch_run():
    """Adam (amsgrad) for 3 steps, saved, loaded into a fresh optimizer, 3 more steps: the
    parameters are those of torch's uninterrupted 6 steps."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    start, x = rng.standard_normal((3, 2)), rng.standard_normal((4, 3))

    def loss(lib, w):
        return (lib.tanh(lib.tensor(x) @ w) ** 2).sum()

    tw = torch.tensor(start, requires_grad=True)
    topt = torch.optim.Adam([tw], lr=0.05, amsgrad=True)
    w = matgrad.tensor(start, requires_grad=True)
    opt = optim.Adam([w], lr=0.05, amsgrad=True)
    for i in range(6):
        topt.zero_grad()
        loss(torch, tw).backward()
        topt.step()
        if i < 3:
            opt.zero_grad()
            loss(matgrad, w).backward()
            opt.step()
    sd = _round_trip(opt.state_dict())
    assert list(sd["state"]) == [0] and isinstance(sd["state"][0]["exp_avg"], matgrad.Tensor)
    w2 = matgrad.tensor(w.detach()._data.copy(), requires_grad=True)
    opt2 = optim.Adam([w2], lr=0.05, amsgrad=True)
    opt2.load_state_dict(sd)
    for _ in range(3):
        opt2.zero_grad()
        loss(matgrad, w2).backward()
        opt2.step()
    np.testing.assert_allclose(w2.detach()._data, tw.detach().numpy(), rtol=1e-10)


def test_scheduler_state_dict_with_infinities():
    opt = optim.SGD([matgrad.zeros(1, requires_grad=True)], lr=1.0)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max")
    sd = sched.state_dict()
    assert sd["best"] == -math.inf
    out = _round_trip(sd)
    _same(out, sd)


def test_file_objects_and_streams(tmp_path):
    obj = {"w": matgrad.arange(6).reshape(2, 3), "n": 3}
    path = tmp_path / "x.mg"
    with open(path, "wb") as f:
        matgrad.save(obj, f)
    with open(path, "rb") as f:
        _same(matgrad.load(f), obj)

    class Stream(io.RawIOBase):  # readable, not seekable (a pipe, a socket)
        def __init__(self, data):
            self.inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            chunk = self.inner.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    _same(matgrad.load(Stream(path.read_bytes())), obj)
    _same(matgrad.load(path, weights_only=False), obj)  # accepted, changes nothing
    with pytest.raises(TypeError, match="f must be a path or a binary file"):
        matgrad.save(obj, 42)


def test_map_location():
    obj = {"w": matgrad.ones(2)}
    for loc in ["cpu", matgrad.device("cpu"), {"cpu": "cpu"}]:
        out = _round_trip(obj, map_location=loc)
        assert out["w"].device == "cpu"
    with pytest.raises(TypeError, match="map_location must be None, a device, a string"):
        _round_trip(obj, map_location=lambda storage, loc: storage)
    # a tensor saved on a GPU: loads there, or where map_location says
    document, arrays = _parts(obj)
    document["root"]["items"][0][1]["device"] = "cuda:0"
    crafted = _archive(document, arrays)
    if not matgrad.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            matgrad.load(io.BytesIO(crafted))
    out = matgrad.load(io.BytesIO(crafted), map_location={"cuda:0": "cpu"})
    assert out["w"].device == "cpu"
    np.testing.assert_array_equal(out["w"]._data, [1.0, 1.0])


def test_save_refuses_what_it_cannot_store_safely():
    with pytest.raises(TypeError, match=r"cannot save the array at the object\['a'\]\[1\]"):
        matgrad.save({"a": [1, np.array([object()])]}, io.BytesIO())
    with pytest.raises(TypeError, match="object arrays would need pickle"):
        matgrad.save(np.array(["a", None], dtype=object), io.BytesIO())
    with pytest.raises(TypeError, match=r"cannot save builtins.function at the object\[0\]"):
        matgrad.save([lambda: 0], io.BytesIO())
    with pytest.raises(TypeError, match="cannot save .*Evil"):
        matgrad.save({"x": Evil()}, io.BytesIO())
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        matgrad.save(loop, io.BytesIO())
    with pytest.raises(TypeError, match="cannot save the array"):
        matgrad.save(np.zeros(2, dtype=[("a", "f8")]), io.BytesIO())


# -- hostile and malformed files -----------------------------------------------------------------
MARKER = []


def _run_code():  # what a malicious pickle would call
    MARKER.append("ran")
    return "owned"


class Evil:
    def __reduce__(self):
        return (_run_code, ())


def _parts(obj):
    buf = io.BytesIO()
    matgrad.save(obj, buf)
    with zipfile.ZipFile(buf) as zf:
        document = json.loads(zf.read("matgrad.json"))
        arrays = {n: zf.read(n) for n in zf.namelist() if n != "matgrad.json"}
    return document, arrays


def _archive(document, arrays, raw_document=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("matgrad.json", raw_document or json.dumps(document))
        for name, data in arrays.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _refused(blob, match):
    with pytest.raises(SerializationError, match=match) as info:
        matgrad.load(io.BytesIO(blob))
    assert isinstance(info.value, pickle.UnpicklingError | RuntimeError)
    assert MARKER == []  # nothing ran
    return info.value


def test_a_pickle_is_refused_without_running_it():
    blob = pickle.dumps({"x": Evil()})
    assert pickle.loads(blob)["x"] == "owned" and MARKER == ["ran"]  # it would run code
    MARKER.clear()
    _refused(blob, "looks like a pickle")
    _refused(pickle.dumps([1, 2], protocol=0), "looks like a pickle")


def test_a_torch_save_file_is_refused():
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    _refused(buf.getvalue(), "this is a torch.save file")


def test_a_pickled_object_array_inside_is_refused():
    document, arrays = _parts({"w": np.zeros(2)})
    npy = io.BytesIO()
    np.save(npy, np.array([Evil()], dtype=object), allow_pickle=True)
    arrays["arrays/0.npy"] = npy.getvalue()
    _refused(_archive(document, arrays), "object array")
    document["root"]["items"][0][1]["dtype"] = "|O"
    _refused(_archive(document, arrays), "refusing dtype object")


MALFORMED = {
    "not json": (None, "{not json", "is not valid JSON"),
    "not the format": ({"format": "other", "version": 1, "root": {}}, None, "does not name"),
    "newer version": (
        {"format": "matgrad.save", "version": 99, "root": {"kind": "none"}},
        None,
        "format version 99",
    ),
    "no root": ({"format": "matgrad.save", "version": 1}, None, "has no 'root'"),
    "unknown kind": (
        {"format": "matgrad.save", "version": 1, "root": {"kind": "python_object"}},
        None,
        "unknown kind 'python_object'",
    ),
    "not a node": ({"format": "matgrad.save", "version": 1, "root": [1]}, None, "not a node"),
    "bad value type": (
        {"format": "matgrad.save", "version": 1, "root": {"kind": "int", "value": "3"}},
        None,
        "'value' is str, expected int",
    ),
    "missing array": (
        {
            "format": "matgrad.save",
            "version": 1,
            "root": {
                "kind": "tensor",
                "id": 5,
                "dtype": "<f8",
                "shape": [2],
                "requires_grad": False,
                "device": "cpu",
            },
        },
        None,
        "arrays/5.npy, which is missing",
    ),
    "dangling ref": (
        {"format": "matgrad.save", "version": 1, "root": {"kind": "ref", "id": 0}},
        None,
        "refers to array 0, not loaded yet",
    ),
    "unhashable key": (
        {
            "format": "matgrad.save",
            "version": 1,
            "root": {"kind": "dict", "items": [[{"kind": "list", "items": []}, {"kind": "none"}]]},
        },
        None,
        "unhashable",
    ),
    "deep nesting": (
        None,
        '{"format": "matgrad.save", "version": 1, "root": ' + "[" * 10**6,
        "JSON",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_documents_are_refused(case):
    document, raw, match = MALFORMED[case]
    _refused(_archive(document, {}, raw_document=raw), match)


def test_malformed_arrays_are_refused():
    document, arrays = _parts({"w": np.arange(6.0).reshape(2, 3)})
    node = document["root"]["items"][0][1]

    def variant(change_node=None, data=None):
        d = json.loads(json.dumps(document))
        if change_node:
            change_node(d["root"]["items"][0][1])
        return _archive(d, {"arrays/0.npy": data if data is not None else arrays["arrays/0.npy"]})

    _refused(variant(lambda n: n.update(shape=[3, 2])), r"holds float64 \(2, 3\), the structure")
    _refused(variant(lambda n: n.update(dtype="<i8")), "holds float64")
    _refused(variant(lambda n: n.update(shape=[-1])), "bad shape")
    _refused(variant(data=arrays["arrays/0.npy"][:-8]), "truncated")
    _refused(variant(data=b"not an npy file at all"), "not a valid .npy array")
    # a header that claims 10**12 elements is refused before anything is allocated
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        npy, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    _refused(variant(lambda n: n.update(shape=[10**12]), npy.getvalue() + b"\0" * 64), "truncated")
    assert node["kind"] == "ndarray"
    _refused(b"\x00garbage that is not a zip", "not a zip archive")
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("other.txt", b"x")  # a zip archive, not ours
    _refused(other.getvalue(), "no matgrad.json")
