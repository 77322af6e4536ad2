"""More of ``matgrad.nn.functional``: activations, normalizations, losses, random dropouts
and ``pdist``, each composed of matgrad's ops (no rule-table rows of its own),
following ``torch.nn.functional``'s arguments, defaults, ``reduction=`` and errors."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..core.grad_mode import no_grad
from ..core.tensor_base import as_tensor
from ..creation import default_generator
from ..ops import composite as C
from ..ops import linalg as _linalg
from ..ops.bindings import FUNCTIONS as _F
from ..tensor import Tensor
from ._reduction import check_reduction as _check_reduction
from ._reduction import inplace_result as _inplace_result
from ._reduction import legacy_reduction as _legacy_reduction
from ._reduction import reduce_loss as _reduce

__all__ = [
    "alpha_dropout",
    "celu",
    "cosine_embedding_loss",
    "ctc_loss",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "feature_alpha_dropout",
    "gaussian_nll_loss",
    "glu",
    "hardshrink",
    "hardsigmoid",
    "hardswish",
    "hinge_embedding_loss",
    "instance_norm",
    "local_response_norm",
    "margin_ranking_loss",
    "mish",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "pdist",
    "poisson_nll_loss",
    "prelu",
    "relu6",
    "rms_norm",
    "rrelu",
    "selu",
    "soft_margin_loss",
    "softmin",
    "softshrink",
    "softsign",
    "tanhshrink",
    "threshold",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
]

exp, log, log1p, expm1 = _F["exp"], _F["log"], _F["log1p"], _F["expm1"]
_tanh, _sigmoid, _where, _sqrt = _F["tanh"], _F["sigmoid"], _F["where"], _F["sqrt"]
_abs = _F["abs"]


# SELU's constants (Klambauer et al. 2017, "Self-Normalizing Neural Networks")
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else as_tensor(x)


def _softplus(x: Tensor) -> Tensor:
    """``log(1 + exp(x))``, and ``x`` above 20 (PyTorch's softplus threshold)."""
    return _where(x > 20.0, x, log1p(exp(C.clamp(x, max=20.0))))


def _logsigmoid(x: Tensor) -> Tensor:
    """``log(sigmoid(x)) = -log(1 + exp(-x))``, stable for large ``|x|``."""
    return -_F["logaddexp"](C.zeros_like(x), -x)


def _pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6) -> Tensor:
    return _linalg.vector_norm(_t(x1) - _t(x2) + eps, p, -1)


def _clamp_min0(x: Tensor) -> Tensor:
    """``x.clamp_min(0)`` with torch's gradient: 1 where ``x >= 0``."""
    return _where(x >= 0, x, C.zeros_like(x))


# -- activations -----------------------------------------------------------------------------
def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``max(0, x) + min(0, alpha (exp(x / alpha) - 1))``."""
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    input = _t(input)
    neg = expm1(C.clamp(input, max=0.0) / alpha) * alpha  # clamped: the unused branch is finite
    return _inplace_result(input, _where(input > 0, input, neg), inplace)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """``scale (max(0, x) + min(0, alpha (exp(x) - 1)))`` with SELU's fixed constants."""
    input = _t(input)
    neg = expm1(C.clamp(input, max=0.0)) * _SELU_ALPHA
    return _inplace_result(input, _where(input > 0, input, neg) * _SELU_SCALE, inplace)


def rrelu(
    input: Tensor,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    inplace: bool = False,
) -> Tensor:
    """Leaky ReLU with, in training, a slope drawn from ``U(lower, upper)`` per negative
    element (matgrad's generator), else the fixed slope ``(lower + upper) / 2``."""
    input = _t(input)
    if not training:
        slope = (lower + upper) / 2
        return _inplace_result(input, _where(input > 0, input, input * slope), inplace)
    slope = default_generator().uniform(lower, upper, tuple(input.shape))
    slope = Tensor._wrap(np.asarray(slope, dtype=input.dtype))
    return _inplace_result(input, _where(input >= 0, input, input * slope), inplace)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """``min(max(0, x), 6)`` with PyTorch's gradient (that of ``hardtanh(x, 0, 6)``): 1
    strictly inside (0, 6), else 0."""
    input = _t(input)
    inside = C.logical_and(input > 0.0, input < 6.0)
    out = _where(inside, input, C.clamp(input, 0.0, 6.0).detach())
    return _inplace_result(input, out, inplace)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """``relu6(x + 3) / 6``; gradient ``1/6`` strictly inside (-3, 3), else 0."""
    input = _t(input)
    return _inplace_result(input, relu6(input + 3.0) / 6.0, inplace)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x relu6(x + 3) / 6``; PyTorch's gradient: 0 up to -3, ``x/3 + 1/2`` on (-3, 3),
    1 from 3 on (the value is continuous, the gradient jumps at -3 and 3)."""
    input = _t(input)
    mid = input * (input + 3.0) / 6.0
    out = _where(input <= -3.0, C.zeros_like(input), _where(input < 3.0, mid, input))
    return _inplace_result(input, out, inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x tanh(softplus(x))`` (Misra 2019)."""
    input = _t(input)
    return _inplace_result(input, input * _tanh(_softplus(input)), inplace)


def softsign(input: Tensor) -> Tensor:
    """``x / (1 + |x|)``."""
    input = _t(input)
    return input / (_abs(input) + 1.0)


def tanhshrink(input: Tensor) -> Tensor:
    """``x - tanh(x)``."""
    input = _t(input)
    return input - _tanh(input)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0."""
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    input = _t(input)
    zero = C.zeros_like(input)
    return _where(input > lambd, input - lambd, _where(input < -lambd, input + lambd, zero))


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x`` where ``|x| > lambd``, else 0."""
    input = _t(input)
    keep = C.logical_or(input > lambd, input < -lambd)
    return _where(keep, input, C.zeros_like(input))


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``x`` where ``x > threshold``, else ``value``."""
    input = _t(input)
    out = _where(input > threshold, input, C.full_like(input, value))
    return _inplace_result(input, out, inplace)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """``a * sigmoid(b)`` with ``a, b`` the two halves of ``input`` along ``dim``."""
    input = _t(input)
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = dim + input.ndim if dim < 0 else dim
    if not 0 <= d < input.ndim:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-input.ndim}, "
            f"{input.ndim - 1}], but got {dim})"
        )
    n = input.shape[d]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {n}")
    a = C.narrow(input, d, 0, n // 2)
    b = C.narrow(input, d, n // 2, n // 2)
    return a * _sigmoid(b)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """``x`` where ``x > 0``, else ``weight * x``; ``weight`` has one element or one per
    channel (axis 1; axis 0 of a 1-d input)."""
    input, weight = _t(input), _t(weight)
    n = math.prod(weight.shape)
    if n != 1:
        if input.ndim == 0:
            raise RuntimeError("Not allow zero-dim input tensor.")
        channels = input.shape[1] if input.ndim >= 2 else 1
        if n != channels:
            raise RuntimeError(
                "Mismatch of parameter numbers and input channel size. Found parameter numbers "
                f"= {n} and channel size = {channels}."
            )
    if weight.ndim > 1:
        raise RuntimeError(
            f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {weight.ndim}"
        )
    if input.ndim == 0:
        w = C.reshape(weight, ())
    elif weight.ndim == 1 and input.ndim >= 2:
        shape = [1] * input.ndim
        shape[1] = n
        w = C.reshape(weight, tuple(shape))
    else:
        w = weight
    return _where(input > 0, input, input * w)


def softmin(
    input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None
) -> Tensor:
    """``softmax(-x, dim)``."""
    input = _t(input)
    if dtype is not None:
        input = C.to_dtype(input, dtype)
    if dim is None:
        warnings.warn(
            "Implicit dimension choice for softmin has been deprecated. Change the call to "
            "include dim=X as an argument.",
            stacklevel=2,
        )
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return C.softmax(-input, dim)


# -- normalization ---------------------------------------------------------------------------
def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each (sample, channel) of (N, C, *) over its spatial axes (biased variance),
    then scale and shift per channel. With ``use_input_stats`` the running statistics (if
    given) are updated with the batch mean of the instance statistics (unbiased variance);
    without it they are used instead."""
    input = _t(input)
    if input.ndim < 2:
        raise ValueError(
            "instance_norm: expected an input of at least 2 dimensions (N, C, *), got shape "
            f"{list(input.shape)}"
        )
    c = input.shape[1]
    shape = (1, c) + (1,) * (input.ndim - 2)
    dims = tuple(range(2, input.ndim))
    if use_input_stats:
        spatial = math.prod(input.shape[2:])
        if spatial <= 1:
            raise ValueError(
                f"Expected more than 1 spatial element when training, got input size "
                f"{list(input.shape)}"
            )
        mu = C.mean(input, dims, keepdim=True)
        centered = input - mu
        var = C.mean(centered * centered, dims, keepdim=True)
        if running_mean is not None or running_var is not None:
            # the running statistics take the batch mean of the instance statistics
            m = float(momentum)
            with no_grad():
                if running_mean is not None:
                    batch_mean = mu._data.reshape(-1, c).mean(0)
                    new = running_mean._data * (1 - m) + batch_mean * m
                    running_mean.copy_(Tensor._wrap(new.astype(running_mean.dtype)))
                if running_var is not None:
                    unbiased = var._data.reshape(-1, c).mean(0) * (spatial / (spatial - 1))
                    new = running_var._data * (1 - m) + unbiased * m
                    running_var.copy_(Tensor._wrap(new.astype(running_var.dtype)))
    else:
        if running_mean is None or running_var is None:
            raise ValueError(
                "Expected running_mean and running_var to be defined when use_input_stats is false"
            )
        centered = input - C.reshape(_t(running_mean), shape)
        var = C.reshape(_t(running_var), shape)
    out = centered / _sqrt(var + eps)
    if weight is not None:
        out = out * C.reshape(_t(weight), shape)
    if bias is not None:
        out = out + C.reshape(_t(bias), shape)
    return out


def local_response_norm(
    input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> Tensor:
    """``x / (k + alpha/size * sum of x^2 over a window of ``size`` channels)^beta``, the window
    centred on each channel (``size // 2`` before, ``(size - 1) // 2`` after, zero padded)."""
    input = _t(input)
    if input.ndim < 3:
        raise ValueError(
            f"Expected 3D or higher dimensionality input (got {input.ndim} dimensions)"
        )
    if math.prod(input.shape) == 0:
        return input
    c = input.shape[1]
    sq = input * input
    pad = [0, 0] * (input.ndim - 2) + [size // 2, (size - 1) // 2]
    padded = C.pad(sq, pad, "constant", 0.0)
    window = C.narrow(padded, 1, 0, c)
    for i in range(1, size):
        window = window + C.narrow(padded, 1, i, c)
    div = _F["pow"](window * (alpha / size) + k, beta)
    return input / div


def rms_norm(
    input: Tensor,
    normalized_shape: Sequence[int] | int,
    weight: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last ``len(normalized_shape)`` axes;
    ``eps`` defaults to the dtype's machine epsilon (as PyTorch's)."""
    input = _t(input)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape) :]) != shape or len(shape) > input.ndim:
        raise RuntimeError(
            f"Given normalized_shape={list(shape)}, expected input with shape "
            f"[*, {', '.join(str(s) for s in shape)}], but got input of size{list(input.shape)}"
        )
    if eps is None:
        eps = float(np.finfo(input.dtype).eps)
    dims = tuple(range(-len(shape), 0))
    out = input * _F["rsqrt"](C.mean(input * input, dims, keepdim=True) + eps)
    return out if weight is None else out * _t(weight)


# -- random dropouts -------------------------------------------------------------------------
def _check_p(p: float) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _feature_dropout(input: Tensor, p: float, mask_shape: tuple[int, ...], alpha: bool) -> Tensor:
    """Keep each slice of ``mask_shape`` with probability ``1 - p``: scaled by ``1/(1-p)``
    (plain), or set to SELU's negative saturation and affinely corrected (alpha dropout, which
    keeps zero mean and unit variance)."""
    if p == 1.0:
        return input * 0.0
    keep = default_generator().random(mask_shape) >= p
    dt = input.dtype
    if not alpha:
        return input * Tensor._wrap((keep / (1.0 - p)).astype(dt))
    sat = _SELU_ALPHA * _SELU_SCALE  # -sat is SELU's limit at -inf
    a = 1.0 / math.sqrt((sat * sat * p + 1.0) * (1.0 - p))
    b = (keep.astype(dt) - 1.0) * (sat * a) + sat * a * p
    return input * Tensor._wrap((keep * a).astype(dt)) + Tensor._wrap(b.astype(dt))


def alpha_dropout(
    input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False
) -> Tensor:
    """Alpha dropout (for SELU networks): dropped elements take SELU's saturation value, then
    ``a x + b`` restores zero mean and unit variance."""
    _check_p(p)
    input = _t(input)
    if not training or p == 0.0:
        return input
    return _inplace_result(input, _feature_dropout(input, p, tuple(input.shape), True), inplace)


def _channel_mask(input: Tensor, batched: bool) -> tuple[int, ...]:
    lead = 2 if batched else 1
    return tuple(input.shape[:lead]) + (1,) * (input.ndim - lead)


def feature_alpha_dropout(
    input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False
) -> Tensor:
    """Alpha dropout of whole channels (axis 1 of (N, C, *))."""
    _check_p(p)
    input = _t(input)
    if not training or p == 0.0:
        return input
    if input.ndim < 2:
        raise RuntimeError(
            f"Feature dropout requires at least 2 dimensions in the input, got {input.ndim}"
        )
    out = _feature_dropout(input, p, _channel_mask(input, True), True)
    return _inplace_result(input, out, inplace)


def _dropout_nd(
    name: str, input: Tensor, p: float, training: bool, inplace: bool, n: int
) -> Tensor:
    """PyTorch's channel dropouts: dropout1d refuses inputs other than 2-D or 3-D; dropout2d
    and dropout3d warn and go on. dropout2d always reads (N, C, *) (a 3-D input as (N, C, L));
    dropout1d and dropout3d read an input without a batch axis as (C, *)."""
    _check_p(p)
    input = _t(input)
    if input.ndim not in (n + 1, n + 2):
        msg = (
            f"Note that {name} exists to provide channel-wise dropout on inputs with {n} "
            f"spatial dimension{'s' if n > 1 else ''}, a channel dimension, and an optional "
            f"batch dimension (i.e. {n + 1}D or {n + 2}D inputs)."
        )
        if n == 1:
            raise RuntimeError(
                f"{name}: Expected 2D or 3D input, but received a {input.ndim}D input. {msg}"
            )
        warnings.warn(
            f"{name}: Received a {input.ndim}-D input to {name}, which is deprecated and will "
            "result in an error in a future release. To retain the behavior and silence this "
            f"warning, please use dropout instead. {msg}",
            stacklevel=3,
        )
    if n == 2 and input.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
            "dropout behavior is desired - input is interpreted as shape (N, C, L), where C "
            "is the channel dim. This behavior will change in a future release to interpret "
            "the input as one without a batch dimension, i.e. shape (C, H, W). To maintain "
            "the 1D channel-wise dropout behavior, please switch to using dropout1d instead.",
            stacklevel=3,
        )
    batched = n == 2 or input.ndim == n + 2
    if not training or p == 0.0:
        return input
    if input.ndim < (2 if batched else 1):
        raise RuntimeError(
            f"Feature dropout requires at least 2 dimensions in the input, got {input.ndim}"
        )
    out = _feature_dropout(input, p, _channel_mask(input, batched), False)
    return _inplace_result(input, out, inplace)


def dropout1d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Zero whole channels of (N, C, L) or (C, L) with probability ``p``, scale by 1/(1-p)."""
    return _dropout_nd("dropout1d", input, p, training, inplace, 1)


def dropout2d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Zero whole channels of (N, C, H, W) or (C, H, W) with probability ``p``."""
    return _dropout_nd("dropout2d", input, p, training, inplace, 2)


def dropout3d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) with probability ``p``."""
    return _dropout_nd("dropout3d", input, p, training, inplace, 3)


# -- distances and embeddings ----------------------------------------------------------------
def pdist(input: Tensor, p: float = 2.0) -> Tensor:
    """The ``p``-norm distances between the rows of an (N, M) input, the pairs ``i < j`` in
    row-major order (the condensed upper triangle), ``N (N - 1) / 2`` values."""
    input = _t(input)
    if input.ndim != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {input.ndim}D")
    if p < 0:
        raise RuntimeError("pdist only supports non-negative p values")
    i, j = np.triu_indices(input.shape[0], 1)
    diff = C.index_select(input, 0, Tensor._wrap(i)) - C.index_select(input, 0, Tensor._wrap(j))
    return _linalg.vector_norm(diff, p, -1)


# -- losses ----------------------------------------------------------------------------------
def _reduction(size_average: Any, reduce: Any, reduction: str) -> str:
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    return reduction


def margin_ranking_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0.0,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``max(0, -target (input1 - input2) + margin)``."""
    reduction = _reduction(size_average, reduce, reduction)
    input1, input2, target = _t(input1), _t(input2), _t(target)
    if not input1.ndim == input2.ndim == target.ndim:
        raise RuntimeError(
            "margin_ranking_loss : All input tensors should have same dimension but got sizes: "
            f"input1: {tuple(input1.shape)}, input2: {tuple(input2.shape)}, "
            f"target: {tuple(target.shape)} "
        )
    return _reduce(_clamp_min0(-target * (input1 - input2) + margin), reduction)


def hinge_embedding_loss(
    input: Tensor,
    target: Tensor,
    margin: float = 1.0,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``x`` where ``target == 1``, ``max(0, margin - x)`` where ``target == -1`` (PyTorch's:
    a target of neither value contributes both terms)."""
    reduction = _reduction(size_average, reduce, reduction)
    input, target = _t(input), _t(target)
    zero = C.zeros_like(input)
    margin_term = _where(target != 1, _clamp_min0(margin - input), zero)
    self_term = _where(target != -1, input, zero)
    return _reduce(margin_term + self_term, reduction)


def soft_margin_loss(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``log(1 + exp(-target x))``."""
    reduction = _reduction(size_average, reduce, reduction)
    input, target = _t(input), _t(target)
    # log1p(exp(z)) = softplus(z): stable where -target x is large
    z = -target * input
    return _reduce(_where(z > 20.0, z, log1p(exp(C.clamp(z, max=20.0)))), reduction)


def multilabel_soft_margin_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``-mean_c w_c (y_c log sigmoid(x_c) + (1 - y_c) log sigmoid(-x_c))`` per sample."""
    reduction = _reduction(size_average, reduce, reduction)
    input, target = _t(input), _t(target)
    loss = -(target * _logsigmoid(input) + (1.0 - target) * _logsigmoid(-input))
    if weight is not None:
        loss = loss * _t(weight)
    class_dim = input.ndim - 1
    loss = C.sum(loss, class_dim) / input.shape[class_dim]
    return _reduce(loss, reduction)


def multi_margin_loss(
    input: Tensor,
    target: Any,
    p: int = 1,
    margin: float = 1.0,
    weight: Tensor | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Per sample ``sum_{i != y} w_y max(0, margin - x_y + x_i)^p / C`` (``p`` 1 or 2)."""
    reduction = _reduction(size_average, reduce, reduction)
    input = _t(input)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    t = target._data if isinstance(target, Tensor) else np.asarray(target)
    x = C.reshape(input, (1, -1)) if input.ndim <= 1 else input
    if input.ndim > 2 or x.shape[1] == 0:
        raise RuntimeError(
            "multi_margin_loss: Expected non-empty vector or matrix with optional 0-dim batch "
            f"size, but got: {list(input.shape)}"
        )
    nframe, dim = x.shape
    t_ndim = t.ndim
    t = t.reshape(-1) if t.ndim <= 1 else t
    if t.ndim != 1 or t.size != nframe:
        raise RuntimeError(
            f"multi_margin_loss: inconsistent target size, expected {nframe} but got "
            f"{list(t.shape)}"
        )
    if t.size and (t.min() < 0 or t.max() >= dim):
        raise IndexError("multi_margin_loss: target out of range")
    col = t.astype(np.int64)[:, None]
    u = C.take_along_axis(x, Tensor._wrap(col), 1)
    z = _clamp_min0(margin - u + x)
    if p == 2:
        z = z * z
    if weight is not None:
        w = _t(weight)
        if math.prod(w.shape) != dim:
            raise RuntimeError(
                f"multi_margin_loss: inconsistent weight size, expected {dim} but got "
                f"{list(w.shape)}"
            )
        z = z * C.index_select(C.reshape(w, (-1,)), 0, Tensor._wrap(col.reshape(-1)))[:, None]
    other = Tensor._wrap(np.arange(dim)[None, :] != col)
    z = _where(other, z, C.zeros_like(z))
    per_sample = C.sum(z, 1) / dim
    if reduction == "none" and input.ndim <= 1 and t_ndim == 0:
        return C.reshape(per_sample, ())
    return _reduce(per_sample, reduction)


def multilabel_margin_loss(
    input: Tensor,
    target: Any,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Per sample ``sum_{j target, i not target} max(0, 1 - (x_j - x_i)) / C``; the targets
    are the class indices before the first -1 of each row of ``target``."""
    reduction = _reduction(size_average, reduce, reduction)
    input = _t(input)
    t = target._data if isinstance(target, Tensor) else np.asarray(target)
    if input.ndim > 2 or (input.shape[-1] if input.ndim else 1) == 0:
        raise RuntimeError(
            "multilabel_margin_loss: Expected non-empty vector or matrix with optional 0-dim "
            f"batch size, but got: {list(input.shape)}"
        )
    if tuple(t.shape) != tuple(input.shape):
        raise RuntimeError(
            f"multilabel_margin_loss: inconsistent target size: {list(t.shape)} for input of "
            f"size: {list(input.shape)}"
        )
    x = C.reshape(input, (1, -1)) if input.ndim <= 1 else input
    t2 = t.reshape(x.shape).astype(np.int64)
    n, dim = x.shape
    if t2.size and (t2.max() >= dim or t2.min() < -1):
        raise IndexError("multilabel_margin_loss: target index out of range")
    ends = np.where(t2 == -1, np.arange(dim), dim).min(axis=1, keepdims=True)
    is_label = np.arange(dim)[None, :] < ends  # (n, dim): position j holds a target
    tidx = np.where(is_label, t2, 0)
    # class i is a target of row r if some label slot of r names it
    named = np.where(is_label, t2, -1)
    is_target = np.any(named[:, :, None] == np.arange(dim)[None, None, :], axis=1)
    u = C.take_along_axis(x, Tensor._wrap(tidx), 1)  # (n, dim): x at each target slot
    z = _clamp_min0(1.0 - C.unsqueeze(u, 2) + C.unsqueeze(x, 1)) / dim  # (n, slot, class)
    mask = is_label[:, :, None] & ~is_target[:, None, :]
    z = _where(Tensor._wrap(mask), z, C.zeros_like(z))
    per_sample = C.sum(z, (1, 2))
    if reduction == "none":
        return C.reshape(per_sample, ()) if input.ndim <= 1 else per_sample
    return _reduce(per_sample, reduction)


def cosine_embedding_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0.0,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``1 - cos(x1, x2)`` where ``target == 1``, ``max(0, cos(x1, x2) - margin)`` where
    ``target == -1``; the cosine along the last axis, each squared norm plus 1e-12 (as
    PyTorch's)."""
    reduction = _reduction(size_average, reduce, reduction)
    input1, input2, target = _t(input1), _t(input2), _t(target)
    if input1.ndim != input2.ndim or tuple(input1.shape) != tuple(input2.shape):
        raise RuntimeError(
            f"cosine_embedding_loss: input1 and input2 should have the same shape, got "
            f"{list(input1.shape)} and {list(input2.shape)}"
        )
    if target.ndim + 1 != input1.ndim or input1.ndim not in (1, 2):
        raise RuntimeError(
            f"cosine_embedding_loss: 0D target tensor expects 1D input tensors, 1D target "
            f"expects 2D inputs, but got target of {target.ndim}D and inputs of "
            f"{input1.ndim}D"
        )
    dim = input1.ndim - 1
    eps = 1e-12
    prod = C.sum(input1 * input2, dim)
    mag1 = C.sum(input1 * input1, dim) + eps
    mag2 = C.sum(input2 * input2, dim) + eps
    cos = prod / _sqrt(mag1 * mag2)
    zero = C.zeros_like(cos)
    pos = _where(target == 1, 1.0 - cos, zero)
    neg = _where(target == -1, _clamp_min0(cos - margin), zero)
    return _reduce(pos + neg, reduction)


def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``max(0, margin + d(a, p) - d(a, n))`` with ``d`` the ``pairwise_distance``; with
    ``swap`` the negative distance is ``min(d(a, n), d(p, n))``."""
    reduction = _reduction(size_average, reduce, reduction)
    a, pos, neg = _t(anchor), _t(positive), _t(negative)
    if not a.ndim == pos.ndim == neg.ndim:
        raise RuntimeError(
            f"The anchor, positive, and negative tensors are expected to have the same number "
            f"of dimensions, but got: anchor {a.ndim}D, positive {pos.ndim}D, and negative "
            f"{neg.ndim}D inputs"
        )
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")

    def dist(x: Tensor, y: Tensor) -> Tensor:
        return _pairwise_distance(x, y, p, eps)

    return _triplet(a, pos, neg, dist, margin, swap, reduction)


def _triplet(
    a: Tensor,
    pos: Tensor,
    neg: Tensor,
    dist: Callable[[Tensor, Tensor], Tensor],
    margin: float,
    swap: bool,
    reduction: str,
) -> Tensor:
    d_pos = dist(a, pos)
    d_neg = dist(a, neg)
    if swap:
        d_neg = _F["minimum"](d_neg, dist(pos, neg))
    return _reduce(_clamp_min0(margin + d_pos - d_neg), reduction)


def triplet_margin_with_distance_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    distance_function: Callable[[Tensor, Tensor], Tensor] | None = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """``triplet_margin_loss`` with any ``distance_function`` (default
    ``pairwise_distance``)."""
    _check_reduction(reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    a, pos, neg = _t(anchor), _t(positive), _t(negative)
    if not a.ndim == pos.ndim == neg.ndim:
        raise RuntimeError(
            f"The anchor, positive, and negative tensors are expected to have the same number "
            f"of dimensions, but got: anchor {a.ndim}D, positive {pos.ndim}D, and negative "
            f"{neg.ndim}D inputs"
        )
    dist = _pairwise_distance if distance_function is None else distance_function
    return _triplet(a, pos, neg, dist, margin, swap, reduction)


def poisson_nll_loss(
    input: Tensor,
    target: Tensor,
    log_input: bool = True,
    full: bool = False,
    size_average: Any = None,
    eps: float = 1e-8,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``exp(x) - t x`` (``log_input``) or ``x - t log(x + eps)``; with ``full`` plus
    Stirling's ``t log t - t + log(2 pi t) / 2`` where ``t > 1``."""
    reduction = _reduction(size_average, reduce, reduction)
    input, target = _t(input), _t(target)
    loss = exp(input) - target * input if log_input else input - target * log(input + eps)
    if full:
        big = target > 1
        safe = _where(big, target, C.ones_like(target))
        stirling = safe * log(safe) - safe + 0.5 * log(2 * math.pi * safe)
        loss = loss + _where(big, stirling, C.zeros_like(stirling))
    return _reduce(loss, reduction)


def gaussian_nll_loss(
    input: Tensor,
    target: Tensor,
    var: Tensor | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    """``(log(max(var, eps)) + (x - t)^2 / max(var, eps)) / 2`` (plus ``log(2 pi) / 2`` with
    ``full``). As PyTorch's, the clamp of ``var`` is outside autograd: its gradient is that
    of the unclamped expression at the clamped value."""
    input, target = _t(input), _t(target)
    if not isinstance(var, Tensor):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = C.full_like(input, float(var))
    elif var._data.size and np.any(var._data < 0):
        raise ValueError("var has negative entry/entries")
    in_shape, v_shape = tuple(input.shape), tuple(var.shape)
    if v_shape != in_shape:
        if in_shape[:-1] == v_shape:  # homoscedastic over the last axis
            var = C.unsqueeze(var, -1)
        elif not (
            len(in_shape) == len(v_shape)
            and sum(v for i, v in zip(in_shape, v_shape, strict=True) if i != v) == 1
        ):  # one axis of size 1 to broadcast: else wrong
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    # the clamp shifts the value only: d/dvar of the result is that at the clamped point
    var = var + (C.clamp(var, min=eps) - var).detach()
    d = input - target
    loss = 0.5 * (log(var) + d * d / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def _int_array(name: str, v: Any) -> np.ndarray:
    a = np.asarray(v._data if isinstance(v, Tensor) else v)
    if a.dtype.kind not in "iu":
        raise RuntimeError(f"ctc_loss: {name} must be integers, got dtype {a.dtype}")
    return a.astype(np.int64)


def ctc_loss(
    log_probs: Tensor,
    targets: Any,
    input_lengths: Any,
    target_lengths: Any,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> Tensor:
    """Connectionist temporal classification loss (Graves et al. 2006): ``-log`` of the summed
    probability of every alignment of each target to its input, by the forward (alpha)
    recursion over the target with blanks interleaved, in log space. ``log_probs`` is
    (T, N, C) or (T, C); ``targets`` (N, S) padded or the targets concatenated (1-d).
    ``'mean'`` divides each loss by its target length, then averages over the batch. An
    impossible alignment gives ``inf`` (0 with ``zero_infinity``).

    The gradient is the derivative with respect to ``log_probs``. PyTorch's is not: it
    assumes ``log_probs`` came out of ``log_softmax`` and adds ``exp(log_probs)`` (its rows
    sum to 0); after a ``log_softmax`` both give the same gradient to the logits."""
    _check_reduction(reduction)
    lp = _t(log_probs)
    unbatched = lp.ndim == 2
    if lp.ndim not in (2, 3):
        raise RuntimeError(
            f"ctc_loss: expected log_probs of shape (T, N, C) or (T, C), got {list(lp.shape)}"
        )
    if unbatched:
        lp = C.unsqueeze(lp, 1)
    n_t, n, n_c = lp.shape
    if not 0 <= blank < n_c:
        raise RuntimeError("blank must be in label range")
    tgt = _int_array("targets", targets)
    in_len = _int_array("input_lengths", input_lengths).reshape(-1)
    tg_len = _int_array("target_lengths", target_lengths).reshape(-1)
    if unbatched:
        tgt = tgt.reshape(1, -1)
    if in_len.size != n or tg_len.size != n:
        raise RuntimeError(
            f"ctc_loss: input_lengths and target_lengths must have {n} entries (the batch), got "
            f"{in_len.size} and {tg_len.size}"
        )
    if np.any(in_len > n_t) or np.any(in_len < 0):
        bad = in_len[(in_len > n_t) | (in_len < 0)][0]
        raise RuntimeError(
            f"Expected input_lengths to have value at most {n_t}, but got value {bad}"
        )
    if tgt.ndim == 1:  # concatenated targets
        if tg_len.sum() > tgt.size:
            raise RuntimeError("ctc_loss: target_lengths sum to more than the targets hold")
        starts = np.concatenate(([0], np.cumsum(tg_len)[:-1]))
        rows = [tgt[a : a + k] for a, k in zip(starts, tg_len, strict=True)]
    else:
        if tgt.shape[0] != n or np.any(tg_len > tgt.shape[1]) or np.any(tg_len < 0):
            raise RuntimeError(
                f"Expected tensor to have size at least {int(tg_len.max(initial=0))} at "
                f"dimension 1, but got size {tgt.shape[1] if tgt.ndim > 1 else 0} for targets "
                f"of shape {list(tgt.shape)}"
            )
        rows = [tgt[b, :k] for b, k in enumerate(tg_len)]
    s_max = int(tg_len.max(initial=0))
    n_ext = 2 * s_max + 1
    # extended labels: blank, l_1, blank, l_2, ..., blank (padded with blanks)
    ext = np.full((n, n_ext), blank, dtype=np.int64)
    for b, r in enumerate(rows):
        ext[b, 1 : 2 * len(r) : 2] = r
    if np.any((ext < 0) | (ext >= n_c)):
        raise RuntimeError(f"ctc_loss: target labels must be in [0, {n_c})")
    # the skip from s - 2 to s: to a label that differs from the label two slots back
    skip = np.zeros((n, n_ext), dtype=bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    # each time step needs one label, and a repeat needs a blank between: the least length
    repeats = np.array([int(np.sum(r[1:] == r[:-1])) for r in rows], dtype=np.int64)
    feasible = in_len >= tg_len + repeats
    # a finite stand-in for log 0: exp() of it underflows to exactly 0, so unreachable states
    # add nothing to the values nor the gradients (log 0 itself would give 0 * inf = nan)
    neg = -1e30 if lp.dtype == np.float64 else -1e30 / 1e8
    emit = C.take_along_axis(lp, Tensor._wrap(np.broadcast_to(ext, (n_t, n, n_ext)).copy()), 2)
    start = np.full((n, n_ext), neg, dtype=lp.dtype)
    start[:, 0] = 0.0
    if n_ext > 1:
        start[:, 1] = np.where(tg_len > 0, 0.0, neg)
    alpha = C.select(emit, 0, 0) + Tensor._wrap(start)
    pad1 = Tensor._wrap(np.full((n, 1), neg, dtype=lp.dtype))
    pad2 = Tensor._wrap(np.full((n, 2), neg, dtype=lp.dtype))
    skip_t = Tensor._wrap(skip)
    neg_t = Tensor._wrap(np.full((n, n_ext), neg, dtype=lp.dtype))
    alphas = [alpha]
    for t in range(1, n_t):
        from_prev = C.cat([pad1, C.narrow(alpha, 1, 0, n_ext - 1)], 1)
        from_skip = neg_t
        if n_ext > 2:
            from_skip = _where(skip_t, C.cat([pad2, C.narrow(alpha, 1, 0, n_ext - 2)], 1), neg_t)
        alpha = C.select(emit, 0, t) + C.logsumexp(C.stack([alpha, from_prev, from_skip], -1), -1)
        alphas.append(alpha)
    table = C.reshape(C.stack(alphas, 0), (-1,))  # (T * N * n_ext,)
    t_end = np.maximum(in_len - 1, 0)
    last = 2 * tg_len  # the final blank; the final label is one before
    base = (t_end * n + np.arange(n)) * n_ext
    end_blank = C.index_select(table, 0, Tensor._wrap(base + last))
    end_label = C.index_select(table, 0, Tensor._wrap(base + np.maximum(last - 1, 0)))
    end_label = _where(Tensor._wrap(tg_len > 0), end_label, C.full_like(end_label, neg))
    loss = -C.logsumexp(C.stack([end_blank, end_label], -1), -1)
    # no input and no target: the empty alignment, probability 1
    loss = _where(Tensor._wrap(in_len == 0), C.zeros_like(loss), loss)
    ok = Tensor._wrap(feasible)
    if zero_infinity:
        loss = _where(ok, loss, C.zeros_like(loss))
    else:
        loss = _where(ok, loss, C.full_like(loss, math.inf))
    if reduction == "mean":
        lengths = Tensor._wrap(np.maximum(tg_len, 1).astype(lp.dtype))
        return C.mean(loss / lengths)
    if reduction == "sum":
        return C.sum(loss)
    return C.reshape(loss, ()) if unbatched else loss
