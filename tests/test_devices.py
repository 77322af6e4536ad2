"""Devices as PyTorch names them: 'cpu' (NumPy, Dask) and 'cuda' (CuPy, where present)."""

from __future__ import annotations

import numpy as np
import pytest

import matgrad as torch

NO_CUDA = not torch.cuda.is_available()


def test_device_objects_parse_compare_and_print_like_pytorch():
    assert repr(torch.device("cpu")) == "device(type='cpu')"
    assert repr(torch.device("cuda:1")) == "device(type='cuda', index=1)"
    assert torch.device("cuda", 1) == torch.device("cuda:1") == "cuda:1"
    assert str(torch.device("cuda:0")) == "cuda:0" and torch.device(0).type == "cuda"
    assert torch.device("cpu") != "cuda"
    assert len({torch.device("cpu"), torch.device("cpu")}) == 1
    for bad in ("tpu", "cuda:x", "cpu:1"):
        with pytest.raises(RuntimeError):
            torch.device(bad)


def test_cpu_tensors_and_creation_with_device():
    for make in (
        lambda: torch.zeros(2, 3, device="cpu"),
        lambda: torch.ones(2, device=torch.device("cpu")),
        lambda: torch.randn(2, device="cpu"),
        lambda: torch.arange(3, device="cpu"),
        lambda: torch.tensor([1.0], device="cpu"),
        lambda: torch.full((2,), 1.5, device="cpu"),
        lambda: torch.eye(2, device="cpu"),
    ):
        t = make()
        assert t.device == "cpu" and t.device.type == "cpu" and not t.is_cuda
    x = torch.ones(2, requires_grad=True)
    assert x.cpu() is x and x.to("cpu") is x


@pytest.mark.skipif(not NO_CUDA, reason="checks the message where CUDA is absent")
def test_cuda_raises_clearly_where_absent():
    assert torch.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        torch.ones(2).cuda()
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        torch.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        torch.set_default_device("cuda")
        try:
            torch.zeros(1)
        finally:
            torch.set_default_device("cpu")
    assert torch.zeros(1).device == "cpu"
    assert not torch.backends.mps.is_available()


def test_to_takes_dtypes_devices_and_tensors():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x.to("cpu", torch.float32)
    assert y.dtype == np.float32 and y.requires_grad and y.grad_fn is not None
    assert x.to(torch.zeros(1, dtype=torch.float32)).dtype == np.float32
    assert x.to(device="cpu", dtype=torch.float64) is x
    assert x.type_as(torch.zeros(1, dtype=torch.float32)).dtype == np.float32


def test_new_factories_take_dtype_and_device_of_the_tensor():
    x = torch.zeros(2, dtype=torch.float32)
    assert x.new_zeros(3).dtype == np.float32 and x.new_zeros(3).shape == (3,)
    assert x.new_ones((2, 2)).tolist() == [[1, 1], [1, 1]]
    assert x.new_full((2,), 7).tolist() == [7, 7]
    assert x.new_empty(4).shape == (4,)
    assert x.new_tensor([1, 2]).dtype == np.float32
    assert x.new_zeros(2, requires_grad=True).requires_grad
    assert x.ndimension() == 1 and torch.numel(x) == 2 and torch.is_tensor(x)
    assert not torch.is_tensor(np.zeros(2))


def test_format_of_a_one_element_tensor():
    loss = torch.tensor(3.14159)
    assert f"{loss:.2f}" == "3.14" and f"{torch.tensor([2.5]):.1e}" == "2.5e+00"
