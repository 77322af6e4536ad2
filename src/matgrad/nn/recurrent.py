"""Recurrent layers: RNN, LSTM, GRU and their cells, as PyTorch's ``torch.nn`` ones.

Parameter names, shapes, gate order (LSTM: i, f, g, o; GRU: r, z, n), defaults, input and
state layouts and error messages follow PyTorch, so state dicts interchange. Everything is
composed of matgrad's ops (matmul, sigmoid, tanh, stack, ...): the graph of a sequence is
the unrolled loop, and its derivatives (of any order) come from the rule table.

Equations (PyTorch's documentation; ``x W^T`` is written ``W x``)::

    RNN:   h' = act(W_ih x + b_ih + W_hh h + b_hh)                      act = tanh | relu
    LSTM:  i, f, g, o = split4(W_ih x + b_ih + W_hh h + b_hh)
           c' = sigmoid(f) c + sigmoid(i) tanh(g);  h' = sigmoid(o) tanh(c')  [then W_hr h']
    GRU:   r, z = sigmoid(split(W_ih x + b_ih + W_hh h + b_hh)[:2])
           n = tanh(W_in x + b_in + r (W_hn h + b_hn));  h' = (1 - z) n + z h
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.tensor_base import as_tensor, get_default_dtype
from ..ops import composite as C
from ..ops.bindings import FUNCTIONS as _F
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase"]

_sigmoid = _F["sigmoid"]
_tanh = _F["tanh"]
_relu = _F["relu"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else as_tensor(x)


def _empty(*shape: int, dtype: Any = None) -> Parameter:
    dt = get_default_dtype() if dtype is None else np.dtype(dtype)
    return Parameter(np.zeros(shape, dtype=dt))


def _zeros(shape: tuple[int, ...], like: Tensor) -> Tensor:
    return Tensor._wrap(np.zeros(shape, dtype=like.dtype))


# -- one time step ---------------------------------------------------------------------------
# ``xw`` is the input projection ``x W_ih^T + b_ih`` (computed for the whole sequence at once
# by the layers); ``w_hh_t`` is ``W_hh^T``, transposed once per sequence, not once per step.
def _rnn_step(
    xw: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None, act: Callable[[Tensor], Tensor]
) -> Tensor:
    pre = xw + C.matmul(h, w_hh_t)
    return act(pre if b_hh is None else pre + b_hh)


def _lstm_step(
    xw: Tensor,
    h: Tensor,
    c: Tensor,
    w_hh_t: Tensor,
    b_hh: Tensor | None,
    w_hr_t: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    gates = xw + C.matmul(h, w_hh_t)
    if b_hh is not None:
        gates = gates + b_hh
    i, f, g, o = C.chunk(gates, 4, -1)
    c_new = _sigmoid(f) * c + _sigmoid(i) * _tanh(g)
    h_new = _sigmoid(o) * _tanh(c_new)
    if w_hr_t is not None:  # LSTM with projections: h = W_hr (o * tanh(c))
        h_new = C.matmul(h_new, w_hr_t)
    return h_new, c_new


def _gru_step(xw: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None) -> Tensor:
    hw = C.matmul(h, w_hh_t)
    if b_hh is not None:
        hw = hw + b_hh
    n_h = h.shape[-1]
    rz = _sigmoid(xw[..., : 2 * n_h] + hw[..., : 2 * n_h])
    r, z = rz[..., :n_h], rz[..., n_h:]
    n = _tanh(xw[..., 2 * n_h :] + r * hw[..., 2 * n_h :])
    return n + z * (h - n)  # = (1 - z) n + z h


def _dtype_name(dt: Any) -> str:
    return str(np.dtype(dt))


# -- the layers ------------------------------------------------------------------------------
class RNNBase(Module):
    """The multi-layer recurrent layers (``mode``: ``'RNN_TANH'``, ``'RNN_RELU'``, ``'LSTM'``
    or ``'GRU'``); parameters ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` (and ``weight_hr_l{k}`` with ``proj_size``), ``_reverse`` for the
    backward direction, all initialized ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if (
            not isinstance(dropout, numbers.Number)
            or isinstance(dropout, bool)
            or not 0 <= dropout <= 1
        ):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of "
                "an element being zeroed"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=3,
            )
        for name, value in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError(
                "proj_size should be a positive integer or zero to disable projections"
            )
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if mode not in _GATES:
            raise ValueError("Unrecognized RNN mode: " + mode)
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")

        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size

        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        num_directions = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * num_directions
            for direction in range(num_directions):
                suffix = "_reverse" if direction == 1 else ""
                shapes = [
                    ("weight_ih", (gate_size, layer_input)),
                    ("weight_hh", (gate_size, real_hidden)),
                ]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size > 0:
                    shapes += [("weight_hr", (proj_size, hidden_size))]
                names = []
                for stem, shape in shapes:
                    name = f"{stem}_l{layer}{suffix}"
                    setattr(self, name, _empty(*shape, dtype=dtype))
                    names.append(name)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """PyTorch's cuDNN weight packing; nothing to do here (kept so that code calling it
        runs)."""

    @property
    def _flat_weights(self) -> list[Parameter | None]:
        return [getattr(self, n, None) for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Parameter]]:
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # -- forward helpers ------------------------------------------------------------------------
    @property
    def _name(self) -> str:
        return "RNN" if self.mode.startswith("RNN") else self.mode

    def _layer_params(self, layer: int, direction: int) -> dict[str, Tensor | None]:
        suffix = "_reverse" if direction == 1 else ""
        return {
            stem: getattr(self, f"{stem}_l{layer}{suffix}", None)
            for stem in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        }

    def _check_input(self, input: Tensor) -> None:
        w = self.weight_ih_l0
        if input.dtype != w.dtype:
            raise ValueError(
                f"RNN input dtype ({_dtype_name(input.dtype)}) does not match weight dtype "
                f"({_dtype_name(w.dtype)}). Convert input: input.to({_dtype_name(w.dtype)}), "
                f"or convert model: model.to({_dtype_name(input.dtype)})"
            )
        if input.shape[-1] != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                f"got {input.shape[-1]}"
            )

    def _expected_hidden(self, batch: int, size: int) -> tuple[int, int, int]:
        return (self.num_layers * (2 if self.bidirectional else 1), batch, size)

    @staticmethod
    def _check_hidden(hx: Tensor, expected: tuple[int, int, int], what: str) -> None:
        if tuple(hx.shape) != expected:
            raise RuntimeError(f"Expected {what} size {expected}, got {list(hx.shape)}")

    def _prepare(self, input: Any) -> tuple[Tensor, bool]:
        """The input as a (seq, batch, feature) tensor, and whether it was batched."""
        input = _t(input)
        if input.ndim not in (2, 3):
            raise ValueError(
                f"{self._name}: Expected input to be 2D or 3D, got {input.ndim}D tensor instead"
            )
        batched = input.ndim == 3
        if not batched:
            input = C.unsqueeze(input, 1)  # batch_first is ignored for unbatched input
        elif self.batch_first:
            input = C.transpose(input, 0, 1)
        self._check_input(input)
        if input.shape[0] == 0:
            raise RuntimeError(f"Expected sequence length to be larger than 0 in {self._name}")
        return input, batched

    def _state(self, hx: Any, batched: bool, batch: int, size: int, what: str) -> Tensor:
        """One initial state checked and in (layers * directions, batch, size) form."""
        hx = _t(hx)
        if batched and hx.ndim != 3:
            raise RuntimeError(
                f"For batched 3-D input, hx should also be 3-D but got {hx.ndim}-D tensor"
            )
        if not batched:
            if hx.ndim != 2:
                raise RuntimeError(
                    f"For unbatched 2-D input, hx should also be 2-D but got {hx.ndim}-D tensor"
                )
            hx = C.unsqueeze(hx, 1)
        self._check_hidden(hx, self._expected_hidden(batch, size), what)
        if hx.dtype != self.weight_ih_l0.dtype:
            raise ValueError(
                f"{self._name}: hx dtype ({_dtype_name(hx.dtype)}) does not match weight dtype "
                f"({_dtype_name(self.weight_ih_l0.dtype)})"
            )
        return hx

    def _run(
        self, x: Tensor, h0: list[Tensor], c0: list[Tensor] | None
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """All layers over the time-major ``x``; initial states per (layer, direction).
        Returns the last layer's output and the final states in ``h0``'s order."""
        num_directions = 2 if self.bidirectional else 1
        h_n: list[Tensor] = []
        c_n: list[Tensor] = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(num_directions):
                idx = layer * num_directions + direction
                p = self._layer_params(layer, direction)
                xw = F.linear(x, p["weight_ih"], p["bias_ih"])  # every step's input at once
                steps = C.unbind(xw, 0)
                order = range(len(steps) - 1, -1, -1) if direction == 1 else range(len(steps))
                w_hh_t = p["weight_hh"].mT
                b_hh = p["bias_hh"]
                h = h0[idx]
                outs: list[Tensor] = [None] * len(steps)  # type: ignore[list-item]
                if self.mode == "LSTM":
                    c = c0[idx]  # type: ignore[index]
                    w_hr_t = None if p["weight_hr"] is None else p["weight_hr"].mT
                    for t in order:
                        h, c = _lstm_step(steps[t], h, c, w_hh_t, b_hh, w_hr_t)
                        outs[t] = h
                    c_n.append(c)
                elif self.mode == "GRU":
                    for t in order:
                        h = _gru_step(steps[t], h, w_hh_t, b_hh)
                        outs[t] = h
                else:
                    act = _tanh if self.mode == "RNN_TANH" else _relu
                    for t in order:
                        h = _rnn_step(steps[t], h, w_hh_t, b_hh, act)
                        outs[t] = h
                h_n.append(h)
                outputs.append(C.stack(outs, 0))
            x = outputs[0] if num_directions == 1 else C.cat(outputs, -1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, h_n, c_n

    def _finish(self, output: Tensor, batched: bool) -> Tensor:
        if not batched:
            return C.squeeze(output, 1)
        return C.transpose(output, 0, 1) if self.batch_first else output


class _SimpleRecurrent(RNNBase):
    """RNN and GRU: one state ``h``."""

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(output, h_n)``: output (seq, batch, directions * hidden) (batch first with
        ``batch_first``; no batch axis for unbatched input), h_n (layers * directions,
        batch, hidden)."""
        x, batched = self._prepare(input)
        batch = x.shape[1]
        if hx is None:
            h = _zeros(self._expected_hidden(batch, self.hidden_size), x)
        else:
            h = self._state(hx, batched, batch, self.hidden_size, "hidden")
        output, h_n, _ = self._run(x, list(C.unbind(h, 0)), None)
        hidden = C.stack(h_n, 0)
        return self._finish(output, batched), hidden if batched else C.squeeze(hidden, 1)


class RNN(_SimpleRecurrent):
    """Elman RNN, ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` with ``act`` tanh
    or relu (``nonlinearity``), ``num_layers`` stacked, optionally bidirectional."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if kwargs:
            raise TypeError(f"RNN.__init__() got unexpected keyword arguments {sorted(kwargs)}")
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        self.nonlinearity = nonlinearity
        super().__init__(
            mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, 0, device, dtype,
        )  # fmt: skip


class GRU(_SimpleRecurrent):
    """Gated recurrent unit (gates r, z, n in that order in the weights), ``num_layers``
    stacked, optionally bidirectional."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if kwargs:
            raise TypeError(f"GRU.__init__() got unexpected keyword arguments {sorted(kwargs)}")
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, 0, device, dtype,
        )  # fmt: skip


class LSTM(RNNBase):
    """Long short-term memory (gates i, f, g, o in that order in the weights), ``num_layers``
    stacked, optionally bidirectional, with ``proj_size`` the hidden state projected by
    ``weight_hr_l{k}`` (Sak et al., 2014)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, proj_size, device, dtype,
        )  # fmt: skip

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``(output, (h_n, c_n))``: output (seq, batch, directions * H_out), h_n (layers *
        directions, batch, H_out), c_n (layers * directions, batch, hidden), where ``H_out``
        is ``proj_size`` if set, else ``hidden_size``."""
        x, batched = self._prepare(input)
        batch = x.shape[1]
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        if hx is None:
            h = _zeros(self._expected_hidden(batch, real_hidden), x)
            c = _zeros(self._expected_hidden(batch, self.hidden_size), x)
        else:
            if not isinstance(hx, tuple | list) or len(hx) != 2:
                raise TypeError("LSTM: hx must be a tuple (h_0, c_0) of two tensors")
            h0, c0 = _t(hx[0]), _t(hx[1])
            dims = 3 if batched else 2
            if h0.ndim != dims or c0.ndim != dims:
                kind = "batched 3-D" if batched else "unbatched 2-D"
                raise RuntimeError(
                    f"For {kind} input, hx and cx should also be {dims}-D but got "
                    f"({h0.ndim}-D, {c0.ndim}-D) tensors"
                )
            h = self._state(h0, batched, batch, real_hidden, "hidden[0]")
            c = self._state(c0, batched, batch, self.hidden_size, "hidden[1]")
        output, h_n, c_n = self._run(x, list(C.unbind(h, 0)), list(C.unbind(c, 0)))
        hidden, cell = C.stack(h_n, 0), C.stack(c_n, 0)
        if not batched:
            hidden, cell = C.squeeze(hidden, 1), C.squeeze(cell, 1)
        return self._finish(output, batched), (hidden, cell)


# -- the cells -------------------------------------------------------------------------------
class RNNCellBase(Module):
    """One time step: parameters ``weight_ih`` (chunks * hidden, input), ``weight_hh``
    (chunks * hidden, hidden), ``bias_ih``, ``bias_hh`` (chunks * hidden), initialized
    ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        num_chunks: int,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = _empty(num_chunks * hidden_size, input_size, dtype=dtype)
        self.weight_hh = _empty(num_chunks * hidden_size, hidden_size, dtype=dtype)
        if bias:
            self.bias_ih = _empty(num_chunks * hidden_size, dtype=dtype)
            self.bias_hh = _empty(num_chunks * hidden_size, dtype=dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _input(self, input: Any) -> tuple[Tensor, bool]:
        """``input`` as (batch, input_size), and whether it was batched."""
        name = type(self).__name__
        input = _t(input)
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        batched = input.ndim == 2
        if not batched:
            input = C.unsqueeze(input, 0)
        if input.shape[1] != self.input_size:
            raise RuntimeError(
                f"{name}: input has inconsistent input_size: got {input.shape[1]} expected "
                f"{self.input_size}"
            )
        if input.dtype != self.weight_ih.dtype:
            raise ValueError(
                f"{name}: input dtype ({_dtype_name(input.dtype)}) does not match weight dtype "
                f"({_dtype_name(self.weight_ih.dtype)})"
            )
        return input, batched

    def _hidden(self, hx: Any, batched: bool, batch: int, what: str, label: str) -> Tensor:
        name = type(self).__name__
        hx = _t(hx)
        if hx.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected {what} to be 1D or 2D, got {hx.ndim}D instead")
        if hx.ndim != (2 if batched else 1):
            raise RuntimeError(
                f"{name}: a {'2-D' if batched else '1-D'} input needs a "
                f"{'2-D' if batched else '1-D'} {what}, got shape {list(hx.shape)}"
            )
        if not batched:
            hx = C.unsqueeze(hx, 0)
        if hx.shape[0] != batch:
            raise RuntimeError(
                f"{name}: Input batch size {batch} doesn't match {label} batch size {hx.shape[0]}"
            )
        if hx.shape[1] != self.hidden_size:
            raise RuntimeError(
                f"{name}: {label} has inconsistent hidden_size: got {hx.shape[1]}, expected "
                f"{self.hidden_size}"
            )
        if hx.dtype != self.weight_ih.dtype:
            raise ValueError(
                f"{name}: {what} dtype ({_dtype_name(hx.dtype)}) does not match weight dtype "
                f"({_dtype_name(self.weight_ih.dtype)})"
            )
        return hx


class RNNCell(RNNCellBase):
    """``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``, ``act`` tanh or relu."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            # PyTorch accepts it here and fails in forward; failing early is clearer
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._input(input)
        if hx is None:
            h = _zeros((x.shape[0], self.hidden_size), x)
        else:
            h = self._hidden(hx, batched, x.shape[0], "hidden", "hidden0")
        act = _tanh if self.nonlinearity == "tanh" else _relu
        xw = F.linear(x, self.weight_ih, self.bias_ih)
        out = _rnn_step(xw, h, self.weight_hh.mT, self.bias_hh, act)
        return out if batched else C.squeeze(out, 0)


class LSTMCell(RNNCellBase):
    """One LSTM step: ``(h', c')`` from ``x`` and ``(h, c)`` (gates i, f, g, o)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        x, batched = self._input(input)
        if hx is None:
            h = c = _zeros((x.shape[0], self.hidden_size), x)
        else:
            if not isinstance(hx, tuple | list) or len(hx) != 2:
                raise TypeError("LSTMCell: hx must be a tuple (h, c) of two tensors")
            h = self._hidden(hx[0], batched, x.shape[0], "hx[0]", "hidden0")
            c = self._hidden(hx[1], batched, x.shape[0], "hx[1]", "hidden1")
        xw = F.linear(x, self.weight_ih, self.bias_ih)
        h, c = _lstm_step(xw, h, c, self.weight_hh.mT, self.bias_hh)
        return (h, c) if batched else (C.squeeze(h, 0), C.squeeze(c, 0))


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._input(input)
        if hx is None:
            h = _zeros((x.shape[0], self.hidden_size), x)
        else:
            h = self._hidden(hx, batched, x.shape[0], "hidden", "hidden0")
        xw = F.linear(x, self.weight_ih, self.bias_ih)
        out = _gru_step(xw, h, self.weight_hh.mT, self.bias_hh)
        return out if batched else C.squeeze(out, 0)
