"""Array backends: the rule table on Dask arrays (lazy, chunked) gives NumPy's results, a real
dask.distributed LocalCluster on 127.0.0.1 runs a gradient, mixing libraries is refused, and
the CuPy suite is skipped with its reason where no GPU is present."""

from __future__ import annotations

import numpy as np
import pytest
from op_specs import SPECS

import matgrad as mg

da = pytest.importorskip("dask.array", reason="Dask is an optional backend: pip install dask")

CASES = [
    pytest.param(op, i, sample, id=f"{op}-{i}")
    for op, samples in sorted(SPECS.items())
    for i, sample in enumerate(samples)
]


def _chunked(x: np.ndarray):
    chunks = tuple(max(1, s // 2) for s in x.shape)  # several chunks along every axis
    return da.from_array(x, chunks=chunks)


def _cupy():
    """CuPy with a usable GPU, or a skip that says why not."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (no GPU on this machine)")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - any CUDA failure means no usable GPU
        pytest.skip(f"no usable CUDA GPU: {exc}")
    return cupy


def _to_backend(backend: str):
    if backend == "dask":
        return _chunked
    return _cupy().asarray


def _outputs(sample, inputs):
    out = sample.fn(*inputs, *sample.nondiff)
    return [o for o in (out if isinstance(out, tuple) else (out,)) if o.dtype.kind == "f"]


@pytest.mark.parametrize("backend", ["dask", "cupy"])
@pytest.mark.parametrize("op,i,sample", CASES)
def test_table_on_backend_matches_numpy(op, i, sample, backend):
    """Every sample of the rule table, forward and backward, on Dask arrays (lazy: nothing is
    computed until asked) and on CuPy arrays (where a GPU is present), equals NumPy's."""
    convert = _to_backend(backend)
    ref_inputs = [mg.tensor(x, requires_grad=True) for x in sample.inputs]
    ref_outs = _outputs(sample, ref_inputs)
    rng = np.random.default_rng(0)
    cotangents = [rng.standard_normal(o.shape) for o in ref_outs]
    sum(((o * c).sum() for o, c in zip(ref_outs, cotangents, strict=True)), start=0.0).backward()

    inputs = [mg.asarray(convert(x), requires_grad=True) for x in sample.inputs]
    try:
        outs = _outputs(sample, inputs)
        loss = sum(
            ((o * mg.asarray(convert(c))).sum() for o, c in zip(outs, cotangents, strict=True)),
            start=0.0,
        )
        loss.backward()
    except (NotImplementedError, TypeError) as exc:
        # ops a backend lacks must say so, naming the op or the backend
        assert backend in str(exc) or op in str(exc), f"unclear error for {op} on {backend}: {exc}"
        pytest.skip(f"{op} on {backend}: {exc}")
    for o, r in zip(outs, ref_outs, strict=True):
        assert o.backend == backend, "the result must stay in the backend (lazy for Dask)"
        np.testing.assert_allclose(o.detach().numpy(), r.detach().numpy(), rtol=1e-10, atol=1e-12)
    grads = mg.compute(*[x.grad for x in inputs if x.grad is not None])
    expected = [x.grad for x in ref_inputs if x.grad is not None]
    for g, r in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-9, atol=1e-12)


def test_backward_on_dask_is_lazy_until_computed():
    X = mg.asarray(da.random.random((400, 3), chunks=(100, 3)))
    w = mg.asarray(da.ones(3, chunks=3), requires_grad=True)
    loss = ((X @ w) ** 2).mean()
    loss.backward()
    assert loss.backend == "dask" and w.grad.backend == "dask"
    value, grad = mg.compute(loss, w.grad)
    x = X.compute().numpy()
    np.testing.assert_allclose(value.item(), np.mean((x @ np.ones(3)) ** 2))
    np.testing.assert_allclose(grad.numpy(), 2 * x.T @ (x @ np.ones(3)) / 400)


def test_dask_takes_numpy_in_and_moves_are_explicit():
    """Dask with NumPy runs in Dask, as Dask mixes them (more in test_backend_mixing.py)."""
    a = mg.asarray(da.ones(3, chunks=3))
    mixed = a + mg.ones(3)
    assert mixed.backend == "dask" and mixed.compute().tolist() == [2.0, 2.0, 2.0]
    b = a.to("numpy")
    assert b.backend == "numpy" and (a.to("numpy") + mg.ones(3)).tolist() == [2.0, 2.0, 2.0]
    c = mg.ones(4).to("dask", chunks=2)
    assert c.backend == "dask" and c._data.chunks == ((2, 2),)


def test_asarray_keeps_backend_and_device():
    x = da.zeros((2, 2), chunks=1)
    t = mg.asarray(x)
    assert t._data is x and t.backend == "dask" and t.device == "cpu"
    n = np.zeros(2)
    assert mg.asarray(n)._data is n
    assert "backend=dask" in repr(t)


def test_distributed_local_cluster_gradient():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit="1GiB",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        rng = np.random.default_rng(3)
        Xn, yn = rng.standard_normal((2000, 4)), rng.standard_normal(2000)
        X = mg.asarray(da.from_array(Xn, chunks=(500, 4)))
        y = mg.asarray(da.from_array(yn, chunks=500))
        w = mg.asarray(da.zeros(4, chunks=4), requires_grad=True)
        loss = ((X @ w - y) ** 2).mean()
        loss.backward()
        value, grad = mg.compute(loss, w.grad)
        assert len(client.scheduler_info()["workers"]) == 2
    np.testing.assert_allclose(value.item(), np.mean(yn**2))
    np.testing.assert_allclose(grad.numpy(), -2 * Xn.T @ yn / 2000)


def test_cupy_backend():
    cupy = _cupy()
    x = mg.asarray(cupy.arange(6.0).reshape(2, 3), requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.backend == "cupy"
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.arange(6.0).reshape(2, 3))


def test_distributed_example_runs_on_a_local_cluster():
    """examples/dask_least_squares.py, small: matgrad's gradient equals the hand-written Dask
    one on a LocalCluster with a memory limit."""
    pytest.importorskip("distributed")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "dask_least_squares.py"
    spec = importlib.util.spec_from_file_location("dask_least_squares", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = example.run(n_rows=40_000, n_features=8, chunk_rows=10_000, memory_limit="512MiB")
    assert out["max_grad_difference"] < 1e-10
    assert set(out["time"]) == {"matgrad", "dask"} and out["loss"] > 0


def _row_chunked(x: np.ndarray):
    return da.from_array(x, chunks=(x.shape[0] // 4, x.shape[1]))  # tall-and-skinny blocks


@pytest.mark.parametrize(
    "name, loss",
    [
        ("qr", lambda A: (mg.linalg.qr(A)[0] * 1.5).sum() + (mg.linalg.qr(A)[1] ** 2).sum()),
        ("svdvals", lambda A: mg.linalg.svdvals(A).sum()),
        ("nuclear norm", lambda A: mg.linalg.matrix_norm(A, "nuc")),
    ],
)
def test_dask_tall_and_skinny_linalg_matches_numpy(name, loss):
    An = np.random.default_rng(5).standard_normal((40, 3))
    ref = mg.tensor(An, requires_grad=True)
    loss(ref).backward()
    A = mg.asarray(_row_chunked(An), requires_grad=True)
    value = loss(A)
    value.backward()
    assert value.backend == "dask" and A.grad.backend == "dask"
    np.testing.assert_allclose(A.grad.numpy(), ref.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "name, loss",
    [
        ("inv", lambda A, D: (mg.linalg.inv(A) * D).sum()),
        ("cholesky", lambda A, D: (mg.linalg.cholesky(A) * D).sum()),
    ],
)
def test_dask_blocked_inverse_and_cholesky_match_numpy(name, loss):
    rng = np.random.default_rng(2)
    M = rng.standard_normal((6, 6))
    An, Dn = M @ M.T + 6 * np.eye(6), np.tril(rng.standard_normal((6, 6)))
    ref = mg.tensor(An, requires_grad=True)
    loss(ref, mg.tensor(Dn)).backward()
    A = mg.asarray(da.from_array(An, chunks=3), requires_grad=True)
    value = loss(A, mg.asarray(da.from_array(Dn, chunks=3)))
    value.backward()
    assert value.backend == "dask" and A.grad.backend == "dask"
    np.testing.assert_allclose(A.grad.numpy(), ref.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_dask_linalg_that_dask_lacks_names_op_and_backend():
    A = mg.asarray(da.eye(4, chunks=2))
    with pytest.raises(NotImplementedError, match=r"linalg\.det.*dask"):
        mg.linalg.det(A)
    B = mg.asarray(
        _row_chunked(np.random.default_rng(0).standard_normal((40, 3))), requires_grad=True
    )
    U = mg.linalg.svd(B, full_matrices=False)[0]
    with pytest.raises(NotImplementedError, match="singular or eigen vectors.*dask"):
        U.sum().backward()
