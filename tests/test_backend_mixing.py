"""Array libraries mix in one op as they mix on their own (issue #12): Dask takes NumPy in and
the result is lazy; the gradient of a NumPy parameter through Dask data is a lazy Dask array
until ``matgrad.compute``, which computes everything given in one ``dask.compute`` call and
turns that gradient into NumPy in place; ``matgrad.tensor(dask_array)`` copies lazily; CuPy
with NumPy is refused, as CuPy refuses it. Also the ``devices`` items of the issue, checked
against PyTorch. The threaded/synchronous schedulers are used: no cluster is started here."""

from __future__ import annotations

import numpy as np
import pytest
from op_specs import SPECS

import matgrad as mg
from matgrad.backend import arrays as backend

da = pytest.importorskip("dask.array", reason="Dask is an optional backend: pip install dask")
dask = pytest.importorskip("dask")
torch = pytest.importorskip("torch")


def _forbid_compute(dsk, keys, **kwargs):
    raise AssertionError("a Dask graph was computed where everything should stay lazy")


@pytest.fixture
def no_compute():
    """Any Dask computation inside the block fails the test (checks laziness)."""
    with dask.config.set(scheduler=_forbid_compute):
        yield


def _least_squares_data(n=400, p=3, chunk=100, seed=0):
    rng = np.random.default_rng(seed)
    Xn, yn, wn = rng.standard_normal((n, p)), rng.standard_normal(n), rng.standard_normal(p)
    return Xn, yn, wn, da.from_array(Xn, chunks=(chunk, p)), da.from_array(yn, chunks=chunk)


# -- the case: data on Dask, parameters in memory -------------------------------------
def test_dask_data_numpy_parameter_stays_lazy_until_compute(no_compute):
    Xn, yn, wn, Xd, yd = _least_squares_data()
    w = mg.tensor(wn, requires_grad=True)
    assert w.backend == "numpy"
    residual = mg.asarray(Xd) @ w - mg.asarray(yd)  # was: TypeError (dask, numpy)
    loss = (residual**2).mean()
    loss.backward()
    assert residual.backend == "dask" and loss.backend == "dask"
    # .grad of a NumPy parameter through Dask data: a lazy Dask array, the leaf's shape/dtype
    assert w.grad.backend == "dask" and w.grad.shape == (3,) and w.grad.dtype == np.float64
    grad_tensor = w.grad
    with dask.config.set(scheduler="sync"):
        value, grad = mg.compute(loss, w.grad)
    r = Xn @ wn - yn
    np.testing.assert_allclose(value.item(), np.mean(r**2), rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), 2 * Xn.T @ r / len(yn), rtol=1e-12)
    # compute turned the parameter's gradient into NumPy in place (ready for an optimizer)
    assert grad is grad_tensor is w.grad and w.grad.backend == "numpy"
    assert loss.backend == "dask", "other tensors stay lazy: compute returns new ones"


def test_numpy_first_operand_and_torch_agree():
    """NumPy on the left of the op (``w @ X.T``, ``y - Xw``), checked against PyTorch."""
    Xn, yn, wn, Xd, yd = _least_squares_data(seed=1)
    w = mg.tensor(wn, requires_grad=True)
    b = mg.tensor(0.5, requires_grad=True)
    loss = ((mg.tensor(yn) - (w @ mg.asarray(Xd).T + b)) ** 2).sum()
    loss.backward()
    assert loss.backend == "dask" and w.grad.backend == "dask" and b.grad.backend == "dask"
    tw = torch.tensor(wn, requires_grad=True)
    tb = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    tloss = ((torch.tensor(yn) - (tw @ torch.tensor(Xn).T + tb)) ** 2).sum()
    tloss.backward()
    value, gw, gb = mg.compute(loss, w.grad, b.grad)
    np.testing.assert_allclose(value.item(), tloss.item(), rtol=1e-12)
    np.testing.assert_allclose(gw.numpy(), tw.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(gb.item(), tb.grad.item(), rtol=1e-10)


def test_numpy_and_dask_gradients_of_one_parameter_add_up():
    """A parameter used on NumPy and on Dask data: its gradient is the (lazy) sum of both; a
    second backward accumulates into it, still lazily."""
    Xn, yn, wn, Xd, _ = _least_squares_data(seed=2)
    A = np.random.default_rng(3).standard_normal((5, 3))
    w = mg.tensor(wn, requires_grad=True)
    for _ in range(2):
        ((mg.asarray(Xd) @ w).sum() + (mg.tensor(A) @ w).pow(2).sum()).backward()
    assert w.grad.backend == "dask"
    (grad,) = mg.compute(w.grad)
    expected = 2 * (Xn.sum(0) + 2 * A.T @ (A @ wn))
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-10)
    # after compute the gradient is NumPy: the next backward adds a Dask term lazily again
    (mg.asarray(Xd) @ w).sum().backward()
    assert w.grad.backend == "dask"
    np.testing.assert_allclose(mg.compute(w.grad)[0].numpy(), expected + Xn.sum(0), rtol=1e-10)


def test_optimizer_step_after_compute_updates_numpy_parameters():
    Xn, yn, wn, Xd, yd = _least_squares_data(seed=4)
    w = mg.tensor(wn, requires_grad=True)
    opt = mg.optim.SGD([w], lr=0.1)
    ((mg.asarray(Xd) @ w - mg.asarray(yd)) ** 2).mean().backward()
    mg.compute(w.grad)
    opt.step()
    expected = wn - 0.1 * 2 * Xn.T @ (Xn @ wn - yn) / len(yn)
    assert w.backend == "numpy"
    np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-12)


def test_optimizer_step_computes_lazy_gradients_in_one_call(monkeypatch):
    """Without matgrad.compute first, step() computes every lazy gradient in one dask.compute
    call (not one per parameter, repeating the shared forward work), then updates."""
    import dask

    Xn, yn, wn, Xd, yd = _least_squares_data(seed=5)
    w = mg.tensor(wn, requires_grad=True)
    b = mg.tensor(0.5, requires_grad=True)
    opt = mg.optim.SGD([w, b], lr=0.1)
    ((mg.asarray(Xd) @ w + b - mg.asarray(yd)) ** 2).mean().backward()
    calls = []
    real = dask.compute
    monkeypatch.setattr(dask, "compute", lambda *a, **k: calls.append(len(a)) or real(*a, **k))
    opt.step()
    assert calls == [2]
    r = Xn @ wn + 0.5 - yn
    np.testing.assert_allclose(w.detach().numpy(), wn - 0.1 * 2 * Xn.T @ r / len(yn), rtol=1e-12)
    np.testing.assert_allclose(b.item(), 0.5 - 0.1 * 2 * r.mean(), rtol=1e-12)


def test_compute_runs_shared_work_once():
    """One dask.compute call for everything given: the chunks of X are made once for the loss
    and the gradient together."""
    calls = []

    def block(block_info=None):
        calls.append(block_info[None]["chunk-location"])
        (i, _), n = block_info[None]["chunk-location"], 50
        return np.random.default_rng(i).standard_normal((n, 3))

    X = da.map_blocks(block, chunks=((50,) * 4, (3,)), dtype=float, meta=np.empty((0, 0)))
    w = mg.tensor(np.ones(3), requires_grad=True)
    loss = ((mg.asarray(X) @ w) ** 2).mean()
    loss.backward()
    assert calls == [], "recording and backward compute nothing"
    with dask.config.set(scheduler="sync"):
        value, grad = mg.compute(loss, w.grad)
    assert sorted(calls) == [(i, 0) for i in range(4)]  # each chunk once
    Xn = np.concatenate([np.random.default_rng(i).standard_normal((50, 3)) for i in range(4)])
    np.testing.assert_allclose(value.item(), np.mean((Xn @ np.ones(3)) ** 2), rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), 2 * Xn.T @ (Xn @ np.ones(3)) / 200, rtol=1e-12)


def test_gradient_graph_adds_no_broadcast_layer():
    """The gradient of the mean is a blockwise product that Dask fuses into the next ops, not
    a broadcast_to layer of its own: matgrad's graph has at most one fused task per chunk (and
    2 for the seed) more than the same gradient written by hand."""
    _, _, wn, Xd, yd = _least_squares_data(n=800, chunk=100)
    w = mg.tensor(wn, requires_grad=True)
    loss = ((mg.asarray(Xd) @ w - mg.asarray(yd)) ** 2).mean()
    loss.backward()
    r = Xd @ wn - yd
    by_hand = [(r**2).mean(), 2.0 * (Xd.T @ r) / 800]

    def tasks(arrays):
        graph = dict(dask.base.collections_to_expr(arrays).optimize().__dask_graph__())
        return graph

    ours = tasks([loss._data, w.grad._data])
    assert not any("broadcast_to" in str(k) for k in ours)
    assert len(ours) <= len(tasks(by_hand)) + Xd.numblocks[0] + 2


def test_broadcast_keeps_chunks_and_lifts_numpy():
    shape = backend.shape_of(da.ones((6, 4), chunks=(2, 4)))
    for source in (np.array(3.0), da.from_array(np.array([[3.0]])), np.arange(4.0)):
        out = backend.broadcast_to(source, shape)
        assert backend.backend_of(out) == "dask" and out.chunks == ((2, 2, 2), (4,))
        np.testing.assert_array_equal(out.compute(), np.broadcast_to(np.asarray(source), (6, 4)))
    assert type(backend.broadcast_to(np.ones(2), (3, 2))) is np.ndarray  # no chunks: NumPy


# -- every row of the table with mixed inputs ---------------------------------------------------
def _chunked(x):
    return da.from_array(x, chunks=tuple(max(1, s // 2) for s in x.shape))


def _outputs(sample, inputs):
    out = sample.fn(*inputs, *sample.nondiff)
    return [o for o in (out if isinstance(out, tuple) else (out,)) if o.dtype.kind == "f"]


# forwards that load Dask data into memory (caught by the scheduler that forbids computing):
# (op, sample, NumPy input) -> why; strict, so a fix shows up
SILENT_COMPUTE = {
    ("index_put", 0, 0): "backend.forward.index_put writes Dask values into a NumPy copy",
    ("index_put", 1, 0): "backend.forward.index_put writes Dask values into a NumPy copy",
    ("linalg_vector_norm", 8, 0): "np.linalg.vector_norm of a complex Dask array: Dask lacks it",
    ("linalg_vector_norm", 8, 1): "np.linalg.vector_norm of a complex Dask array: Dask lacks it",
}

MIXED = [
    pytest.param(
        op,
        i,
        k,
        sample,
        id=f"{op}-{i}-numpy{k}",
        marks=[pytest.mark.xfail(strict=True, raises=AssertionError, reason=why)]
        if (why := SILENT_COMPUTE.get((op, i, k)))
        else [],
    )
    for op, samples in sorted(SPECS.items())
    for i, sample in enumerate(samples)
    if len(sample.inputs) >= 2
    for k in range(len(sample.inputs))
]


@pytest.mark.parametrize("op,i,k,sample", MIXED)
def test_table_with_one_numpy_input_among_dask_inputs(op, i, k, sample):
    """Input k on NumPy, the others on Dask: the results are lazy Dask arrays and, computed,
    equal the all-NumPy values and gradients; an op that cannot mix says so, naming Dask."""
    ref = [mg.tensor(x, requires_grad=True) for x in sample.inputs]
    ref_outs = _outputs(sample, ref)
    rng = np.random.default_rng(0)
    cotangents = [rng.standard_normal(o.shape) for o in ref_outs]
    sum(((o * c).sum() for o, c in zip(ref_outs, cotangents, strict=True)), start=0.0).backward()
    inputs = [
        mg.tensor(x, requires_grad=True) if j == k else mg.asarray(_chunked(x), requires_grad=True)
        for j, x in enumerate(sample.inputs)
    ]
    try:
        with dask.config.set(scheduler=_forbid_compute):
            outs = _outputs(sample, inputs)
            loss = sum(
                (
                    (o * mg.asarray(_chunked(c))).sum()
                    for o, c in zip(outs, cotangents, strict=True)
                ),
                start=0.0,
            )
            loss.backward()
    except (NotImplementedError, TypeError) as exc:
        # the op that cannot mix (the sample's op, or one it calls) names the library
        assert "dask" in str(exc).lower(), f"unclear error for {op}: {exc}"
        pytest.skip(f"{op} does not mix: {exc}")
    assert all(o.backend == "dask" for o in outs)
    with dask.config.set(scheduler="sync"):
        for o, r in zip(outs, ref_outs, strict=True):
            np.testing.assert_allclose(o.compute().numpy(), r.detach().numpy(), rtol=1e-10)
        grads = mg.compute(*[x.grad for x in inputs if x.grad is not None])
    expected = [x.grad for x in ref if x.grad is not None]
    assert len(grads) == len(expected)
    for g, r in zip(grads, expected, strict=True):
        assert g.backend == "numpy"
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-9, atol=1e-12)


# -- what is refused -------------------------------------------------------------------------
def test_writing_a_dask_result_into_a_numpy_tensor_is_refused():
    w = mg.tensor([1.0, 2.0])
    d = mg.asarray(da.ones(2, chunks=1))
    refused = pytest.raises(TypeError, match=r"add_: the result is a dask array .* numpy tensor")
    with refused, dask.config.set(scheduler=_forbid_compute):
        w.add_(d)
    assert w.tolist() == [1.0, 2.0]
    with mg.no_grad():  # the other way round stays lazy, as Dask arrays take NumPy in
        d.add_(w)
    assert d.backend == "dask" and d.compute().tolist() == [2.0, 3.0]


def test_a_numpy_result_from_dask_inputs_is_refused():
    with pytest.raises(TypeError, match="mv: returned a NumPy array from a Dask input"):
        backend.check_backends("mv", [da.ones(2), np.ones(2)], [np.ones(2)])
    backend.check_backends("mv", [da.ones(2), np.ones(2)], [da.ones(2)])  # Dask's own rule


class _FakeCupyArray:
    """Stands for a CuPy array where CuPy is absent: backend_of reads the type's module."""

    __module__ = "cupy._core.core"
    dtype = np.dtype(np.float64)
    shape = (2,)


def test_cupy_with_numpy_or_dask_is_refused():
    fake = _FakeCupyArray()
    with pytest.raises(TypeError, match=r"mul: .*\(cupy, numpy\).*no implicit copy"):
        backend.check_backends("mul", [fake, np.ones(2)], [fake])
    with pytest.raises(TypeError, match=r"mul: .*\(cupy, dask\) that do not mix"):
        backend.check_backends("mul", [fake, da.ones(2)], [])
    backend.check_backends("mul", [fake, fake], [fake])


def test_cupy_with_numpy_raises_as_cupy_does():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (no GPU on this machine)")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - any CUDA failure means no usable GPU
        pytest.skip(f"no usable CUDA GPU: {exc}")
    with pytest.raises(TypeError):
        cupy.ones(2) + np.ones(2)  # CuPy's own refusal
    with pytest.raises(TypeError, match="no implicit copy"):
        mg.asarray(cupy.ones(2)) + mg.ones(2)


# -- creating tensors from Dask arrays ---------------------------------------------------------
def test_tensor_of_a_dask_array_is_a_lazy_copy(no_compute):
    x = da.arange(6.0, chunks=2)
    t = mg.tensor(x, requires_grad=True)
    assert t.backend == "dask" and t.is_leaf and t.requires_grad and t._data is not x
    assert t._data.chunks == x.chunks and t.dtype == np.float64
    f = mg.tensor(x, dtype=mg.float32)
    assert f.backend == "dask" and f.dtype == np.float32
    x[0] = 100.0  # Dask's item assignment rebinds x's graph: the copy does not see it
    with dask.config.set(scheduler="sync"):
        assert t.detach().compute().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        assert mg.tensor(mg.asarray(x)).compute().tolist()[0] == 100.0


def test_asarray_copy_and_device_follow_torch(no_compute):
    n = np.ones(3, dtype=np.float32)
    assert mg.asarray(n)._data is n and mg.asarray(n, copy=False)._data is n
    copied = mg.asarray(n, copy=True)
    assert copied._data is not n and not np.shares_memory(copied._data, n)
    tn = torch.asarray(n, copy=True)
    assert not np.shares_memory(tn.numpy(), n)
    for obj in (n, [1.0, 2.0]):  # both refuse an alias that cannot exist, as torch does
        dtype = None if isinstance(obj, list) else mg.float64
        with pytest.raises(ValueError):
            torch.asarray(obj, dtype=None if dtype is None else torch.float64, copy=False)
        with pytest.raises(ValueError, match="asarray: copy=False"):
            mg.asarray(obj, dtype=dtype, copy=False)
    d = da.ones(4, chunks=2)
    assert mg.asarray(d, device="cpu")._data is d  # Dask is a CPU library: stays lazy
    assert mg.asarray(d, copy=True).backend == "dask"
    assert mg.asarray([1.0], device=mg.device("cpu")).device == "cpu"


# -- the `devices` items of issue #12, against PyTorch -------------------------------------------
CREATION = {
    "zeros": ((2, 3), {}),
    "ones": ((2,), {}),
    "empty": ((2,), {}),
    "full": (((2,), 1.5), {}),
    "eye": ((3,), {}),
    "arange": ((4,), {}),
    "linspace": ((0.0, 1.0, 5), {}),
    "rand": ((2,), {}),
    "randn": ((2,), {}),
    "randint": ((0, 5, (2,)), {}),
    "tensor": (([1.0, 2.0],), {}),
    "asarray": (([1.0, 2.0],), {}),
}


@pytest.mark.parametrize("name", sorted(CREATION))
def test_creation_functions_take_device(name):
    args, kwargs = CREATION[name]
    for device in ("cpu", mg.device("cpu")):
        t = getattr(mg, name)(*args, device=device, **kwargs)
        ref = getattr(torch, name)(*args, device="cpu", **kwargs)
        assert t.device == "cpu" and tuple(t.shape) == tuple(ref.shape)
        assert str(t.device) == str(ref.device)
    if not mg.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            getattr(mg, name)(*args, device="cuda", **kwargs)


@pytest.mark.parametrize("spec", ["cpu", "cuda", "cuda:0", "cuda:1"])
def test_device_objects_match_torch(spec):
    ours, theirs = mg.device(spec), torch.device(spec)
    assert (ours.type, ours.index, str(ours), repr(ours)) == (
        theirs.type,
        theirs.index,
        str(theirs),
        repr(theirs),
    )


@pytest.mark.skipif(mg.cuda.is_available(), reason="checks the errors where CUDA is absent")
def test_cuda_paths_raise_clearly_without_a_gpu():
    x = mg.ones(2)
    for move in (x.cuda, lambda: x.to("cuda"), lambda: x.to("cuda:0")):
        with pytest.raises(RuntimeError, match="CUDA is not available.*CuPy"):
            move()
    assert not mg.cuda.is_available() and mg.cuda.device_count() == 0
    assert mg.cuda.manual_seed(0) is None and mg.cuda.manual_seed_all(0) is None
    assert not torch.cuda.is_available()  # the reference agrees on this machine
    for name in ("mps", "cudnn"):
        assert getattr(mg.backends, name).is_available() is False
        assert getattr(torch.backends, name).is_available() is False
    mg.set_default_device("cuda")
    try:
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            mg.zeros(1)
    finally:
        mg.set_default_device("cpu")
    assert mg.zeros(1).device == "cpu" and str(mg.get_default_device()) == "cpu"


def test_tensor_conversions_and_factories_match_torch():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    tx = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    assert x.cpu() is x and x.to("cpu") is x and x.to(mg.device("cpu")) is x
    assert str(x.device) == str(tx.device) and not x.is_cuda
    y, ty = x.to(mg.float32), tx.to(torch.float32)
    assert str(y.dtype) == str(ty.dtype).removeprefix("torch.") and y.requires_grad
    assert y.grad_fn is not None and ty.grad_fn is not None  # a recorded cast, as in torch
    other = mg.zeros(1, dtype=mg.float32)
    assert x.to(other).dtype == np.float32 and x.type_as(other).dtype == np.float32
    assert x.to("cpu", mg.float32).dtype == np.float32
    assert mg.is_tensor(x) and not mg.is_tensor(np.ones(2)) and not mg.is_tensor([1.0])
    assert mg.numel(mg.ones(2, 3)) == torch.numel(torch.ones(2, 3)) == 6
    assert mg.ones(2, 3).ndimension() == torch.ones(2, 3).ndimension() == 2
    base, tbase = mg.zeros(2, dtype=mg.float32), torch.zeros(2, dtype=torch.float32)
    for make, same_values in (
        (lambda b: b.new_zeros(3), True),
        (lambda b: b.new_ones((2, 2)), True),
        (lambda b: b.new_full((2,), 7), True),
        (lambda b: b.new_empty(4), False),  # values unspecified
        (lambda b: b.new_tensor([1, 2]), True),
    ):
        ours, theirs = make(base), make(tbase)
        assert tuple(ours.shape) == tuple(theirs.shape)
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
        if same_values:
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("value", [3.14159, 2, True, -0.5])
def test_format_of_0d_tensors_matches_torch(value):
    ours = mg.tensor(value)
    theirs = (
        torch.tensor(value, dtype=torch.float64)
        if isinstance(value, float)
        else torch.tensor(value)
    )
    for spec in ("", ".2f", ".3e", ">8"):
        assert format(ours, spec) == format(theirs, spec), spec
    loss = mg.tensor(value * 1.0, requires_grad=True)
    reference = torch.tensor(value * 1.0, dtype=torch.float64, requires_grad=True)
    assert f"{loss:.2f}" == f"{reference:.2f}" and f"{loss}" == f"{reference}"
