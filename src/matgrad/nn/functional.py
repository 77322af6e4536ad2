"""``matgrad.nn.functional``: the functions behind the layers and losses, written with
matgrad's own ops (no new rule-table rows), so their graphs show those primitives and
every derivative, of any order, comes from the table."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.grad_mode import no_grad
from ..core.grad_mode import state as _state
from ..core.tensor_base import as_tensor
from ..creation import rand_like
from ..ops import batching as _batching
from ..ops import composite as C
from ..ops import linalg as _linalg
from ..ops.bindings import FUNCTIONS as _F
from ..ops.einsum import einsum
from ..ops.registry import PRIMITIVES as _P
from ..tensor import Tensor
from ._reduction import REDUCTIONS as _REDUCTIONS
from ._reduction import check_reduction as _check_reduction
from ._reduction import inplace_result as _inplace_result
from ._reduction import legacy_reduction as _legacy_reduction
from ._reduction import reduce_loss as _reduce

exp = _F["exp"]
log = _F["log"]
log1p = _F["log1p"]
expm1 = _F["expm1"]
tanh = _F["tanh"]
sigmoid = _F["sigmoid"]
where = _F["where"]
maximum = _F["maximum"]
minimum = _F["minimum"]
logaddexp = _F["logaddexp"]
_relu = _F["relu"]
abs = _F["abs"]  # noqa: A001


def _weighted(
    loss: Tensor, weight: Tensor | None, reduction: str, by_weight: bool = True
) -> Tensor:
    """Elementwise ``weight`` (same size as the input); ``'mean'`` divides by its sum
    (``by_weight``; PyTorch's huber_loss takes the plain mean instead)."""
    if weight is None:
        return _reduce(loss, reduction)
    if tuple(weight.shape) != tuple(loss.shape):
        raise ValueError("Weights and input must have the same size.")
    loss = loss * weight
    if reduction == "mean" and by_weight:
        return C.sum(loss) / C.sum(weight)
    return _reduce(loss, reduction)


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else as_tensor(x)


def erf(input: Tensor) -> Tensor:
    """The error function (the table's ``erf`` row)."""
    return _P.erf(_t(input))


# -- linear layers ---------------------------------------------------------------------------
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias``. With a bias and a matrix weight this is one ``addmm``
    (AddmmBackward0 with edges bias, input and the transpose of weight, as PyTorch's), the
    input's leading axes flattened around it as PyTorch does; ``weight.T``'s gradient is then
    made row-major, so ``weight.grad`` needs no transposing copy. Inside ``func.vmap``, and
    without a bias, a matrix product (and a sum)."""
    input, weight = _t(input), _t(weight)
    if bias is None or weight.ndim != 2 or input.ndim == 0 or _state.vmap:
        out = C.matmul(input, weight.mT if weight.ndim == 2 else weight)
        return out if bias is None else out + bias
    bias = _t(bias)
    out_features, in_features = weight.shape
    if input.shape[-1] != in_features:
        raise RuntimeError(
            f"linear: mat1 and mat2 shapes cannot be multiplied ("
            f"{math.prod(input.shape[:-1])}x{input.shape[-1]} and {in_features}x{out_features})"
        )
    wt = weight.mT
    if input.ndim == 2:
        if bias.ndim == 1 and bias.shape[0] == out_features:  # the common case, checked
            return _P.addmm(bias, input, wt, mat2_colmajor=C._is_colmajor(wt))
        return C.addmm(bias, input, wt)
    lead = tuple(input.shape[:-1])
    flat = C.reshape(input, (math.prod(lead), in_features))
    return C.reshape(C.addmm(bias, flat, wt), (*lead, out_features))


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y[..., o] = sum_ij input1[..., i] weight[o, i, j] input2[..., j] + bias[o]``."""
    out = einsum("...i,oij,...j->...o", input1, weight, input2)
    return out if bias is None else out + bias


def embedding(
    input: Any,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of ``weight`` picked by the integer ``input``; the row ``padding_idx`` gets no
    gradient."""
    _unsupported_embedding_options("embedding", max_norm, scale_grad_by_freq, sparse)
    idx = input._data if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(
            "Expected tensor for argument #1 'indices' to have one of the following scalar "
            f"types: Long, Int; but got {idx.dtype} instead"
        )
    n = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError("index out of range in self")
    # a tensor index stays a tensor: inside func.vmap a batched one is a batched gather
    index = input if isinstance(input, Tensor) else Tensor._wrap(idx)
    out = C.getitem(weight, index)
    if padding_idx is not None:
        if padding_idx < 0:
            padding_idx += n
        keep = C.unsqueeze(C.ne(index, padding_idx), -1)
        out = where(keep, out, out.detach())
    return out


def _unsupported_embedding_options(
    op: str, max_norm: float | None, scale_grad_by_freq: bool, sparse: bool
) -> None:
    # refused rather than ignored: each changes the result or the gradient
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError(
            f"{op}: max_norm, scale_grad_by_freq and sparse are not supported"
        )


def embedding_bag(
    input: Any,
    weight: Tensor,
    offsets: Any = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    mode: str = "mean",
    sparse: bool = False,
    per_sample_weights: Tensor | None = None,
    include_last_offset: bool = False,
    padding_idx: int | None = None,
) -> Tensor:
    """Sums, means or maxima of bags of embeddings, as ``torch.nn.functional.embedding_bag``:
    a 2-D ``input`` is one bag per row; a 1-D one is cut into bags at ``offsets`` (bag ``i``
    is ``input[offsets[i]:offsets[i + 1]]``; with ``include_last_offset`` the last offset
    ends the last bag). Entries equal to ``padding_idx`` are left out (and not counted by the
    mean); an empty bag gives zeros. ``per_sample_weights`` scales each entry (mode 'sum').
    In mode 'max' the gradient goes to the first maximum of each bag and feature."""
    _unsupported_embedding_options("embedding_bag", max_norm, scale_grad_by_freq, sparse)
    if mode not in ("sum", "mean", "max"):
        raise ValueError("mode has to be one of sum, mean or max")
    if _state.vmap and any(
        isinstance(t, _batching.BatchedTensor) for t in (input, offsets, per_sample_weights)
    ):
        raise NotImplementedError("embedding_bag: batched indices under func.vmap")
    idx = np.asarray(input._data if isinstance(input, Tensor) else input)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(
            "Expected tensor for argument #1 'indices' to have one of the following scalar "
            f"types: Long, Int; but got {idx.dtype} instead (while checking arguments for "
            "embedding_bag)"
        )
    if per_sample_weights is not None:
        if mode != "sum":
            raise NotImplementedError(
                "embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                f"supported for mode='sum' (got mode='{mode}')."
            )
        if tuple(per_sample_weights.shape) != idx.shape:
            raise ValueError(
                f"embedding_bag: If per_sample_weights ({tuple(per_sample_weights.shape)}) is "
                f"not None, then it must have the same shape as the input ({idx.shape})"
            )
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError(
                "if input is 2D, then offsets has to be None, as input is treated is a "
                "mini-batch of fixed length sequences. However, found offsets of type "
                f"{type(offsets).__name__}"
            )
        bags, length = idx.shape
        starts = np.arange(bags) * length
        ends = starts + length
        idx = idx.reshape(-1)
        if per_sample_weights is not None:
            per_sample_weights = C.reshape(per_sample_weights, (-1,))
    elif idx.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        off = np.asarray(offsets._data if isinstance(offsets, Tensor) else offsets)
        if off.ndim != 1 or off.dtype.kind not in "iu":
            raise ValueError(
                f"offsets has to be a 1D Tensor of integers, got shape {off.shape} and dtype "
                f"{off.dtype}"
            )
        if off.size and off[0] != 0:
            raise RuntimeError(
                "offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to "
                f"start from position 0. However, got {off[0]}"
            )
        if np.any(np.diff(off) < 0) or (off.size and off[-1] > idx.size):
            raise RuntimeError(
                f"embedding_bag: offsets {off.tolist()} must be non-decreasing and at most the "
                f"input's length {idx.size}"
            )
        if include_last_offset:
            if off.size == 0:
                raise RuntimeError("embedding_bag: include_last_offset needs at least 1 offset")
            starts, ends = off[:-1], off[1:]
        else:
            starts, ends = off, np.append(off[1:], idx.size)
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {idx.ndim}")
    n, dim = weight.shape[0], weight.shape[1]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)][0]
        raise RuntimeError(
            "embedding_bag: Expected idx >= 0 && idx < num_embeddings but found idx to be "
            f"{bad} (num_embeddings = {n})"
        )
    bags = len(starts)
    position = np.arange(idx.size)
    bag = np.searchsorted(starts, position, side="right") - 1  # the bag of each entry
    valid = (bag >= 0) & (position < ends[np.maximum(bag, 0)] if bags else False)
    if padding_idx is not None:
        valid &= idx != (padding_idx + n if padding_idx < 0 else padding_idx)
    kept = np.flatnonzero(valid)
    bag, idx = bag[kept], idx[kept]
    counts = np.bincount(bag, minlength=bags)
    rows = C.getitem(weight, Tensor._wrap(idx))  # (entries, dim)
    if len(kept) == 0:  # every bag empty: zeros, with a (zero) gradient path to weight
        return Tensor._wrap(np.zeros((bags, dim), dtype=weight.dtype)) + C.sum(weight) * 0.0
    if mode == "max":
        # bags padded to the longest: slot j of bag b holds its j-th kept entry, or -inf
        width = int(counts.max())
        slot = np.arange(len(kept)) - (np.cumsum(counts) - counts)[bag]
        table = np.zeros((bags, width), dtype=np.int64)
        filled = np.zeros((bags, width), dtype=bool)
        table[bag, slot] = np.arange(len(kept))
        filled[bag, slot] = True
        gathered = C.getitem(rows, Tensor._wrap(table))  # (bags, width, dim)
        padded = where(Tensor._wrap(filled[..., None]), gathered, -math.inf)
        best = C.max(padded, 1).values
        return where(Tensor._wrap(counts[:, None] > 0), best, 0.0)
    if per_sample_weights is not None:
        rows = rows * C.unsqueeze(C.getitem(per_sample_weights, Tensor._wrap(kept)), -1)
    zeros = Tensor._wrap(np.zeros((bags, dim), dtype=rows.dtype))
    out = C.index_add(zeros, 0, Tensor._wrap(bag), rows)
    if mode == "mean":
        out = out / Tensor._wrap(np.maximum(counts, 1).astype(rows.dtype)[:, None])
    return out


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    idx = tensor._data if isinstance(tensor, Tensor) else np.asarray(tensor)
    if idx.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if idx.size and idx.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if num_classes == -1:
        num_classes = int(idx.max()) + 1 if idx.size else 0
    elif idx.size and idx.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    # composed of ops (not built from the raw array), so it batches under vmap
    index = tensor if isinstance(tensor, Tensor) else Tensor._wrap(idx)
    classes = Tensor._wrap(np.arange(num_classes, dtype=idx.dtype))
    return (index.unsqueeze(-1) == classes).to(np.int64)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (training
    only); the mask comes from matgrad's generator (``matgrad.manual_seed``)."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        out = input * 0.0
    else:
        # the mask is drawn by rand_like (the same draws as the generator's random()), so
        # under vmap it follows `randomness=` ('different': one mask per sample)
        keep = rand_like(input, dtype=np.float64) >= p
        out = input * (keep.to(input.dtype) / (1.0 - p))
    return _inplace_result(input, out, inplace)


# -- activations -----------------------------------------------------------------------------
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return _inplace_result(input, _relu(input), inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return _inplace_result(input, where(input > 0, input, input * negative_slope), inplace)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    neg = expm1(C.clamp(input, max=0.0)) * alpha  # clamped: no overflow in the unused branch
    return _inplace_result(input, where(input > 0, input, neg), inplace)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """``x Phi(x)``; ``approximate='tanh'``: ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    if approximate == "none":
        return input * 0.5 * (1.0 + erf(input * (1.0 / math.sqrt(2.0))))
    if approximate == "tanh":
        inner = (input + 0.044715 * input * input * input) * math.sqrt(2.0 / math.pi)
        return 0.5 * input * (1.0 + tanh(inner))
    raise RuntimeError(f"approximate argument must be either none or tanh, got {approximate!r}")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return _inplace_result(input, input * sigmoid(input), inplace)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, and ``x`` where ``beta x > threshold``."""
    z = input * beta
    soft = log1p(exp(C.clamp(z, max=float(threshold)))) / beta
    return where(z > threshold, input, soft)


def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(x)) = -log(1 + exp(-x))``, stable for large ``|x|``."""
    return -logaddexp(C.zeros_like(input), -input)


def hardtanh(
    input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Tensor:
    """``clamp(x, min_val, max_val)`` with PyTorch's gradient: 1 strictly inside, else 0."""
    clamped = C.clamp(input, min_val, max_val)
    inside = C.logical_and(input > min_val, input < max_val)
    return _inplace_result(input, where(inside, input, clamped.detach()), inplace)


def _softmax_dim(name: str, ndim: int, dim: int | None) -> int:
    if dim is not None:
        return dim
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. Change the call to "
        "include dim=X as an argument.",
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    if dtype is not None:
        input = C.to_dtype(input, dtype)
    return C.softmax(input, _softmax_dim("softmax", input.ndim, dim))


def log_softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    if dtype is not None:
        input = C.to_dtype(input, dtype)
    return C.log_softmax(input, _softmax_dim("log_softmax", input.ndim, dim))


# -- normalization ---------------------------------------------------------------------------
def layer_norm(
    input: Tensor,
    normalized_shape: Sequence[int] | int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize over the last ``len(normalized_shape)`` axes (biased variance)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape) :]) != shape:
        raise RuntimeError(
            f"Given normalized_shape={list(shape)}, expected input with shape "
            f"[*, {', '.join(str(s) for s in shape)}], but got input of size{list(input.shape)}"
        )
    dims = tuple(range(-len(shape), 0))
    mu = C.mean(input, dims, keepdim=True)
    centered = input - mu
    var = C.mean(centered * centered, dims, keepdim=True)
    out = centered / _F["sqrt"](var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each channel (axis 1) over the batch and the other axes: with the batch's
    statistics when ``training`` (updating the running ones in place: momentum, unbiased
    variance), else with the running statistics."""
    if input.ndim < 2:
        raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input)")
    dims = (0, *range(2, input.ndim))
    shape = [1] * input.ndim
    shape[1] = input.shape[1]
    n = int(np.prod([input.shape[d] for d in dims]))
    if training:
        if n <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size "
                f"{input.shape}"
            )
        mu = C.mean(input, dims, keepdim=True)
        centered = input - mu
        var = C.mean(centered * centered, dims, keepdim=True)
        if running_mean is not None:
            with no_grad():
                m = float(momentum)
                new_mean = running_mean._data * (1 - m) + mu.detach()._data.reshape(-1) * m
                unbiased = var.detach()._data.reshape(-1) * (n / (n - 1))
                new_var = running_var._data * (1 - m) + unbiased * m
                running_mean.copy_(Tensor._wrap(new_mean.astype(running_mean.dtype)))
                running_var.copy_(Tensor._wrap(new_var.astype(running_var.dtype)))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed in eval mode")
        mu = C.reshape(running_mean, *shape)
        centered = input - mu
        var = C.reshape(running_var, *shape)
    out = centered / _F["sqrt"](var + eps)
    if weight is not None:
        out = out * C.reshape(weight, *shape)
    if bias is not None:
        out = out + C.reshape(bias, *shape)
    return out


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """``x / max(||x||_p, eps)`` along ``dim``."""
    norm = _linalg.vector_norm(input, p, dim, keepdim=True)
    return input / C.clamp(norm, min=eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``sum(x1/max(||x1||, eps) * x2/max(||x2||, eps))`` along ``dim``, after broadcasting
    ``x1`` and ``x2`` against each other (as PyTorch does: the norms are of the broadcast
    inputs)."""
    x1, x2 = _t(x1), _t(x2)
    shape = tuple(np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape)))
    x1, x2 = C.broadcast_to(x1, shape), C.broadcast_to(x2, shape)
    n1 = C.clamp(_linalg.vector_norm(x1, 2, dim, keepdim=True), min=eps)
    n2 = C.clamp(_linalg.vector_norm(x2, 2, dim, keepdim=True), min=eps)
    return C.sum((x1 / n1) * (x2 / n2), dim)


def pairwise_distance(
    x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False
) -> Tensor:
    """``||x1 - x2 + eps||_p`` along the last axis."""
    return _linalg.vector_norm(x1 - x2 + eps, p, -1, keepdim=keepdim)


def pad(
    input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None
) -> Tensor:
    """Pad the last ``len(pad) // 2`` axes, ``pad`` listing (before, after) amounts from the
    last axis backwards (negative amounts crop). Modes: 'constant' (``value``), 'reflect'
    (mirror, edge not repeated), 'replicate' (edge repeated), 'circular' (wrap around)."""
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if mode == "constant":
        return C.pad(input, pad, mode, 0.0 if value is None else value)
    if value is not None and value != 0:
        raise ValueError(f'Padding mode "{mode}" doesn\'t take in value argument.')
    from .functional_conv import _pad_nonconstant  # defined after this module's body

    return _pad_nonconstant(input, pad, mode)


# -- losses ----------------------------------------------------------------------------------
def _same_size(name: str, input: Tensor, target: Tensor) -> None:
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(
            f"Using a target size ({target.shape}) that is different to the input size "
            f"({input.shape}). This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=3,
        )


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    input, target = _t(input), _t(target)
    _same_size("mse_loss", input, target)
    d = input - target
    return _weighted(d * d, weight, reduction)


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    input, target = _t(input), _t(target)
    _same_size("l1_loss", input, target)
    return _weighted(abs(input - target), weight, reduction)


def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    input, target = _t(input), _t(target)
    _same_size("smooth_l1_loss", input, target)
    d = abs(input - target)
    if beta == 0.0:
        return _reduce(d, reduction)
    return _reduce(where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)


def huber_loss(
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Tensor | None = None,
) -> Tensor:
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``."""
    _check_reduction(reduction)
    input, target = _t(input), _t(target)
    _same_size("huber_loss", input, target)
    d = abs(input - target)
    return _weighted(
        where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)), weight, reduction, False
    )


def _class_last(x: Tensor) -> Tensor:
    """(N, C, d1, ...) -> (N, d1, ..., C)."""
    if x.ndim <= 2:
        return x
    return C.permute(x, 0, *range(2, x.ndim), 1)


def _target_indices(target: Any) -> np.ndarray:
    t = target._data if isinstance(target, Tensor) else np.asarray(target)
    return t


def nll_loss(
    input: Tensor,
    target: Any,
    weight: Tensor | None = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``-weight[t] input[n, t]`` per sample (0 where ``t == ignore_index``); ``'mean'``
    divides by the summed weights of the samples not ignored."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    input = _t(input)
    t = _target_indices(target)
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"expected scalar type Long but found {t.dtype}")
    # inside func.vmap a batched target's array holds the batch axes too: tensor ops for it
    batched = _batching.is_batched(target)
    t_shape = tuple(target.shape) if batched else t.shape
    one = input.ndim == 1
    if one:
        input = C.unsqueeze(input, 0)
        t = t if batched else t.reshape(1)
        target, t_shape = (C.reshape(target, (1,)) if batched else target), (1,)
    if input.ndim < 2:
        raise ValueError(f"Expected 1 or more dimensions (got {input.ndim})")
    n_classes = input.shape[1]
    expected = (input.shape[0], *input.shape[2:])
    if tuple(t_shape) != expected:
        raise ValueError(
            f"Expected target of shape {list(expected)} for input of shape "
            f"{list(input.shape)}, got {list(t_shape)}"
        )
    ignored = t == ignore_index
    safe = np.where(ignored, 0, t)
    if safe.size and (safe.min() < 0 or safe.max() >= n_classes):
        bad = safe[(safe < 0) | (safe >= n_classes)].flat[0]
        raise IndexError(f"Target {bad} is out of bounds.")
    x = _class_last(input)
    if batched:
        keep = C.ne(target, ignore_index)
        safe_t = C._nograd(np.where, keep, target, 0)
        picked = C.squeeze(C.take_along_axis(x, C.unsqueeze(safe_t, -1), -1), -1)
        w = C._nograd(lambda k: k.astype(input.dtype), keep)
        if weight is not None:
            w = C.getitem(_t(weight), safe_t) * w
    else:
        picked = C.squeeze(C.take_along_axis(x, safe[..., None], -1), -1)
        if weight is not None:
            w = C.getitem(_t(weight), safe) * Tensor._wrap(~ignored)
        else:
            w = Tensor._wrap((~ignored).astype(input.dtype))
    loss = -(picked * w)
    if reduction == "none":
        return C.reshape(loss, ()) if one else loss
    if reduction == "sum":
        return C.sum(loss)
    return C.sum(loss) / C.sum(w)


def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Tensor | None = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """``nll_loss(log_softmax(input, 1), target)`` for class indices; for class
    probabilities ``-sum_c weight[c] target[c] log_softmax(input)[c]``; with PyTorch's
    ``label_smoothing`` in both."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    input = _t(input)
    class_dim = 0 if input.ndim == 1 else 1
    n_classes = input.shape[class_dim]
    logp = C.log_softmax(input, class_dim)
    w_shape = [1] * input.ndim
    w_shape[class_dim] = n_classes
    tgt = target if isinstance(target, Tensor) else as_tensor(target)
    if tgt.dtype.kind == "f":  # class probabilities
        if tuple(tgt.shape) != tuple(input.shape):
            raise RuntimeError(f"Expected target size {list(input.shape)}, got {list(tgt.shape)}")
        if label_smoothing > 0.0:
            tgt = tgt * (1 - label_smoothing) + label_smoothing / n_classes
        prod = logp * tgt
        if weight is not None:
            prod = prod * C.reshape(_t(weight), *w_shape)
        if reduction == "none":
            return -C.sum(prod, class_dim)
        if reduction == "sum":
            return -C.sum(prod)
        return -C.sum(prod) / (int(np.prod(input.shape)) // n_classes)
    nll = nll_loss(logp, tgt, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0.0:
        return nll
    if _batching.is_batched(tgt):
        raise NotImplementedError(
            "cross_entropy: label_smoothing with class indices batched by func.vmap is not "
            "supported yet"
        )
    t = tgt._data
    ignored = Tensor._wrap(t == ignore_index)
    if weight is not None:
        smooth = -C.sum(logp * C.reshape(_t(weight), *w_shape), class_dim)
    else:
        smooth = -C.sum(logp, class_dim)
    smooth = where(ignored, 0.0, smooth)
    if reduction == "mean":
        kept = t[t != ignore_index]
        if weight is not None:
            smooth = C.sum(smooth) / C.sum(C.getitem(_t(weight), kept))
        else:
            smooth = C.sum(smooth) / float(kept.size)
    elif reduction == "sum":
        smooth = C.sum(smooth)
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / n_classes)


@dataclass(slots=True, frozen=True)
class LinearCrossEntropyOptions:
    """PyTorch's chunking options of ``linear_cross_entropy`` (``torch.nn``'s dataclass of
    the same fields). They choose how torch splits the work to save memory, not the result;
    matgrad accepts them and computes the logits whole."""

    allow_retain_graph: bool = False
    batch_chunk_size: int | None = None
    chunking_method: str = "auto"
    acc_policy: str = "auto"
    acc_dtype: Any = None


def linear_cross_entropy(
    input: Tensor,
    linear_weight: Tensor,
    target: Any,
    *,
    linear_bias: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    options: Any = None,
) -> Tensor:
    """``cross_entropy(linear(input, linear_weight, linear_bias), target)``; a ``linear_weight``
    of shape (C, d_1, ..., d_K, in) gives K-dimensional logits (N, C, d_1, ..., d_K). The
    chunking ``options`` of PyTorch only save memory; matgrad computes the logits whole."""
    if options is not None and not isinstance(options, LinearCrossEntropyOptions):
        raise TypeError(
            f"linear_cross_entropy: options must be a LinearCrossEntropyOptions or None, got "
            f"{type(options).__name__}"
        )
    input, w = _t(input), _t(linear_weight)
    if input.shape[-1] != w.shape[-1]:
        raise RuntimeError(
            f"linear_cross_entropy: input's last axis ({input.shape[-1]}) must match "
            f"linear_weight's ({w.shape[-1]}); got input {list(input.shape)} and linear_weight "
            f"{list(w.shape)}"
        )
    # one matrix product over the flattened class axes (C, d_1, ..., d_K), then unflattened
    out_shape = tuple(w.shape[:-1])
    flat_w = C.reshape(w, (-1, w.shape[-1])) if w.ndim != 2 else w
    logits = C.matmul(input, flat_w.mT)
    if linear_bias is not None:
        logits = logits + C.reshape(_t(linear_bias), (-1,))
    logits = C.reshape(logits, (*tuple(input.shape[:-1]), *out_shape))
    if ignore_index is not None and _t(target).dtype.kind == "f":
        raise RuntimeError("ignore_index cannot be specified when target contains probabilities")
    idx = -100 if ignore_index is None else ignore_index
    return cross_entropy(
        logits, target, weight, ignore_index=idx, reduction=reduction,
        label_smoothing=label_smoothing,
    )  # fmt: skip


def binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``-(t log x + (1 - t) log(1 - x))``, each log clamped at -100 as PyTorch's."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    input, target = _t(input), _t(target)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(
            f"Using a target size ({target.shape}) that is different to the input size "
            f"({input.shape}) is deprecated. Please ensure they have the same size."
        )
    x = input._data
    if x.size and (np.any(x < 0) or np.any(x > 1) or np.any(np.isnan(x))):
        raise RuntimeError("all elements of input should be between 0 and 1")
    log_x = C.clamp(log(input), min=-100.0)
    log_1mx = C.clamp(log(1.0 - input), min=-100.0)
    loss = -(target * log_x + (1.0 - target) * log_1mx)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """``(1 - t) x - (1 + (pos_weight - 1) t) log(sigmoid(x))``, with the stable
    ``log(sigmoid(x)) = -logaddexp(0, -x)``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    input, target = _t(input), _t(target)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(
            f"Target size ({target.shape}) must be the same as input size ({input.shape})"
        )
    log_sig = logsigmoid(input)
    if pos_weight is not None:
        log_sig = log_sig * ((_t(pos_weight) - 1.0) * target + 1.0)
    loss = (1.0 - target) * input - log_sig
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    """Pointwise ``target (log target - input)`` (0 where target is 0), or with
    ``log_target`` ``exp(target) (target - input)``; ``'batchmean'`` divides the sum by
    the batch size."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if reduction not in (*_REDUCTIONS, "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    input, target = _t(input), _t(target)
    if log_target:
        loss = exp(target) * (target - input)
    else:
        pos = target > 0
        xlogy = where(pos, target * log(where(pos, target, 1.0)), 0.0)
        loss = xlogy - target * input
    if reduction == "batchmean":
        if input.ndim == 0:
            return C.sum(loss)
        return C.sum(loss) / input.shape[0]
    return _reduce(loss, reduction)


# the spatial and attention functions live in modules of their own
from .functional_attention import *  # noqa: E402, F403
from .functional_conv import *  # noqa: E402, F403
from .functional_more import *  # noqa: E402, F403
