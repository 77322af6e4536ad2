"""``nn.functional``'s convolutions, pooling, unfold/fold, interpolation and group norm.

Everything is a composite of the rule table's rows, so the graphs show primitives and
derivatives of any order come from the table:

* convolution is im2col: the table's ``im2col`` row (PyTorch's unfold: one strided copy per
  kernel offset, the zero padding never materialised; its adjoint ``col2im`` is one zero array
  and an in-place slice-add per offset), contracted with the weight in one ``matmul``;
* a transposed convolution is the adjoint of a convolution: the input dilated by the stride
  (zero insertion: ``unsqueeze`` + ``pad`` + ``reshape``), padded by ``dilation * (k - 1) -
  padding``, convolved with the spatially flipped weight whose in/out channels are swapped;
* ``unfold`` is the ``im2col`` row and ``fold`` its adjoint ``col2im``;
* pooling takes the same windows, (N, C, K, *out); max pooling picks PyTorch's element (the
  first maximum in window order) with a mask, so its gradient goes to that element only.

Shapes, defaults and error types follow ``torch.nn.functional``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.tensor_base import as_tensor
from ..creation import rand
from ..ops import composite as C
from ..ops.batching import BatchedTensor
from ..ops.bindings import FUNCTIONS as _F
from ..ops.registry import PRIMITIVES as _P
from ..tensor import Tensor

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "conv1d",
    "conv2d",
    "conv_transpose1d",
    "conv_transpose2d",
    "fold",
    "group_norm",
    "interpolate",
    "max_pool1d",
    "max_pool2d",
    "unfold",
    "upsample",
    "upsample_bilinear",
    "upsample_nearest",
    "adaptive_avg_pool3d",
    "adaptive_max_pool3d",
    "affine_grid",
    "avg_pool3d",
    "channel_shuffle",
    "conv3d",
    "conv_transpose3d",
    "fractional_max_pool2d",
    "fractional_max_pool3d",
    "grid_sample",
    "lp_pool1d",
    "lp_pool2d",
    "lp_pool3d",
    "max_pool3d",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "pixel_shuffle",
    "pixel_unshuffle",
]

_where = _F["where"]
_sqrt = _F["sqrt"]

IntOrSeq = int | Sequence[int]


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else as_tensor(x)


def _ntuple(op: str, name: str, value: Any, n: int) -> tuple[int, ...]:
    """``value`` as ``n`` ints (an int is repeated), PyTorch's message otherwise."""
    if isinstance(value, int | np.integer):
        return (int(value),) * n
    values = tuple(value)
    if len(values) == 1:
        return (int(values[0]),) * n
    if len(values) != n or not all(isinstance(v, int | np.integer) for v in values):
        raise RuntimeError(
            f"{op}: expected {name} to be a single integer value or a list of {n} values to "
            f"match the convolution dimensions, but got {name}={list(values)}"
        )
    return tuple(int(v) for v in values)


def _spatial(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape[2:])


def _batched(op: str, input: Any, nd: int) -> tuple[Tensor, bool]:
    """``input`` with a batch axis (added for an unbatched input, reported by the flag)."""
    input = _t(input)
    if input.ndim == nd + 1:
        return C.unsqueeze(input, 0), True
    if input.ndim != nd + 2:
        raise RuntimeError(
            f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {op}, but got "
            f"input of size: {list(input.shape)}"
        )
    return input, False


def _check_floating(op: str, **tensors: Tensor | None) -> None:
    dtypes = {name: t.dtype for name, t in tensors.items() if t is not None}
    for name, dt in dtypes.items():
        if dt.kind != "f":
            raise RuntimeError(f"{op}: expected a floating point {name}, got dtype {dt}")
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name} {dt}" for name, dt in dtypes.items())
        raise RuntimeError(f"{op}: expected input, weight and bias of one dtype, got {listed}")


def _pad_spatial(x: Tensor, before: Sequence[int], after: Sequence[int], value: float) -> Tensor:
    """Constant padding (negative amounts crop) of the trailing spatial axes."""
    amounts: list[int] = []
    for b, a in zip(reversed(before), reversed(after), strict=True):
        amounts += [int(b), int(a)]
    if not any(amounts):
        return x
    return C.pad(x, amounts, "constant", value)


def _padding_attr(before: Sequence[int], after: Sequence[int]) -> tuple[Any, ...]:
    """``im2col``'s padding: an int per axis, or (before, after) where they differ."""
    return tuple(int(b) if b == a else (int(b), int(a)) for b, a in zip(before, after, strict=True))


def _im2col(
    x: Tensor,
    kernel: Sequence[int],
    dilation: Sequence[int],
    padding: Sequence[Any],
    stride: Sequence[int],
) -> Tensor:
    """(N, C, *spatial) -> (N, C * K, L): the table's ``im2col`` (Im2colBackward0)."""
    return _P.im2col(
        x,
        kernel_size=tuple(kernel),
        dilation=tuple(dilation),
        padding=tuple(padding),
        stride=tuple(stride),
    )


def _windows(
    x: Tensor,
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    before: Sequence[int],
    after: Sequence[int],
    out: Sequence[int],
) -> Tensor:
    """The windows of ``x`` (zero padding ``before`` / ``after`` each spatial axis) as
    (N, C, K, *out), entry ``k`` the kernel offset ``k`` in row-major order: ``im2col``,
    reshaped (a view)."""
    cols = _im2col(x, kernel, dilation, _padding_attr(before, after), stride)
    return C.reshape(cols, (x.shape[0], x.shape[1], math.prod(kernel), *out))


def _conv_out(
    op: str,
    size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> tuple[int, ...]:
    """Output sizes of a convolution over (already padded) ``size``."""
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    if any(n < e for n, e in zip(size, eff, strict=True)):
        raise RuntimeError(
            f"{op}: Calculated padded input size per channel: ({' x '.join(map(str, size))}). "
            f"Kernel size: ({' x '.join(map(str, eff))}). Kernel size can't be greater than "
            "actual input size"
        )
    return tuple((n - e) // s + 1 for n, e, s in zip(size, eff, stride, strict=True))


def _conv_padding(
    op: str,
    padding: Any,
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    nd: int,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(before, after) amounts per spatial axis; 'same' may be asymmetric (the extra one
    after, as PyTorch)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError(
                    f"{op}: padding='same' is not supported for strided convolutions"
                )
            total = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
            before = tuple(t // 2 for t in total)
            return before, tuple(t - b for t, b in zip(total, before, strict=True))
        raise RuntimeError(
            f"{op}: Invalid padding string: {padding!r} (expected 'valid' or 'same')"
        )
    pad = _ntuple(op, "padding", padding, nd)
    if any(p < 0 for p in pad):
        raise RuntimeError(f"{op}: negative padding is not supported, got padding={list(pad)}")
    return pad, pad


def _conv_nd(
    op: str,
    nd: int,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
) -> Tensor:
    x, unbatched = _batched(op, input, nd)
    weight = _t(weight)
    bias = None if bias is None else _t(bias)
    _check_floating(op, input=x, weight=weight, bias=bias)
    if weight.ndim != nd + 2:
        raise RuntimeError(
            f"{op}: expected a {nd + 2}-d weight (out_channels, in_channels / groups, "
            f"*kernel_size), got weight of size {list(weight.shape)}"
        )
    stride_t = _ntuple(op, "stride", stride, nd)
    dilation_t = _ntuple(op, "dilation", dilation, nd)
    if any(s <= 0 for s in stride_t):
        raise RuntimeError(
            f"{op}: non-positive stride is not supported, got stride={list(stride_t)}"
        )
    if any(d <= 0 for d in dilation_t):
        raise RuntimeError(
            f"{op}: dilation should be greater than zero, but got dilation={list(dilation_t)}"
        )
    if not isinstance(groups, int | np.integer) or groups <= 0:
        raise RuntimeError(f"{op}: non-positive groups is not supported, got groups={groups}")
    out_ch, in_per_group = weight.shape[0], weight.shape[1]
    kernel = tuple(weight.shape[2:])
    if out_ch % groups:
        raise RuntimeError(
            f"{op}: Given groups={groups}, expected weight to be divisible by {groups} at "
            f"dimension 0, but got weight of size {list(weight.shape)} instead"
        )
    n, c = x.shape[0], x.shape[1]
    if c != in_per_group * groups:
        raise RuntimeError(
            f"{op}: Given groups={groups}, weight of size {list(weight.shape)}, expected "
            f"input{list(x.shape)} to have {in_per_group * groups} channels, but got {c} "
            "channels instead"
        )
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != out_ch):
        raise RuntimeError(
            f"{op}: Given weight of size {list(weight.shape)}, expected bias to be 1-dimensional "
            f"with {out_ch} elements, but got bias of size {list(bias.shape)} instead"
        )
    before, after = _conv_padding(op, padding, kernel, stride_t, dilation_t, nd)
    padded = [s + b + a for s, b, a in zip(_spatial(x), before, after, strict=True)]
    out = _conv_out(op, padded, kernel, stride_t, dilation_t)
    k = math.prod(kernel)
    length = math.prod(out)
    # (N, C * K, L), rows channel-major
    cols = _im2col(x, kernel, dilation_t, _padding_attr(before, after), stride_t)
    if groups == 1:
        y = C.matmul(C.reshape(weight, (out_ch, c * k)), cols)  # (N, O, L)
    else:
        cols = C.reshape(cols, (n, groups, in_per_group * k, length))
        w = C.reshape(weight, (groups, out_ch // groups, in_per_group * k))
        y = C.reshape(C.matmul(w, cols), (n, out_ch, length))
    if bias is not None:
        y = y + C.reshape(bias, (out_ch, 1))
    y = C.reshape(y, (n, out_ch, *out))
    return C.squeeze(y, 0) if unbatched else y


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq | str = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
) -> Tensor:
    """1-d cross-correlation of (N, C_in, L) (or unbatched (C_in, L)) with a weight of shape
    (C_out, C_in / groups, k)."""
    return _conv_nd("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq | str = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
) -> Tensor:
    """2-d cross-correlation ``out[n, o] = bias[o] + sum_c weight[o, c] * input[n, c]``
    (windows by stride, dilation, zero padding or 'same'/'valid'), as torch's conv2d."""
    return _conv_nd("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def _dilate(x: Tensor, stride: Sequence[int]) -> Tensor:
    """Zero insertion: ``s - 1`` zeros after every element of each spatial axis (the trailing
    ``s - 1`` included: callers crop them), via unsqueeze + pad + reshape (all linear, cheap
    adjoints)."""
    nd = len(stride)
    for i, s in enumerate(stride):
        if s == 1:
            continue
        axis = 2 + i
        x = C.unsqueeze(x, axis + 1)
        behind = x.ndim - 1 - (axis + 1)  # axes after the new one
        x = C.pad(x, [0, 0] * behind + [0, s - 1], "constant", 0.0)
        shape = list(x.shape)
        shape[axis : axis + 2] = [shape[axis] * s]
        x = C.reshape(x, tuple(shape))
    assert x.ndim == nd + 2
    return x


def _conv_transpose_nd(
    op: str,
    nd: int,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    output_padding: Any,
    groups: int,
    dilation: Any,
) -> Tensor:
    x, unbatched = _batched(op, input, nd)
    weight = _t(weight)
    bias = None if bias is None else _t(bias)
    _check_floating(op, input=x, weight=weight, bias=bias)
    if weight.ndim != nd + 2:
        raise RuntimeError(
            f"{op}: expected a {nd + 2}-d weight (in_channels, out_channels / groups, "
            f"*kernel_size), got weight of size {list(weight.shape)}"
        )
    if isinstance(padding, str):
        raise RuntimeError(f"{op}: padding must be an int or a tuple of ints, got {padding!r}")
    stride_t = _ntuple(op, "stride", stride, nd)
    pad_t = _ntuple(op, "padding", padding, nd)
    opad_t = _ntuple(op, "output_padding", output_padding, nd)
    dilation_t = _ntuple(op, "dilation", dilation, nd)
    if any(s <= 0 for s in stride_t):
        raise RuntimeError(
            f"{op}: non-positive stride is not supported, got stride={list(stride_t)}"
        )
    if any(d <= 0 for d in dilation_t):
        raise RuntimeError(
            f"{op}: dilation should be greater than zero, but got dilation={list(dilation_t)}"
        )
    if any(p < 0 for p in pad_t) or any(p < 0 for p in opad_t):
        raise RuntimeError(f"{op}: negative padding is not supported")
    for o, s, d in zip(opad_t, stride_t, dilation_t, strict=True):
        if o >= s and o >= d:
            raise RuntimeError(
                f"{op}: output padding must be smaller than either stride or dilation, but got "
                f"output_padding={list(opad_t)}, stride={list(stride_t)}, "
                f"dilation={list(dilation_t)}"
            )
    if not isinstance(groups, int | np.integer) or groups <= 0:
        raise RuntimeError(f"{op}: non-positive groups is not supported, got groups={groups}")
    in_ch, out_per_group = weight.shape[0], weight.shape[1]
    kernel = tuple(weight.shape[2:])
    if x.shape[1] != in_ch:
        raise RuntimeError(
            f"{op}: Given transposed=1, weight of size {list(weight.shape)}, expected "
            f"input{list(x.shape)} to have {in_ch} channels, but got {x.shape[1]} channels "
            "instead"
        )
    if in_ch % groups:
        raise RuntimeError(
            f"{op}: Given groups={groups}, expected weight to be divisible by {groups} at "
            f"dimension 0, but got weight of size {list(weight.shape)} instead"
        )
    out_ch = out_per_group * groups
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != out_ch):
        raise RuntimeError(
            f"{op}: Given transposed=1, weight of size {list(weight.shape)}, expected bias to "
            f"be 1-dimensional with {out_ch} elements, but got bias of size "
            f"{list(bias.shape)} instead"
        )
    sizes = [
        (n - 1) * s - 2 * p + d * (k - 1) + o + 1
        for n, s, p, d, k, o in zip(
            _spatial(x), stride_t, pad_t, dilation_t, kernel, opad_t, strict=True
        )
    ]
    if any(s <= 0 for s in sizes):
        raise RuntimeError(
            f"{op}: Given input size per channel: {list(_spatial(x))}, the calculated output "
            f"size per channel is {sizes}, which is too small"
        )
    # the adjoint of conv(stride, padding, dilation): dilate by the stride (n*s long, s - 1
    # zeros too many at the end), pad by d(k-1) - p (negative: crop), plus output_padding
    xd = _dilate(x, stride_t)
    before = [d * (k - 1) - p for d, k, p in zip(dilation_t, kernel, pad_t, strict=True)]
    after = [b + o - (s - 1) for b, o, s in zip(before, opad_t, stride_t, strict=True)]
    xd = _pad_spatial(xd, before, after, 0.0)
    # (C_in, C_out/g, *k) -> (C_out, C_in/g, *k), flipped in space
    in_per_group = in_ch // groups
    w = C.reshape(weight, (groups, in_per_group, out_per_group, *kernel))
    w = C.reshape(C.transpose(w, 1, 2), (out_ch, in_per_group, *kernel))
    w = C.flip(w, tuple(range(2, nd + 2)))
    y = _conv_nd(op, nd, xd, w, bias, 1, 0, dilation_t, groups)
    return C.squeeze(y, 0) if unbatched else y


def conv_transpose1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    output_padding: IntOrSeq = 0,
    groups: int = 1,
    dilation: IntOrSeq = 1,
) -> Tensor:
    """The adjoint (gradient w.r.t. the input) of conv1d, weight (C_in, C_out / groups, k);
    length ``(L - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``."""
    return _conv_transpose_nd(
        "conv_transpose1d",
        1,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
    )


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    output_padding: IntOrSeq = 0,
    groups: int = 1,
    dilation: IntOrSeq = 1,
) -> Tensor:
    """The adjoint (gradient w.r.t. the input) of conv2d, weight (C_in, C_out / groups, kh,
    kw); each output size ``(n - 1) * stride - 2 * padding + dilation * (k - 1) +
    output_padding + 1``."""
    return _conv_transpose_nd(
        "conv_transpose2d",
        2,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
    )


# -- unfold / fold ---------------------------------------------------------------------------
def _block_args(
    op: str, kernel_size: Any, dilation: Any, padding: Any, stride: Any
) -> tuple[tuple[int, ...], ...]:
    k = _ntuple(op, "kernel_size", kernel_size, 2)
    d = _ntuple(op, "dilation", dilation, 2)
    p = _ntuple(op, "padding", padding, 2)
    s = _ntuple(op, "stride", stride, 2)
    if any(v <= 0 for v in k + d + s):
        raise RuntimeError(
            f"{op}: kernel_size, dilation and stride must be positive, got kernel_size="
            f"{list(k)}, dilation={list(d)}, stride={list(s)}"
        )
    if any(v < 0 for v in p):
        raise RuntimeError(f"{op}: padding must be non-negative, got padding={list(p)}")
    return k, d, p, s


def _blocks(
    op: str,
    size: Sequence[int],
    k: Sequence[int],
    d: Sequence[int],
    p: Sequence[int],
    s: Sequence[int],
) -> tuple[int, ...]:
    blocks = tuple(
        (n + 2 * pi - di * (ki - 1) - 1) // si + 1
        for n, ki, di, pi, si in zip(size, k, d, p, s, strict=True)
    )
    if any(b < 1 for b in blocks):
        raise RuntimeError(
            f"{op}: Given input with spatial size {tuple(size)}, kernel_size={tuple(k)}, "
            f"dilation={tuple(d)}, padding={tuple(p)}, calculated shape of the array of "
            f"sliding blocks as {blocks}, but its components must be at least one."
        )
    return blocks


def unfold(
    input: Tensor,
    kernel_size: IntOrSeq,
    dilation: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    stride: IntOrSeq = 1,
) -> Tensor:
    """im2col: (N, C, H, W) -> (N, C * kh * kw, L), column ``l`` the ``l``-th sliding block
    (row-major), rows channel-major then kernel offset, as ``torch.nn.functional.unfold``."""
    input = _t(input)
    if input.ndim not in (3, 4):
        raise RuntimeError(
            f"unfold: Input Error: Only 3D or 4D input Tensors are supported (got {input.ndim}D)"
        )
    x, unbatched = (C.unsqueeze(input, 0), True) if input.ndim == 3 else (input, False)
    k, d, p, s = _block_args("unfold", kernel_size, dilation, padding, stride)
    _blocks("unfold", _spatial(x), k, d, p, s)  # checks the sizes, with PyTorch's message
    cols = _im2col(x, k, d, p, s)
    return C.squeeze(cols, 0) if unbatched else cols


def fold(
    input: Tensor,
    output_size: IntOrSeq,
    kernel_size: IntOrSeq,
    dilation: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    stride: IntOrSeq = 1,
) -> Tensor:
    """col2im, the adjoint of :func:`unfold`: (N, C * kh * kw, L) -> (N, C, *output_size),
    overlapping entries summed: the table's ``col2im`` row."""
    input = _t(input)
    if input.ndim not in (2, 3):
        raise RuntimeError(
            f"fold: Input Error: Only unbatched (2D) or batched (3D) input Tensors are "
            f"supported (got {input.ndim}D)"
        )
    x, unbatched = (C.unsqueeze(input, 0), True) if input.ndim == 2 else (input, False)
    size = _ntuple("fold", "output_size", output_size, 2)
    k, d, p, s = _block_args("fold", kernel_size, dilation, padding, stride)
    kk = math.prod(k)
    if x.shape[1] % kk:
        raise RuntimeError(
            f"fold: Expected size of input's dimension 1 to be divisible by the product of "
            f"kernel_size, but got input.size(1)={x.shape[1]} and kernel_size={tuple(k)}"
        )
    blocks = _blocks("fold", size, k, d, p, s)
    if x.shape[2] != math.prod(blocks):
        raise RuntimeError(
            f"fold: Given output_size={tuple(size)}, kernel_size={tuple(k)}, dilation="
            f"{tuple(d)}, padding={tuple(p)}, stride={tuple(s)}, expected size of input's "
            f"dimension 2 to match the calculated number of sliding blocks "
            f"{' * '.join(map(str, blocks))} = {math.prod(blocks)}, but got "
            f"input.size(2)={x.shape[2]}."
        )
    if x.dtype.kind != "f":
        raise RuntimeError(f"fold: expected a floating point input, got dtype {x.dtype}")
    y = _P.col2im(x, output_size=size, kernel_size=k, dilation=d, padding=p, stride=s)
    return C.squeeze(y, 0) if unbatched else y


# -- pooling ---------------------------------------------------------------------------------
def _pool_args(
    op: str,
    nd: int,
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
) -> tuple[
    Tensor,
    bool,
    tuple[int, ...],
    tuple[int, ...],
    tuple[int, ...],
    tuple[int, ...],
    tuple[int, ...],
    tuple[int, ...],
]:
    """Validated pooling arguments: (batched input, unbatched, kernel, stride, padding,
    dilation, output sizes, extra right padding that ceil_mode's last windows need)."""
    x = _t(input)
    if x.ndim not in (nd + 1, nd + 2) or x.numel() == 0 and x.ndim == nd + 1:
        raise RuntimeError(
            f"{op}: non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor expected for input, "
            f"got input of size {list(x.shape)}"
        )
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = C.unsqueeze(x, 0)
    if x.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating point input, got dtype {x.dtype}")
    k = _ntuple(op, "kernel_size", kernel_size, nd)
    s = (
        k
        if stride is None or (not isinstance(stride, int) and len(stride) == 0)
        else _ntuple(op, "stride", stride, nd)
    )
    p = _ntuple(op, "padding", padding, nd)
    d = _ntuple(op, "dilation", dilation, nd)
    if any(v <= 0 for v in k):
        raise RuntimeError(f"{op}: kernel size should be greater than zero, but got {list(k)}")
    if any(v <= 0 for v in s):
        raise RuntimeError(f"{op}: stride should be greater than zero, but got {list(s)}")
    if any(v <= 0 for v in d):
        raise RuntimeError(f"{op}: dilation should be greater than zero, but got {list(d)}")
    for ki, pi, di in zip(k, p, d, strict=True):
        if pi < 0 or pi > ((ki - 1) * di + 1) // 2:
            raise RuntimeError(
                f"{op}: pad should be at most half of effective kernel size, but got pad={pi}, "
                f"kernel_size={ki} and dilation={di}"
            )
    out, extra = [], []
    for n, ki, si, pi, di in zip(_spatial(x), k, s, p, d, strict=True):
        span = n + 2 * pi - di * (ki - 1) - 1
        o = (span + (si - 1 if ceil_mode else 0)) // si + 1
        if ceil_mode and (o - 1) * si >= n + pi:  # the last window must start inside
            o -= 1
        out.append(o)
        extra.append(max(0, (o - 1) * si + di * (ki - 1) + 1 - (n + 2 * pi)))
    if any(o < 1 for o in out):
        shape = "x".join(map(str, (x.shape[1], *_spatial(x))))
        got = "x".join(map(str, (x.shape[1], *out)))
        raise RuntimeError(
            f"{op}: Given input size: ({shape}). Calculated output size: ({got}). Output size "
            "is too small"
        )
    return x, unbatched, k, s, p, d, tuple(out), tuple(extra)


def _max_pool_nd(
    op: str,
    nd: int,
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
    return_indices: bool,
) -> Any:
    x, unbatched, k, s, p, d, out, extra = _pool_args(
        op, nd, input, kernel_size, stride, padding, dilation, ceil_mode
    )
    # -inf padding (im2col's is zero): padded first
    xp = _pad_spatial(x, p, [pi + e for pi, e in zip(p, extra, strict=True)], -math.inf)
    win = _windows(xp, k, s, d, (0,) * nd, (0,) * nd, out)  # (N, C, K, *out)
    # PyTorch's element: the first maximum in window order (NaN counts as the maximum).
    # Tensor ops, not the raw array: under func.vmap the array has the batch axes in front.
    first = C.argmax(win, 2)  # (N, C, *out)
    window = Tensor._wrap(np.arange(win.shape[2]).reshape((-1,) + (1,) * nd))
    y = C.sum(_where(C.eq(C.unsqueeze(first, 2), window), win, 0.0), 2)
    if unbatched:
        y = C.squeeze(y, 0)
    if not return_indices:
        return y
    # flat index into the input's spatial axes of each chosen element (first unravelled in
    # C order over the kernel's shape)
    flat: Any = 0
    for axis, (si, pi, di, n) in enumerate(zip(s, p, d, _spatial(x), strict=True)):
        off = (first // math.prod(k[axis + 1 :])) % k[axis]
        grid = Tensor._wrap(np.arange(out[axis]).reshape((-1,) + (1,) * (nd - 1 - axis)))
        flat = flat * n + (grid * si - pi + off * di)
    return y, (C.squeeze(flat, 0) if unbatched else flat)


def max_pool1d(
    input: Tensor,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Maximum over sliding windows of (N, C, L) (padding is -inf); with ``return_indices``
    also the flat positions of the maxima. The gradient goes to the chosen element."""
    return _max_pool_nd(
        "max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices
    )


def max_pool2d(
    input: Tensor,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Maximum over sliding windows of (N, C, H, W); stride defaults to kernel_size; with
    ``return_indices`` also the flat ``h * W + w`` positions of the maxima."""
    return _max_pool_nd(
        "max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices
    )


def _avg_pool_nd(
    op: str,
    nd: int,
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> Tensor:
    x, unbatched, k, s, p, d, out, extra = _pool_args(
        op, nd, input, kernel_size, stride, padding, 1, ceil_mode
    )
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError(f"{op}: divisor must be not zero")
    after = [pi + e for pi, e in zip(p, extra, strict=True)]
    total = C.sum(_windows(x, k, s, d, p, after, out), 2)
    if divisor_override is not None:
        y = total / float(divisor_override)
    else:
        # PyTorch's divisor: the window clipped to the padded input (count_include_pad), or
        # to the input itself
        divisor = np.ones(out, dtype=x.dtype)
        for axis, (n, ki, si, pi) in enumerate(zip(_spatial(x), k, s, p, strict=True)):
            start = np.arange(out[axis]) * si - pi
            end = np.minimum(start + ki, n + pi)
            inside = np.minimum(end, n) - np.maximum(start, 0)
            size = end - start if count_include_pad else inside
            divisor = divisor * size.reshape((-1,) + (1,) * (nd - 1 - axis))
        # (the window sizes are int64: the divisor takes the input's dtype, as PyTorch's)
        y = total / Tensor._wrap(divisor.astype(x.dtype, copy=False))
    return C.squeeze(y, 0) if unbatched else y


def avg_pool1d(
    input: Tensor,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    padding: IntOrSeq = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """Mean over sliding windows of (N, C, L) (zero padding, counted unless
    ``count_include_pad=False``)."""
    return _avg_pool_nd(
        "avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None
    )


def avg_pool2d(
    input: Tensor,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    padding: IntOrSeq = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean over sliding windows of (N, C, H, W); the divisor is the window size (clipped to
    the padded input), the count of real elements (``count_include_pad=False``), or
    ``divisor_override``."""
    return _avg_pool_nd(
        "avg_pool2d",
        2,
        input,
        kernel_size,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    )


def _adaptive_sizes(op: str, nd: int, input: Any, output_size: Any) -> tuple[Tensor, bool, tuple]:
    x = _t(input)
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(
            f"{op}(): Expected {nd + 1}D or {nd + 2}D tensor, but got {list(x.shape)}"
        )
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = C.unsqueeze(x, 0)
    if x.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating point input, got dtype {x.dtype}")
    if any(n == 0 for n in _spatial(x)):
        raise RuntimeError(
            f"{op}(): Expected input to have non-zero size for non-batch dimensions, but input "
            f"has sizes {list(x.shape)}"
        )
    if isinstance(output_size, int | np.integer) or output_size is None:
        output_size = (output_size,) * nd
    sizes = tuple(output_size)
    if len(sizes) != nd:
        raise ValueError(f"{op}: output_size must be {nd} integers, got {output_size!r}")
    sizes = tuple(n if o is None else int(o) for o, n in zip(sizes, _spatial(x), strict=True))
    if any(o < 0 for o in sizes):
        raise RuntimeError(f"{op}: output_size must be non-negative, got {list(sizes)}")
    return x, unbatched, sizes


def _adaptive_bounds(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive windows: ``[floor(i n / m), ceil((i + 1) n / m))``."""
    i = np.arange(m)
    return (i * n) // m, -((-(i + 1) * n) // m)


def _adaptive_avg(x: Tensor, sizes: Sequence[int]) -> Tensor:
    """Separable: the mean over a box is the mean over each axis in turn."""
    for axis, m in enumerate(sizes, start=2):
        n = x.shape[axis]
        if m == n:
            continue
        if m > 0 and n % m == 0:  # equal windows: one reshape and one mean
            shape = (*x.shape[:axis], m, n // m, *x.shape[axis + 1 :])
            x = C.mean(C.reshape(x, shape), axis + 1)
            continue
        if m == 0:
            x = C.getitem(x, (slice(None),) * axis + (slice(0, 0),))
            continue
        starts, ends = _adaptive_bounds(n, m)
        parts = [
            C.mean(C.getitem(x, (slice(None),) * axis + (slice(a, b),)), axis, keepdim=True)
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
        x = C.cat(parts, axis)
    return x


def adaptive_avg_pool1d(input: Tensor, output_size: IntOrSeq) -> Tensor:
    """Mean over ``output_size`` windows ``[floor(i L / m), ceil((i + 1) L / m))``."""
    x, unbatched, sizes = _adaptive_sizes("adaptive_avg_pool1d", 1, input, output_size)
    y = _adaptive_avg(x, sizes)
    return C.squeeze(y, 0) if unbatched else y


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Mean over adaptive windows (``None`` in ``output_size`` keeps that input size)."""
    x, unbatched, sizes = _adaptive_sizes("adaptive_avg_pool2d", 2, input, output_size)
    y = _adaptive_avg(x, sizes)
    return C.squeeze(y, 0) if unbatched else y


def _adaptive_max_nd(op: str, nd: int, input: Any, output_size: Any, return_indices: bool) -> Any:
    x, unbatched, sizes = _adaptive_sizes(op, nd, input, output_size)
    spatial = _spatial(x)
    if any(m == 0 for m in sizes):
        y = Tensor._wrap(np.zeros((*x.shape[:2], *sizes), dtype=x.dtype))
        y = y + C.sum(x) * 0.0  # keeps the graph (a zero gradient) for an empty output
        idx = Tensor._wrap(np.zeros(y.shape, dtype=np.int64))
    else:
        # gather each axis's windows, padded to the longest by repeating the window's last
        # element (a repeat cannot change the maximum nor come before the first one)
        positions = []
        g = x
        for axis, (n, m) in enumerate(zip(spatial, sizes, strict=True)):
            starts, ends = _adaptive_bounds(n, m)
            width = int((ends - starts).max())
            pos = np.minimum(starts[:, None] + np.arange(width), ends[:, None] - 1)
            positions.append(pos)
            # axis 2 + 2 * axis: the earlier axes each became (m, width)
            g = C.getitem(g, (slice(None),) * (2 + 2 * axis) + (pos,))
        # (N, C, m1, w1, m2, w2, ...) -> (N, C, m1, m2, ..., w1 * w2 * ...)
        order = (0, 1, *range(2, 2 + 2 * nd, 2), *range(3, 3 + 2 * nd, 2))
        g = C.permute(g, *order)
        g = C.reshape(g, (*x.shape[:2], *sizes, -1))
        # tensor ops for the values (func.vmap sees the logical axes); the indices below
        # need the plain array
        first_t = C.argmax(g, -1)
        pick = C.eq(C.unsqueeze(first_t, -1), Tensor._wrap(np.arange(g.shape[-1])))
        y = C.sum(_where(pick, g, 0.0), -1)
        if not return_indices:
            return C.squeeze(y, 0) if unbatched else y
        if isinstance(first_t, BatchedTensor):
            raise NotImplementedError(f"{op}: return_indices=True is not supported under func.vmap")
        first = first_t._data
        # flat input positions of the chosen elements
        widths = [pos.shape[1] for pos in positions]
        offsets = np.unravel_index(first, widths)
        flat = np.zeros(first.shape, dtype=np.int64)
        for axis, (pos, off, n) in enumerate(zip(positions, offsets, spatial, strict=True)):
            rows = np.arange(sizes[axis]).reshape((-1,) + (1,) * (nd - 1 - axis))
            flat = flat * n + pos[rows, off]
        idx = Tensor._wrap(flat)
    if unbatched:
        y, idx = C.squeeze(y, 0), Tensor._wrap(idx._data[0])
    return (y, idx) if return_indices else y


def adaptive_max_pool1d(input: Tensor, output_size: IntOrSeq, return_indices: bool = False) -> Any:
    """Maximum over adaptive windows of (N, C, L); the gradient goes to the first maximum."""
    return _adaptive_max_nd("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Maximum over adaptive windows of (N, C, H, W); the gradient goes to the first
    maximum in row-major window order (PyTorch's element)."""
    return _adaptive_max_nd("adaptive_max_pool2d", 2, input, output_size, return_indices)


# -- interpolation ---------------------------------------------------------------------------
_INTERP_DIMS = {"linear": 1, "bilinear": 2, "trilinear": 3, "bicubic": 2}


def _along(x: Tensor, axis: int, index: np.ndarray) -> Tensor:
    return C.getitem(x, (slice(None),) * axis + (index,))


def _weights(lam: np.ndarray, axis: int, ndim: int, dtype: np.dtype) -> Tensor:
    shape = (-1,) + (1,) * (ndim - axis - 1)
    return Tensor._wrap(lam.astype(dtype).reshape(shape))


def interpolate(
    input: Tensor,
    size: IntOrSeq | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resample the spatial axes of (N, C, *spatial) to ``size`` (or ``floor(n *
    scale_factor)``): modes 'nearest', 'nearest-exact', 'linear' (3-d), 'bilinear' and
    'bicubic' (4-d), 'trilinear' (5-d), 'area' (adaptive average pooling). Source
    coordinates as PyTorch: ``align_corners`` maps the corner pixels' centres onto each other,
    otherwise ``src = (dst + 0.5) * scale - 0.5`` (clamped at 0 but for bicubic),
    ``scale = 1 / scale_factor`` when given
    (and not recomputed), else ``n_in / n_out``. Linear modes are separable, applied one axis
    at a time."""
    x = _t(input)
    nd = x.ndim - 2
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError(
                "align_corners option can only be set with the interpolating modes: "
                "linear | bilinear | bicubic | trilinear"
            )
    elif mode in _INTERP_DIMS:
        if align_corners is None:
            align_corners = False
    else:
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the "
            f"modes: nearest | linear | bilinear | bicubic | trilinear | area | nearest-exact "
            f"(got {mode})"
        )
    if nd < 1 or nd > 3:
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the "
            f"modes: nearest | linear | bilinear | bicubic | trilinear | area | nearest-exact "
            f"(got {mode})"
        )
    if mode in _INTERP_DIMS and _INTERP_DIMS[mode] != nd:
        raise NotImplementedError(
            f"Got {x.ndim}D input, but {mode} mode needs {_INTERP_DIMS[mode] + 2}D input"
        )
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported by matgrad")
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    spatial = _spatial(x)
    scales: tuple[float, ...] | None = None
    if size is not None:
        if isinstance(size, int | np.integer):
            out = (int(size),) * nd
        else:
            out = tuple(int(v) for v in size)
            if len(out) != nd:
                raise ValueError(
                    f"Input and output must have the same number of spatial dimensions, but got "
                    f"input with spatial dimensions of {list(spatial)} and output size of "
                    f"{list(out)}. Please provide input tensor in (N, C, d1, d2, ...,dK) format "
                    "and output size in (o1, o2, ...,oK) format."
                )
    elif scale_factor is not None:
        if isinstance(scale_factor, int | float):
            scales = (float(scale_factor),) * nd
        else:
            scales = tuple(float(v) for v in scale_factor)
            if len(scales) != nd:
                raise ValueError(
                    f"Input and scale_factor must have the same number of spatial dimensions, "
                    f"but got input with spatial dimensions of {list(spatial)} and scale_factor "
                    f"of shape {list(scales)}. Please provide input tensor in (N, C, d1, d2, "
                    "...,dK) format and scale_factor in (s1, s2, ...,sK) format."
                )
        out = tuple(math.floor(n * f) for n, f in zip(spatial, scales, strict=True))
        if recompute_scale_factor:
            scales = None
    else:
        raise ValueError("either size or scale_factor should be defined")
    if any(o <= 0 for o in out) or any(n <= 0 for n in spatial):
        raise RuntimeError(
            f"interpolate: Input and output sizes should be greater than 0, but got input "
            f"({', '.join(map(str, spatial))}) and output ({', '.join(map(str, out))})"
        )
    if x.dtype.kind != "f":
        raise RuntimeError(f"interpolate: expected a floating point input, got dtype {x.dtype}")
    if mode == "area":
        return _adaptive_avg(x, out)
    for i, (n, m) in enumerate(zip(spatial, out, strict=True)):
        axis = 2 + i
        factor = None if scales is None else scales[i]
        dst = np.arange(m)
        if mode in ("nearest", "nearest-exact"):
            if m == n:
                continue
            # PyTorch computes these source indices in float32
            scale = np.float32(1.0 / factor if factor is not None and factor > 0 else n / m)
            shift = np.float32(0.5 if mode == "nearest-exact" else 0.0)
            src = np.floor((dst.astype(np.float32) + shift) * scale).astype(np.int64)
            if mode == "nearest" and m == 2 * n:
                src = dst >> 1
            x = _along(x, axis, np.minimum(src, n - 1))
            continue
        dt = x.dtype
        if mode == "bicubic":
            x = _cubic_along(x, axis, n, m, factor, bool(align_corners))
            continue
        if m == n:  # PyTorch's linear kernels copy here, whatever the scale factor
            continue
        if align_corners:
            scale = (n - 1) / (m - 1) if m > 1 else 0.0
            real = dst.astype(dt) * dt.type(scale)
        else:
            scale = 1.0 / factor if factor is not None and factor > 0 else n / m
            real = np.maximum(dt.type(scale) * (dst.astype(dt) + dt.type(0.5)) - dt.type(0.5), 0)
        i0 = np.minimum(real.astype(np.int64), n - 1)
        lam = np.clip(real - i0, 0, 1)
        i1 = np.minimum(i0 + 1, n - 1)
        w1 = _weights(lam, axis, x.ndim, dt)
        w0 = _weights(1 - lam, axis, x.ndim, dt)
        x = _along(x, axis, i0) * w0 + _along(x, axis, i1) * w1
    return x


def _cubic_along(
    x: Tensor, axis: int, n: int, m: int, factor: float | None, align_corners: bool
) -> Tensor:
    """PyTorch's bicubic resampling along one axis: Keys' cubic convolution (A = -0.75)
    over the 4 neighbours ``floor(src) - 1 .. floor(src) + 2`` (clamped to the input), with
    ``src`` not clamped at 0 (unlike the linear modes)."""
    dt = x.dtype
    dst = np.arange(m).astype(dt)
    if align_corners:
        real = dst * dt.type((n - 1) / (m - 1) if m > 1 else 0.0)
    else:
        scale = 1.0 / factor if factor is not None and factor > 0 else n / m
        real = dt.type(scale) * (dst + dt.type(0.5)) - dt.type(0.5)
    base = np.floor(real)
    t = real - base
    a = -0.75

    def near(v: np.ndarray) -> np.ndarray:  # |v| <= 1
        return ((a + 2) * v - (a + 3)) * v * v + 1

    def far(v: np.ndarray) -> np.ndarray:  # 1 < |v| < 2
        return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a

    coeffs = (far(t + 1), near(t), near(1 - t), far(2 - t))
    out = None
    for tap, w in enumerate(coeffs):
        index = np.clip(base.astype(np.int64) - 1 + tap, 0, n - 1)
        term = _along(x, axis, index) * _weights(w, axis, x.ndim, dt)
        out = term if out is None else out + term
    return out


def upsample(
    input: Tensor,
    size: IntOrSeq | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
) -> Tensor:
    """Deprecated alias of :func:`interpolate`."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(
    input: Tensor, size: IntOrSeq | None = None, scale_factor: float | None = None
) -> Tensor:
    """``interpolate(input, size, scale_factor, mode='nearest')``."""
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(
    input: Tensor, size: IntOrSeq | None = None, scale_factor: float | None = None
) -> Tensor:
    """``interpolate(input, size, scale_factor, mode='bilinear', align_corners=True)``."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# -- normalization ---------------------------------------------------------------------------
def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize (N, C, *) over each group of ``C / num_groups`` channels and the spatial
    axes (biased variance), then scale and shift per channel."""
    x = _t(input)
    if x.ndim < 2:
        raise RuntimeError(
            f"group_norm: Expected at least 2 dimensions for input tensor but received {x.ndim}"
        )
    n, c = x.shape[0], x.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise RuntimeError(
            f"Expected number of channels in input to be divisible by num_groups, but got "
            f"input of shape {list(x.shape)} and num_groups={num_groups}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise RuntimeError(
                f"group_norm: Expected {name} to be a vector of size equal to the number of "
                f"channels in input, but got {name} of shape {list(t.shape)} and input of shape "
                f"{list(x.shape)}"
            )
    per_group = (c // num_groups) * math.prod(x.shape[2:])
    g = C.reshape(x, (n, num_groups, per_group))
    mu = C.mean(g, -1, keepdim=True)
    centered = g - mu
    var = C.mean(centered * centered, -1, keepdim=True)
    y = C.reshape(centered / _sqrt(var + eps), tuple(x.shape))
    shape = (c,) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * C.reshape(_t(weight), shape)
    if bias is not None:
        y = y + C.reshape(_t(bias), shape)
    return y


# -- non-constant padding (called by nn.functional.pad) --------------------------------------
def _pad_nonconstant(input: Any, pad: Sequence[int], mode: str) -> Tensor:
    """'reflect', 'replicate' or 'circular' padding of the last ``len(pad) // 2`` axes, from
    slices, flips and concatenations; negative amounts crop, with PyTorch's rules for each
    mode (see the helpers)."""
    x = _t(input)
    k = len(pad) // 2
    if k not in (1, 2, 3) or x.ndim not in (k + 1, k + 2):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {x.ndim}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)"
        )
    amounts = [int(p) for p in pad]
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(
            f"Unrecognised padding mode {mode!r} (expected 'constant', 'reflect', "
            "'replicate' or 'circular')"
        )
    if mode == "replicate":
        return _pad_replicate(x, amounts)
    if mode == "reflect":
        return _pad_reflect(x, amounts)
    # circular: crop first, then wrap around the cropped tensor (PyTorch's order)
    crops = [min(p, 0) for p in amounts]
    if any(crops):
        x = C.pad(x, crops, "constant", 0.0)
    for j in range(k):
        axis = x.ndim - 1 - j
        before, after = max(amounts[2 * j], 0), max(amounts[2 * j + 1], 0)
        if before == 0 and after == 0:
            continue
        n = x.shape[axis]
        if before > n or after > n:
            raise RuntimeError("Padding value causes wrapping around more than once.")
        lead = (slice(None),) * axis
        parts = [x]
        if before:
            parts.insert(0, C.getitem(x, (*lead, slice(n - before, n))))
        if after:
            parts.append(C.getitem(x, (*lead, slice(0, after))))
        x = C.cat(parts, axis)
    return x


def _pad_reflect(x: Tensor, amounts: list[int]) -> Tensor:
    """Reflect padding by PyTorch's rule: output ``o`` of an axis is input ``i = o - before``
    reflected at the ends of the *original* axis (``-i`` below 0, ``2 (n - 1) - i`` above
    ``n - 1``), so a crop at one end does not move the mirror at the other."""
    for j in range(len(amounts) // 2):
        before, after = amounts[2 * j], amounts[2 * j + 1]
        if before == 0 and after == 0:
            continue
        axis = x.ndim - 1 - j
        n = x.shape[axis]
        if before >= n or after >= n:
            raise RuntimeError(
                f"Argument #4: Padding size should be less than the corresponding input "
                f"dimension, but got: padding ({before}, {after}) at dimension {axis} of "
                f"input {list(x.shape)}"
            )
        lo, hi = -before, n + after  # the source positions, before reflecting
        if hi <= lo:
            raise RuntimeError(
                f"pad: reflect padding ({before}, {after}) of dimension {axis} of input "
                f"{list(x.shape)} gives an invalid size {hi - lo}"
            )
        lead = (slice(None),) * axis

        def take(start: int, stop: int, lead: tuple = lead, x: Tensor = x) -> Tensor:
            return C.getitem(x, (*lead, slice(start, stop)))

        parts = []
        if lo < 0:  # positions lo .. min(hi, 0) - 1 mirror to -lo .. -min(hi, 0) + 1
            parts.append(C.flip(take(1 - min(hi, 0), 1 - lo), axis))
        if max(lo, 0) < min(hi, n):
            parts.append(take(max(lo, 0), min(hi, n)))
        if hi > n:  # positions max(lo, n) .. hi - 1 mirror to 2(n-1) - i
            top = 2 * (n - 1)
            parts.append(C.flip(take(top - hi + 1, top - max(lo, n) + 1), axis))
        x = parts[0] if len(parts) == 1 else C.cat(parts, axis)
    return x


def _pad_replicate(x: Tensor, amounts: list[int]) -> Tensor:
    """Replicate padding: output ``o`` of an axis is input ``clip(o - before, 0, n - 1)``
    (PyTorch's rule, which also covers negative amounts, even ones cropping everything)."""
    for j in range(len(amounts) // 2):
        before, after = amounts[2 * j], amounts[2 * j + 1]
        if before == 0 and after == 0:
            continue
        axis = x.ndim - 1 - j
        n = x.shape[axis]
        m = n + before + after
        if n == 0 or m < 0:
            raise RuntimeError(
                f"pad: replicate padding ({before}, {after}) of dimension {axis} of input "
                f"{list(x.shape)} gives an invalid size {m}"
            )
        lead = (slice(None),) * axis
        start, stop = max(-before, 0), min(n, n + after)
        shape = list(x.shape)
        if start >= stop:  # everything cropped: each output is one edge element
            edge = min(max(-before, 0), n - 1)
            shape[axis] = m
            x = C.expand(C.getitem(x, (*lead, slice(edge, edge + 1))), tuple(shape))
            continue
        parts = [C.getitem(x, (*lead, slice(start, stop)))]
        if before > 0:
            shape[axis] = before
            parts.insert(0, C.expand(C.getitem(x, (*lead, slice(0, 1))), tuple(shape)))
        if after > 0:
            shape[axis] = after
            parts.append(C.expand(C.getitem(x, (*lead, slice(n - 1, n))), tuple(shape)))
        x = parts[0] if len(parts) == 1 else C.cat(parts, axis)
    return x


# -- 3-d convolution and pooling (the n-d code paths above) ----------------------------------
def conv3d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq | str = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
) -> Tensor:
    """3-d cross-correlation of (N, C_in, D, H, W) with a weight (C_out, C_in / groups, kd,
    kh, kw), as torch's conv3d (the same im2col path as conv1d/conv2d)."""
    return _conv_nd("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose3d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    output_padding: IntOrSeq = 0,
    groups: int = 1,
    dilation: IntOrSeq = 1,
) -> Tensor:
    """The adjoint of conv3d; weight (C_in, C_out / groups, kd, kh, kw)."""
    return _conv_transpose_nd(
        "conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding, groups,
        dilation,
    )  # fmt: skip


def max_pool3d(
    input: Tensor,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Maximum over sliding windows of (N, C, D, H, W); with ``return_indices`` also the flat
    ``(d * H + h) * W + w`` positions of the maxima."""
    return _max_pool_nd(
        "max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices
    )


def avg_pool3d(
    input: Tensor,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    padding: IntOrSeq = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean over sliding windows of (N, C, D, H, W) (divisor as :func:`avg_pool2d`)."""
    return _avg_pool_nd(
        "avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
        divisor_override,
    )  # fmt: skip


def adaptive_avg_pool3d(input: Tensor, output_size: Any) -> Tensor:
    """Mean over adaptive windows of (N, C, D, H, W)."""
    x, unbatched, sizes = _adaptive_sizes("adaptive_avg_pool3d", 3, input, output_size)
    y = _adaptive_avg(x, sizes)
    return C.squeeze(y, 0) if unbatched else y


def adaptive_max_pool3d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Maximum over adaptive windows of (N, C, D, H, W) (the first maximum's gradient)."""
    return _adaptive_max_nd("adaptive_max_pool3d", 3, input, output_size, return_indices)


def _lp_pool_nd(
    op: str, nd: int, input: Any, norm_type: float, kernel_size: Any, stride: Any, ceil_mode: bool
) -> Tensor:
    """PyTorch's power-average pooling: ``(sum over the window of x^p)^(1/p)``, from the
    average pool of ``x^p`` times the window size (negative sums clamped to 0 first, as
    torch's ``sign(s) * relu(|s|)``)."""
    x = _t(input)
    k = _ntuple(op, "kernel_size", kernel_size, nd)
    powered = _F["pow"](x, norm_type) if isinstance(norm_type, int | float) else x ** _t(norm_type)
    out = _avg_pool_nd(op, nd, powered, k, stride, 0, ceil_mode, True, None)
    out = _F["sign"](out) * _F["relu"](_F["abs"](out))
    return _F["pow"](out * float(math.prod(k)), 1.0 / norm_type)


def lp_pool1d(
    input: Tensor,
    norm_type: float,
    kernel_size: int,
    stride: IntOrSeq | None = None,
    ceil_mode: bool = False,
) -> Tensor:
    """Power-average pooling over (N, C, L): ``(sum_window x^p)^(1/p)``."""
    return _lp_pool_nd("lp_pool1d", 1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(
    input: Tensor,
    norm_type: float,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    ceil_mode: bool = False,
) -> Tensor:
    """Power-average pooling over (N, C, H, W): ``(sum_window x^p)^(1/p)``."""
    return _lp_pool_nd("lp_pool2d", 2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(
    input: Tensor,
    norm_type: float,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    ceil_mode: bool = False,
) -> Tensor:
    """Power-average pooling over (N, C, D, H, W): ``(sum_window x^p)^(1/p)``."""
    return _lp_pool_nd("lp_pool3d", 3, input, norm_type, kernel_size, stride, ceil_mode)


# -- max unpooling ---------------------------------------------------------------------------
def _index_data(op: str, indices: Any) -> np.ndarray:
    if isinstance(indices, BatchedTensor):
        raise NotImplementedError(f"{op}: batched indices are not supported under func.vmap")
    data = indices._data if isinstance(indices, Tensor) else np.asarray(indices)
    if data.dtype != np.int64:
        raise RuntimeError(f"{op}: expected indices of dtype int64, got {data.dtype}")
    return data


def _max_unpool_nd(
    op: str,
    nd: int,
    input: Any,
    indices: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    output_size: Any,
) -> Tensor:
    """Scatter each value to its flat position ``indices`` in a zero output (the inverse of
    max pooling with ``return_indices``); the gradient gathers at ``indices``."""
    x = _t(input)
    if isinstance(x, BatchedTensor):
        raise NotImplementedError(f"{op} is not supported under func.vmap")
    idx = _index_data(op, indices)
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(
            f"{op}: Expected {nd + 1}D or {nd + 2}D (batch mode) tensor for input, got input of "
            f"size {list(x.shape)}"
        )
    if tuple(idx.shape) != tuple(x.shape):
        raise RuntimeError(
            f"{op}: Expected shape of indices to be same as that of the input tensor "
            f"({list(x.shape)}) but got indices tensor with shape: {list(idx.shape)}"
        )
    if x.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating point input, got dtype {x.dtype}")
    k = _ntuple(op, "kernel_size", kernel_size, nd)
    s = k if stride is None else _ntuple(op, "stride", stride, nd)
    p = _ntuple(op, "padding", padding, nd)
    spatial = tuple(x.shape[-nd:])
    default = [(n - 1) * si - 2 * pi + ki for n, si, pi, ki in zip(spatial, s, p, k, strict=True)]
    if output_size is None:
        out = tuple(default)
    else:
        out = tuple(int(v) for v in output_size)
        if len(out) == nd + 2:
            out = out[2:]
        if len(out) != nd:
            raise ValueError(
                f"output_size should be a sequence containing {nd} or {nd + 2} elements, but "
                f"it has a length of '{len(out)}'"
            )
        for axis, (o, dflt, si) in enumerate(zip(out, default, s, strict=True)):
            if not dflt - si < o < dflt + si:
                raise ValueError(
                    f'invalid output_size "{list(out)}" (dim {axis} must be between '
                    f"{dflt - si} and {dflt + si})"
                )
    batched = x if x.ndim == nd + 2 else C.unsqueeze(x, 0)
    n, c = batched.shape[0], batched.shape[1]
    volume = math.prod(out)
    flat_idx = idx.reshape(n, c, math.prod(spatial))
    if flat_idx.size and (flat_idx.min() < 0 or flat_idx.max() >= volume):
        bad = flat_idx[(flat_idx < 0) | (flat_idx >= volume)].flat[0]
        raise RuntimeError(
            f"{op}: Found an invalid max index: {bad} (output volumes are of size "
            f"{'x'.join(map(str, out))})"
        )
    zeros = Tensor._wrap(np.zeros((n, c, volume), dtype=x.dtype))
    where_to = Tensor._wrap(flat_idx)
    values = C.reshape(batched, (n, c, math.prod(spatial)))
    y = C.scatter(zeros, 2, where_to, values)
    ordered = np.sort(flat_idx, -1)
    if (ordered[..., 1:] == ordered[..., :-1]).any():
        # a repeated index: the value is one write's (the last, as torch's CPU loop), but
        # PyTorch's gradient gathers the output's gradient for every input, the overwritten
        # ones too; that is the adjoint of scatter_add, so the graph carries scatter_add plus
        # a constant correction to the written values
        added = C.scatter_add(zeros, 2, where_to, values)
        y = added + (y - added).detach()
    y = C.reshape(y, (n, c, *out))
    return y if x.ndim == nd + 2 else C.squeeze(y, 0)


def max_unpool1d(
    input: Tensor,
    indices: Tensor,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    padding: IntOrSeq = 0,
    output_size: Sequence[int] | None = None,
) -> Tensor:
    """Partial inverse of max_pool1d: values at ``indices`` of a zero (N, C, L_out)."""
    return _max_unpool_nd(
        "max_unpool1d", 1, input, indices, kernel_size, stride, padding, output_size
    )


def max_unpool2d(
    input: Tensor,
    indices: Tensor,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    padding: IntOrSeq = 0,
    output_size: Sequence[int] | None = None,
) -> Tensor:
    """Partial inverse of max_pool2d: values at the flat ``indices`` of a zero (N, C, H, W)."""
    return _max_unpool_nd(
        "max_unpool2d", 2, input, indices, kernel_size, stride, padding, output_size
    )


def max_unpool3d(
    input: Tensor,
    indices: Tensor,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    padding: IntOrSeq = 0,
    output_size: Sequence[int] | None = None,
) -> Tensor:
    """Partial inverse of max_pool3d: values at the flat ``indices`` of a zero (N, C, D, H,
    W)."""
    return _max_unpool_nd(
        "max_unpool3d", 3, input, indices, kernel_size, stride, padding, output_size
    )


# -- fractional max pooling ------------------------------------------------------------------
def _fractional_starts(u: np.ndarray, n: int, m: int, k: int) -> np.ndarray:
    """PyTorch's pseudo-random window starts (Graham, "Fractional Max-Pooling", 2014):
    ``int((i + u) * alpha) - int(u * alpha)`` with ``alpha = (n - k) / (m - 1)``, the last
    window ending at the input's end. ``u``: (N, C) samples in [0, 1); result (N, C, m)."""
    starts = np.empty((*u.shape, m), dtype=np.int64)
    if m > 1:
        alpha = u.dtype.type(n - k) / u.dtype.type(m - 1)
        i = np.arange(m - 1, dtype=u.dtype)
        starts[..., :-1] = ((i + u[..., None]) * alpha).astype(np.int64) - (
            (u * alpha).astype(np.int64)[..., None]
        )
    starts[..., -1] = n - k
    return starts


def _fractional_max_pool_nd(
    op: str,
    nd: int,
    input: Any,
    kernel_size: Any,
    output_size: Any,
    output_ratio: Any,
    return_indices: bool,
    random_samples: Any,
) -> Any:
    x = _t(input)
    if isinstance(x, BatchedTensor):  # the chosen indices are read from a plain array
        raise NotImplementedError(f"{op} is not supported under func.vmap")
    if x.ndim not in (nd + 1, nd + 2) or 0 in x.shape[-nd - 1 :]:
        raise RuntimeError(
            f"{op}(): Expected {nd + 1}D or {nd + 2}D tensor with non-zero non-batch sizes, "
            f"but got: {list(x.shape)}"
        )
    if x.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating point input, got dtype {x.dtype}")
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = C.unsqueeze(x, 0)
    n, c, spatial = x.shape[0], x.shape[1], _spatial(x)
    k = _ntuple(op, "kernel_size", kernel_size, nd)
    if output_size is None:
        if output_ratio is None:
            raise ValueError(f"{op} requires specifying either an output_size or an output_ratio")
        ratio = (
            (float(output_ratio),) * nd
            if isinstance(output_ratio, int | float)
            else tuple(float(r) for r in output_ratio)
        )
        if len(ratio) == 1:
            ratio *= nd
        if len(ratio) != nd or not all(0 < r < 1 for r in ratio):
            raise ValueError(f"{op}: output_ratio must be {nd} numbers in (0, 1), got {ratio}")
        out = tuple(int(s * r) for s, r in zip(spatial, ratio, strict=True))
    else:
        out = _ntuple(op, "output_size", output_size, nd)
    for axis, (si, ki, oi) in enumerate(zip(spatial, k, out, strict=True)):
        if ki <= 0 or oi <= 0:
            raise RuntimeError(
                f"{op}(): kernel_size and output_size must be positive, got kernel_size="
                f"{list(k)} and output_size={list(out)}"
            )
        if oi + ki - 1 > si:
            raise RuntimeError(
                f"{op}(): pool size {ki} too large relative to input size {si} of spatial "
                f"dimension {axis} for output size {oi}"
            )
    if random_samples is None:
        samples = rand(n, c, nd, dtype=x.dtype)._data
    else:
        samples = _t(random_samples)._data
        if samples.shape != (n, c, nd):
            raise RuntimeError(
                f"{op}(): expected _random_samples of shape {[n, c, nd]}, got {list(samples.shape)}"
            )
    # the samples' order of axes is PyTorch's: (W, H) in 2-d, (T, H, W) in 3-d
    order = (1, 0) if nd == 2 else tuple(range(nd))
    kk = math.prod(k)
    offsets = np.unravel_index(np.arange(kk), k)
    flat = np.zeros((n, c, *out, kk), dtype=np.int64)
    for axis in range(nd):
        starts = _fractional_starts(samples[:, :, order[axis]], spatial[axis], out[axis], k[axis])
        shape = (n, c) + tuple(out[axis] if a == axis else 1 for a in range(nd)) + (1,)
        flat = flat * spatial[axis] + (starts.reshape(shape) + offsets[axis])
    g = C.take_along_dim(
        C.reshape(x, (n, c, math.prod(spatial))),
        Tensor._wrap(flat.reshape(n, c, math.prod(out) * kk)),
        2,
    )
    g = C.reshape(g, (n, c, *out, kk))
    # the first maximum in window order (row-major over the kernel), as PyTorch's loop
    first = C.argmax(g, -1)
    pick = C.eq(C.unsqueeze(first, -1), Tensor._wrap(np.arange(kk)))
    y = C.sum(_where(pick, g, 0.0), -1)
    idx = None
    if return_indices:
        chosen = np.take_along_axis(flat, first._data[..., None], -1)[..., 0]
        idx = Tensor._wrap(chosen[0] if unbatched else chosen)
    if unbatched:
        y = C.squeeze(y, 0)
    return (y, idx) if return_indices else y


def fractional_max_pool2d(
    input: Tensor,
    kernel_size: IntOrSeq,
    output_size: IntOrSeq | None = None,
    output_ratio: float | Sequence[float] | None = None,
    return_indices: bool = False,
    _random_samples: Tensor | None = None,
) -> Any:
    """Max pooling over pseudo-random windows of (N, C, H, W) (Graham 2014): the window
    starts come from ``_random_samples`` (N, C, 2) in [0, 1) (drawn from matgrad's generator
    when None, so the values differ from torch's draw unless the samples are passed)."""
    return _fractional_max_pool_nd(
        "fractional_max_pool2d", 2, input, kernel_size, output_size, output_ratio,
        return_indices, _random_samples,
    )  # fmt: skip


def fractional_max_pool3d(
    input: Tensor,
    kernel_size: IntOrSeq,
    output_size: IntOrSeq | None = None,
    output_ratio: float | Sequence[float] | None = None,
    return_indices: bool = False,
    _random_samples: Tensor | None = None,
) -> Any:
    """Fractional max pooling of (N, C, D, H, W); ``_random_samples`` (N, C, 3)."""
    return _fractional_max_pool_nd(
        "fractional_max_pool3d", 3, input, kernel_size, output_size, output_ratio,
        return_indices, _random_samples,
    )  # fmt: skip


# -- pixel and channel shuffles --------------------------------------------------------------
def _check_factor(op: str, name: str, factor: Any, x: Tensor) -> int:
    if x.ndim < 3:
        raise RuntimeError(
            f"{op} expects input to have at least 3 dimensions, but got input with {x.ndim} "
            "dimension(s)"
        )
    if not isinstance(factor, int | np.integer) or factor <= 0:
        raise RuntimeError(f"{op} expects a positive {name}, but got {factor}")
    return int(factor)


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C r^2, H, W) -> (*, C, H r, W r): ``out[c, h r + i, w r + j] = in[c r^2 + i r + j,
    h, w]`` (Shi et al. 2016), as a reshape and a permutation."""
    x = _t(input)
    r = _check_factor("pixel_shuffle", "upscale_factor", upscale_factor, x)
    *lead, ch, h, w = x.shape
    if ch % (r * r):
        raise RuntimeError(
            f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the "
            f"square of upscale_factor, but input.size(-3)={ch} is not divisible by {r * r}"
        )
    b = len(lead)
    y = C.reshape(x, (*lead, ch // (r * r), r, r, h, w))
    y = C.permute(y, *range(b), b, b + 3, b + 1, b + 4, b + 2)
    return C.reshape(y, (*lead, ch // (r * r), h * r, w * r))


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of :func:`pixel_shuffle`."""
    x = _t(input)
    r = _check_factor("pixel_unshuffle", "downscale_factor", downscale_factor, x)
    *lead, ch, h, w = x.shape
    if h % r or w % r:
        which, size = ("height", h) if h % r else ("width", w)
        raise RuntimeError(
            f"pixel_unshuffle expects {which} to be divisible by downscale_factor, but "
            f"input.size({-2 if which == 'height' else -1})={size} is not divisible by {r}"
        )
    b = len(lead)
    y = C.reshape(x, (*lead, ch, h // r, r, w // r, r))
    y = C.permute(y, *range(b), b, b + 2, b + 4, b + 1, b + 3)
    return C.reshape(y, (*lead, ch * r * r, h // r, w // r))


def channel_shuffle(input: Tensor, groups: int) -> Tensor:
    """(N, C, *) with the channels regrouped: channel ``g * (C / groups) + j`` moves to
    ``j * groups + g`` (ShuffleNet, Zhang et al. 2017)."""
    x = _t(input)
    if x.ndim < 3:
        raise RuntimeError(
            f"channel_shuffle expects input to have at least 3 dimensions, but got input "
            f"with {x.ndim} dimension(s)"
        )
    if not isinstance(groups, int | np.integer) or groups <= 0:
        raise RuntimeError(
            f"Number of groups to divide channels in must be positive. Value of groups:{groups}"
        )
    n, ch, *rest = x.shape
    if ch % groups:
        raise RuntimeError(
            f"Number of channels must be divisible by groups. Got {ch} channels and {groups} "
            "groups."
        )
    y = C.reshape(x, (n, groups, ch // groups, *rest))
    return C.reshape(C.transpose(y, 1, 2), tuple(x.shape))


# -- grid sampling ---------------------------------------------------------------------------
def _grid_padding(coord: Tensor, size: int, padding_mode: str, align_corners: bool) -> Tensor:
    """Source coordinates with 'border' (clamped into the input) or 'reflection' (mirrored at
    the borders, then clamped) applied, as PyTorch's grid sampler; 'zeros' leaves them."""
    if padding_mode == "zeros":
        return coord
    if padding_mode == "reflection":
        low, high = (0, 2 * (size - 1)) if align_corners else (-1, 2 * size - 1)
        if low == high:
            return coord * 0.0
        mn, span = low / 2, (high - low) / 2
        v = _F["abs"](coord - mn)
        extra = _F["fmod"](v, span)
        flips = np.floor(v._data / span)
        coord = _where(Tensor._wrap(flips % 2 == 0), extra + mn, (span - extra) + mn)
    return C.clamp(coord, 0, size - 1)


def _grid_gather(
    xf: Tensor, spatial: Sequence[int], index: Sequence[np.ndarray], out: Sequence[int]
) -> Tensor:
    """``xf`` (N, C, prod(spatial)) at the integer positions ``index`` (one (N, *out) array
    per spatial axis); positions outside the input read 0."""
    n, c = xf.shape[0], xf.shape[1]
    valid = np.ones(index[0].shape, dtype=bool)
    flat = np.zeros(index[0].shape, dtype=np.int64)
    for i, size in zip(index, spatial, strict=True):
        valid &= (i >= 0) & (i < size)
        flat = flat * size + np.clip(i, 0, size - 1)
    flat = np.broadcast_to(flat.reshape(n, 1, -1), (n, c, flat[0].size))
    vals = C.reshape(C.take_along_dim(xf, Tensor._wrap(flat), 2), (n, c, *out))
    if valid.all():
        return vals
    return _where(Tensor._wrap(valid.reshape(n, 1, *out)), vals, 0.0)


def _cubic_coeffs(t: Tensor) -> list[Tensor]:
    """Keys' cubic convolution weights (A = -0.75) of the taps -1, 0, 1, 2 at offset t."""
    a = -0.75

    def near(v: Tensor) -> Tensor:
        return ((v * (a + 2) - (a + 3)) * v) * v + 1

    def far(v: Tensor) -> Tensor:
        return ((v * a - 5 * a) * v + 8 * a) * v - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _reflect_int(i: np.ndarray, size: int, align_corners: bool) -> np.ndarray:
    low, high = (0, 2 * (size - 1)) if align_corners else (-1, 2 * size - 1)
    if low == high:
        return np.zeros_like(i)
    mn, span = low / 2, (high - low) / 2
    v = np.abs(i - mn)
    extra, flips = np.fmod(v, span), np.floor(v / span)
    return np.where(flips % 2 == 0, extra + mn, span - extra + mn)


def grid_sample(
    input: Tensor,
    grid: Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool | None = None,
) -> Tensor:
    """Sample (N, C, H, W) (or (N, C, D, H, W)) at the normalised positions ``grid`` (N, H_out,
    W_out, 2) (x then y, in [-1, 1]; or (N, D_out, H_out, W_out, 3)), as torch's grid_sample:
    ``align_corners`` maps -1 and 1 to the corner pixels' centres (else their outer edges);
    modes 'bilinear' (trilinear in 3-d), 'nearest' (round half to even) and 'bicubic' (2-d);
    padding 'zeros', 'border' or 'reflection'. Differentiable in input and grid."""
    x, g = _t(input), _t(grid)
    if isinstance(x, BatchedTensor) or isinstance(g, BatchedTensor):
        # the sampling positions are read from the grid's array, whose axes vmap reorders
        raise NotImplementedError("grid_sample is not supported under func.vmap")
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(
            f"nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or "
            f"'bicubic', but got: '{mode}'"
        )
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(
            f"nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or "
            f"'reflection', but got: '{padding_mode}'"
        )
    if x.ndim not in (4, 5) or g.ndim != x.ndim:
        raise RuntimeError(
            f"grid_sampler(): expected 4D or 5D input and grid with same number of dimensions, "
            f"but got input with sizes {list(x.shape)} and grid with sizes {list(g.shape)}"
        )
    nd = x.ndim - 2
    if g.shape[0] != x.shape[0] or g.shape[-1] != nd:
        raise RuntimeError(
            f"grid_sampler(): expected grid to have size {nd} in last dimension and the "
            f"input's batch size {x.shape[0]} in the first, but got grid with sizes "
            f"{list(g.shape)} for input with sizes {list(x.shape)}"
        )
    if x.dtype.kind != "f" or g.dtype != x.dtype:
        raise RuntimeError(
            f"grid_sampler(): expected input and grid to be floating point of one dtype, but "
            f"input has {x.dtype} and grid has {g.dtype}"
        )
    if mode == "bicubic" and nd != 2:
        raise RuntimeError("grid_sampler(): bicubic interpolation only supports 4D input.")
    if any(s == 0 for s in _spatial(x)):
        raise RuntimeError(
            f"grid_sampler(): expected input to have non-empty spatial dimensions, but input "
            f"has sizes {list(x.shape)}"
        )
    align = bool(align_corners)
    spatial, out = _spatial(x), tuple(g.shape[1:-1])
    n, c = x.shape[0], x.shape[1]
    xf = C.reshape(x, (n, c, math.prod(spatial)))
    coords = []
    for axis, size in enumerate(spatial):
        v = C.select(g, -1, nd - 1 - axis)  # grid's last axis is (x, y[, z])
        v = (v + 1) * ((size - 1) / 2) if align else ((v + 1) * size - 1) / 2
        coords.append(v if mode == "bicubic" else _grid_padding(v, size, padding_mode, align))
    if mode == "nearest":
        index = [np.rint(v._data).astype(np.int64) for v in coords]
        # the grid's gradient is zero (as PyTorch's), not missing: a where() that never
        # picks the grid keeps it in the graph (and a NaN in it out of the values)
        never = Tensor._wrap(np.zeros((n, 1, *out), dtype=bool))
        unused = _where(never, C.unsqueeze(C.sum(g, -1), 1), 0.0)
        return _grid_gather(xf, spatial, index, out) + unused
    base = [np.floor(v._data) for v in coords]
    frac = [C.unsqueeze(v - Tensor._wrap(b), 1) for v, b in zip(coords, base, strict=True)]
    result = None
    if mode == "bilinear":
        for corner in itertools.product((0, 1), repeat=nd):
            weight = None
            for bit, f in zip(corner, frac, strict=True):
                w = f if bit else 1 - f
                weight = w if weight is None else weight * w
            index = [b.astype(np.int64) + bit for b, bit in zip(base, corner, strict=True)]
            term = _grid_gather(xf, spatial, index, out) * weight
            result = term if result is None else result + term
        return result
    coeffs = [_cubic_coeffs(f) for f in frac]
    for taps in itertools.product(range(4), repeat=nd):
        index = []
        for b, tap, size in zip(base, taps, spatial, strict=True):
            i = b + (tap - 1)
            if padding_mode == "reflection":
                i = np.clip(_reflect_int(i, size, align), 0, size - 1)
            elif padding_mode == "border":
                i = np.clip(i, 0, size - 1)
            index.append(i.astype(np.int64))
        weight = None
        for tap, cf in zip(taps, coeffs, strict=True):
            weight = cf[tap] if weight is None else weight * cf[tap]
        term = _grid_gather(xf, spatial, index, out) * weight
        result = term if result is None else result + term
    return result


def _base_coords(size: int, align_corners: bool, dtype: np.dtype) -> np.ndarray:
    """``size`` normalised pixel-centre coordinates in [-1, 1] (0 for a size of 1)."""
    if size <= 1:
        return np.zeros(max(size, 0), dtype=dtype)
    v = np.linspace(-1.0, 1.0, size, dtype=dtype)
    return v if align_corners else v * dtype.type((size - 1) / size)


def affine_grid(theta: Tensor, size: Sequence[int], align_corners: bool | None = None) -> Tensor:
    """The sampling grid of an affine map ``theta`` (N, 2, 3) or (N, 3, 4) for an output of
    ``size`` (N, C, H, W) or (N, C, D, H, W): ``grid[n, h, w] = theta[n] @ (x_w, y_h, 1)``
    (for :func:`grid_sample`), as torch's affine_grid."""
    th = _t(theta)
    size = tuple(int(s) for s in size)
    if th.dtype.kind != "f":
        raise ValueError(f"Expected theta to have floating point type, but got {th.dtype}")
    if len(size) not in (4, 5):
        raise NotImplementedError(
            f"affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, "
            f"respectively. Got size {list(size)}."
        )
    nd = len(size) - 2
    if th.ndim != 3 or tuple(th.shape) != (size[0], nd, nd + 1):
        raise ValueError(
            f"Expected a batch of {nd}D affine matrices of shape Nx{nd}x{nd + 1} for size "
            f"{list(size)}. Got {list(th.shape)}."
        )
    if min(size) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {list(size)}")
    align = bool(align_corners)
    spatial = size[2:]
    axes = [_base_coords(s, align, th.dtype) for s in spatial]
    mesh = np.meshgrid(*axes, indexing="ij")  # per spatial axis (d, h, w order)
    base = np.stack([*reversed(mesh), np.ones(spatial, dtype=th.dtype)], -1)  # (x, y[, z], 1)
    base = Tensor._wrap(np.ascontiguousarray(base.reshape(1, -1, nd + 1)))
    grid = C.matmul(base, C.transpose(th, 1, 2))  # (N, prod(spatial), nd)
    return C.reshape(grid, (size[0], *spatial, nd))
