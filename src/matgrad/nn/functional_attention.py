"""``nn.functional``'s attention functions: ``scaled_dot_product_attention``,
``multi_head_attention_forward`` and ``gumbel_softmax``, as PyTorch's, composed of matgrad's
ops (matmul, softmax, where, ...), so their derivatives come from the rule table.

(``nn.functional`` imports this module; it cannot import ``nn.functional`` back, so the few
helpers it shares with it, linear and dropout, are written here on the ops directly.)"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..core.tensor_base import as_tensor
from ..creation import default_generator
from ..ops import composite as C
from ..ops.bindings import FUNCTIONS as _F
from ..tensor import Tensor

__all__ = ["gumbel_softmax", "multi_head_attention_forward", "scaled_dot_product_attention"]

_where = _F["where"]


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else as_tensor(x)


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    out = C.matmul(x, weight.mT)
    return out if bias is None else out + bias


def _dropout(x: Tensor, p: float) -> Tensor:
    """Inverted dropout with matgrad's generator (``matgrad.manual_seed``): each element
    zeroed with probability ``p``, the others scaled by ``1/(1-p)``."""
    if p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = default_generator().random(tuple(x.shape)) >= p
    return x * Tensor._wrap(keep.astype(x.dtype) / np.asarray(1.0 - p, dtype=x.dtype))


def _check_p(name: str, p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: dropout probability has to be between 0 and 1, but got {p}")
    return p


def _safe_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last axis, with rows that are -inf throughout giving 0 (not NaN), as
    PyTorch's SDPA does. Those rows are replaced before the softmax so that no NaN reaches
    the backward pass either."""
    dead = np.all(np.isneginf(scores._data), axis=-1, keepdims=True)
    if not dead.any():
        return C.softmax(scores, -1)
    dead_t = Tensor._wrap(dead)
    return _where(dead_t, 0.0, C.softmax(_where(dead_t, 0.0, scores), -1))


# -- scaled dot-product attention ------------------------------------------------------------
def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """``softmax(q k^T * scale + bias) v`` over the last two axes (leading axes broadcast),
    with ``scale = 1/sqrt(E)`` by default (Vaswani et al., 2017).

    ``attn_mask``: a bool mask (True: the position takes part) or a float mask added to the
    scores, broadcastable to (..., L, S). ``is_causal``: only positions ``s <= l`` take part
    (the upper-left aligned lower triangle, also for L != S); it cannot be combined with
    ``attn_mask`` (RuntimeError, as PyTorch). A row where nothing takes part gives zeros.
    ``dropout_p`` applies dropout to the attention weights (always: pass 0 in eval mode).
    ``enable_gqa``: key and value heads (axis -3) are repeated to the query's head count.
    """
    q, k, v = _t(query), _t(key), _t(value)
    name = "scaled_dot_product_attention"
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise RuntimeError(
            f"{name}: Expected query, key, and value to all be at least 2 dimensional, but got "
            f"query.dim: {q.ndim} key.dim: {k.ndim} and value.dim: {v.ndim} instead."
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise RuntimeError(
            f"{name}: Expected query, key, and value to have the same dtype, but got "
            f"query.dtype: {q.dtype} key.dtype: {k.dtype} and value.dtype: {v.dtype} instead."
        )
    if q.dtype.kind != "f":
        raise RuntimeError(f"{name}: expected floating point inputs, got {q.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise RuntimeError(
            f"{name}: query and key must have the same embedding size (last axis), got "
            f"query {list(q.shape)} and key {list(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise RuntimeError(
            f"{name}: key and value must have the same sequence length (axis -2), got "
            f"key {list(k.shape)} and value {list(v.shape)}"
        )
    dropout_p = _check_p(name, dropout_p)
    if is_causal and attn_mask is not None:
        raise RuntimeError(f"{name}: Explicit attn_mask should not be set when is_causal=True")
    if enable_gqa and q.ndim >= 3 and k.ndim >= 3:
        k, v = _repeat_heads(name, q, k), _repeat_heads(name, q, v)
    try:
        batch = np.broadcast_shapes(tuple(q.shape[:-2]), tuple(k.shape[:-2]), tuple(v.shape[:-2]))
    except ValueError:
        raise RuntimeError(
            f"{name}: the batch axes of query {list(q.shape)}, key {list(k.shape)} and value "
            f"{list(v.shape)} do not broadcast"
        ) from None
    n_l, n_s = q.shape[-2], k.shape[-2]
    factor = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    scores = C.matmul(q, k.mT) * factor
    if is_causal:
        scores = _where(Tensor._wrap(np.tri(n_l, n_s, dtype=bool)), scores, -math.inf)
    if attn_mask is not None:
        mask = _t(attn_mask)
        full = (*batch, n_l, n_s)
        try:
            fits = np.broadcast_shapes(tuple(mask.shape), full) == full
        except ValueError:
            fits = False
        if not fits:
            raise RuntimeError(
                f"{name}: attn_mask of shape {list(mask.shape)} does not broadcast to the "
                f"attention weights' shape {list(full)}"
            )
        if mask.dtype == np.bool_:
            scores = _where(mask, scores, -math.inf)
        elif mask.dtype.kind == "f":
            scores = scores + (mask if mask.dtype == q.dtype else C.to_dtype(mask, q.dtype))
        else:
            raise RuntimeError(
                f"{name}: Expected attn_mask dtype to be bool or float or to match query "
                f"dtype, but got attn_mask.dtype: {mask.dtype} and query.dtype: {q.dtype} "
                "instead."
            )
    weights = _dropout(_safe_softmax(scores), dropout_p)
    return C.matmul(weights, v)


def _repeat_heads(name: str, q: Tensor, kv: Tensor) -> Tensor:
    """``kv`` with each head (axis -3) repeated ``Hq / Hkv`` times, as ``repeat_interleave``."""
    hq, hkv = q.shape[-3], kv.shape[-3]
    if hq % hkv:
        raise RuntimeError(
            f"{name}: with enable_gqa the number of query heads ({hq}) must be a multiple of "
            f"the number of key/value heads ({hkv})"
        )
    if hq == hkv:
        return kv
    lead, (s, e) = tuple(kv.shape[:-3]), tuple(kv.shape[-2:])
    rep = C.expand(C.unsqueeze(kv, -3), (*lead, hkv, hq // hkv, s, e))
    return C.reshape(rep, (*lead, hq, s, e))


# -- multi-head attention --------------------------------------------------------------------
def _canonical_mask(
    mask: Any, name: str, other: Any, other_name: str, dtype: np.dtype
) -> Tensor | None:
    """A bool mask (True: masked out) as a float one (-inf where True); a float one as is."""
    if mask is None:
        return None
    mask = _t(mask)
    if mask.dtype != np.bool_ and mask.dtype.kind != "f":
        raise AssertionError(f"only bool and floating types of {name} are supported")
    if other is not None and _t(other).dtype != mask.dtype:
        warnings.warn(
            f"Support for mismatched {name} and {other_name} is deprecated. Use same type for "
            "both instead.",
            stacklevel=3,
        )
    if mask.dtype == np.bool_:
        return Tensor._wrap(np.where(mask._data, -np.inf, 0.0).astype(dtype))
    return mask


def _mha_shape_check(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    key_padding_mask: Tensor | None,
    attn_mask: Tensor | None,
    num_heads: int,
) -> bool:
    """PyTorch's shape rules (AssertionError, as PyTorch); True for batched input."""
    if query.ndim == 3:
        if key.ndim != 3 or value.ndim != 3:
            raise AssertionError(
                "For batched (3-D) `query`, expected `key` and `value` to be 3-D but found "
                f"{key.ndim}-D and {value.ndim}-D tensors respectively"
            )
        if key_padding_mask is not None and key_padding_mask.ndim != 2:
            raise AssertionError(
                "For batched (3-D) `query`, expected `key_padding_mask` to be `None` or 2-D but "
                f"found {key_padding_mask.ndim}-D tensor instead"
            )
        if attn_mask is not None and attn_mask.ndim not in (2, 3):
            raise AssertionError(
                "For batched (3-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D but "
                f"found {attn_mask.ndim}-D tensor instead"
            )
        return True
    if query.ndim == 2:
        if key.ndim != 2 or value.ndim != 2:
            raise AssertionError(
                "For unbatched (2-D) `query`, expected `key` and `value` to be 2-D but found "
                f"{key.ndim}-D and {value.ndim}-D tensors respectively"
            )
        if key_padding_mask is not None and key_padding_mask.ndim != 1:
            raise AssertionError(
                "For unbatched (2-D) `query`, expected `key_padding_mask` to be `None` or 1-D "
                f"but found {key_padding_mask.ndim}-D tensor instead"
            )
        if attn_mask is not None:
            if attn_mask.ndim not in (2, 3):
                raise AssertionError(
                    "For unbatched (2-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D "
                    f"but found {attn_mask.ndim}-D tensor instead"
                )
            expected = (num_heads, query.shape[0], key.shape[0])
            if attn_mask.ndim == 3 and tuple(attn_mask.shape) != expected:
                raise AssertionError(
                    f"Expected `attn_mask` shape to be {expected} but got {tuple(attn_mask.shape)}"
                )
        return False
    raise AssertionError(
        "query should be unbatched 2D or batched 3D tensor but received "
        f"{query.ndim}-D query tensor"
    )


def _split_heads(x: Tensor, length: int, batch_heads: int, head_dim: int) -> Tensor:
    """(length, batch, heads * head_dim) -> (batch * heads, length, head_dim)."""
    return C.transpose(C.reshape(x, (length, batch_heads, head_dim)), 0, 1)


def multi_head_attention_forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight: Tensor | None,
    in_proj_bias: Tensor | None,
    bias_k: Tensor | None,
    bias_v: Tensor | None,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: Tensor,
    out_proj_bias: Tensor | None,
    training: bool = True,
    key_padding_mask: Tensor | None = None,
    need_weights: bool = True,
    attn_mask: Tensor | None = None,
    use_separate_proj_weight: bool = False,
    q_proj_weight: Tensor | None = None,
    k_proj_weight: Tensor | None = None,
    v_proj_weight: Tensor | None = None,
    static_k: Tensor | None = None,
    static_v: Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """PyTorch's multi-head attention on sequence-first inputs: query (L, N, E) [or (L, E)],
    key (S, N, kdim), value (S, N, vdim). Project q, k, v (packed ``in_proj_weight`` or the
    separate ``*_proj_weight``), split into ``num_heads`` heads, attend, join, project by
    ``out_proj``. Masks: ``key_padding_mask`` (N, S) and ``attn_mask`` (L, S) or
    (N * num_heads, L, S), bool (True: masked out) or float (added). Returns the output
    (L, N, E) and, with ``need_weights``, the attention weights (N, L, S) averaged over the
    heads (or (N, num_heads, L, S))."""
    query, key, value = _t(query), _t(key), _t(value)
    batched = _mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:
        query, key, value = (C.unsqueeze(x, 1) for x in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = C.unsqueeze(_t(key_padding_mask), 0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    key_padding_mask = _canonical_mask(
        key_padding_mask, "key_padding_mask", attn_mask, "attn_mask", query.dtype
    )
    if is_causal and attn_mask is None:
        raise RuntimeError(
            "Need attn_mask if specifying the is_causal hint. You may use the Transformer "
            "module method `generate_square_subsequent_mask` to create this mask."
        )
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # the hint stands for the mask: SDPA applies it as is_causal
    else:
        attn_mask = _canonical_mask(attn_mask, "attn_mask", None, "", query.dtype)
        if key_padding_mask is not None:
            is_causal = False  # the merged mask is no longer causal
    if embed_dim != embed_dim_to_check:
        raise AssertionError(
            f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}"
        )
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if tuple(key.shape[:2]) != tuple(value.shape[:2]):
            raise AssertionError(
                f"key's sequence and batch dims {tuple(key.shape[:2])} do not match value's "
                f"{tuple(value.shape[:2])}"
            )
    elif tuple(key.shape) != tuple(value.shape):
        raise AssertionError(
            f"key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)}"
        )

    # in-projection
    if in_proj_bias is None:
        b_q = b_k = b_v = None
    else:
        b_q, b_k, b_v = C.chunk(in_proj_bias, 3)
    if not use_separate_proj_weight:
        if in_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is False but in_proj_weight is None")
        w_q, w_k, w_v = C.chunk(in_proj_weight, 3)
    else:
        for w_name, w in (("q", q_proj_weight), ("k", k_proj_weight), ("v", v_proj_weight)):
            if w is None:
                raise AssertionError(
                    f"use_separate_proj_weight is True but {w_name}_proj_weight is None"
                )
        w_q, w_k, w_v = q_proj_weight, k_proj_weight, v_proj_weight
        for what, w, x in (("query", w_q, query), ("key", w_k, key), ("value", w_v, value)):
            if tuple(w.shape) != (embed_dim, x.shape[-1]):
                raise AssertionError(
                    f"expecting {what} weights shape of {(embed_dim, x.shape[-1])}, but got "
                    f"{tuple(w.shape)}"
                )
    q = _linear(query, w_q, b_q)
    k = _linear(key, w_k, b_k)
    v = _linear(value, w_v, b_v)

    if attn_mask is not None:
        if attn_mask.ndim == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise RuntimeError(
                    f"The shape of the 2D attn_mask is {tuple(attn_mask.shape)}, but should be "
                    f"{(tgt_len, src_len)}."
                )
            attn_mask = C.unsqueeze(attn_mask, 0)
        elif attn_mask.ndim == 3:
            if tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, src_len):
                raise RuntimeError(
                    f"The shape of the 3D attn_mask is {tuple(attn_mask.shape)}, but should be "
                    f"{(bsz * num_heads, tgt_len, src_len)}."
                )
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.ndim} is not supported")

    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise AssertionError("bias cannot be added to static key or value.")
        k = C.cat([k, C.expand(bias_k, (1, bsz, embed_dim))])
        v = C.cat([v, C.expand(bias_v, (1, bsz, embed_dim))])
        if attn_mask is not None:
            attn_mask = C.pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = C.pad(key_padding_mask, (0, 1))
    elif bias_k is not None or bias_v is not None:
        raise AssertionError("bias_k and bias_v must both be set or both be None")

    bh = bsz * num_heads
    q = _split_heads(q, tgt_len, bh, head_dim)
    for which, static in (("k", static_k), ("v", static_v)):
        if static is not None and (
            static.shape[0] != bh or static.ndim != 3 or static.shape[2] != head_dim
        ):
            raise AssertionError(
                f"expecting static_{which} of shape ({bh}, S, {head_dim}), but got "
                f"{list(static.shape)}"
            )
    k = _split_heads(k, k.shape[0], bh, head_dim) if static_k is None else _t(static_k)
    v = _split_heads(v, v.shape[0], bh, head_dim) if static_v is None else _t(static_v)

    if add_zero_attn:
        k = C.cat([k, Tensor._wrap(np.zeros((bh, 1, head_dim), dtype=k.dtype))], 1)
        v = C.cat([v, Tensor._wrap(np.zeros((bh, 1, head_dim), dtype=v.dtype))], 1)
        if attn_mask is not None:
            attn_mask = C.pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = C.pad(key_padding_mask, (0, 1))
    src_len = k.shape[1]

    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise AssertionError(
                f"Expected key_padding_mask of shape {(bsz, src_len)}, but got "
                f"{tuple(key_padding_mask.shape)}"
            )
        kpm = C.reshape(
            C.expand(
                C.reshape(key_padding_mask, (bsz, 1, 1, src_len)), (bsz, num_heads, 1, src_len)
            ),
            (bh, 1, src_len),
        )
        attn_mask = kpm if attn_mask is None else attn_mask + kpm

    dropout_p = _check_p("multi_head_attention_forward", dropout_p) if training else 0.0

    if need_weights:
        q_scaled = q * math.sqrt(1.0 / float(head_dim))
        scores = C.matmul(q_scaled, k.mT)
        if attn_mask is not None:
            scores = attn_mask + scores
        # a plain softmax, as PyTorch's weights path: a row masked throughout is NaN
        # (silently, as there)
        with np.errstate(invalid="ignore"):
            weights = C.softmax(scores, -1)
        weights = _dropout(weights, dropout_p)
        out = C.matmul(weights, v)
        out = C.reshape(C.transpose(out, 0, 1), (tgt_len * bsz, embed_dim))
        out = C.reshape(_linear(out, out_proj_weight, out_proj_bias), (tgt_len, bsz, embed_dim))
        weights = C.reshape(weights, (bsz, num_heads, tgt_len, src_len))
        if average_attn_weights:
            weights = C.mean(weights, 1)
        if not batched:
            out, weights = C.squeeze(out, 1), C.squeeze(weights, 0)
        return out, weights

    if attn_mask is not None:
        if attn_mask.shape[0] == 1 and attn_mask.ndim == 3:
            attn_mask = C.unsqueeze(attn_mask, 0)
        else:
            attn_mask = C.reshape(attn_mask, (bsz, num_heads, -1, src_len))
    q = C.reshape(q, (bsz, num_heads, tgt_len, head_dim))
    k = C.reshape(k, (bsz, num_heads, src_len, head_dim))
    v = C.reshape(v, (bsz, num_heads, src_len, head_dim))
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    out = C.reshape(C.permute(out, 2, 0, 1, 3), (bsz * tgt_len, embed_dim))
    out = C.reshape(_linear(out, out_proj_weight, out_proj_bias), (tgt_len, bsz, embed_dim))
    return (out if batched else C.squeeze(out, 1)), None


# -- Gumbel-softmax --------------------------------------------------------------------------
def gumbel_softmax(
    logits: Tensor, tau: float = 1.0, hard: bool = False, eps: float = 1e-10, dim: int = -1
) -> Tensor:
    """A sample of the Gumbel-softmax (concrete) distribution: ``softmax((logits + g) / tau)``
    with ``g = -log(E)``, ``E ~ Exponential(1)`` i.i.d. (standard Gumbel; Jang et al., 2016;
    Maddison et al., 2016), from matgrad's generator. ``hard``: the one-hot vector of the
    sample's argmax, differentiated as the soft sample (straight-through:
    ``y_hard - y_soft.detach() + y_soft``). ``eps`` is deprecated and unused, as in PyTorch.
    ``tau`` must be positive (PyTorch does not check; 0 gives NaN)."""
    logits = _t(logits)
    if eps != 1e-10:
        warnings.warn("`eps` parameter is deprecated and has no effect.", stacklevel=2)
    if not tau > 0:
        raise ValueError(f"gumbel_softmax: tau must be positive, got {tau}")
    if logits.dtype.kind != "f":
        raise RuntimeError(f"gumbel_softmax: expected floating point logits, got {logits.dtype}")
    gumbels = -np.log(default_generator().exponential(1.0, tuple(logits.shape)))
    y_soft = C.softmax((logits + Tensor._wrap(gumbels.astype(logits.dtype))) / tau, dim)
    if not hard:
        return y_soft
    if logits.ndim == 0:
        y_hard = np.ones((), dtype=logits.dtype)
    else:
        d = dim + logits.ndim if dim < 0 else dim  # valid: the softmax checked it
        index = np.argmax(y_soft._data, axis=d)
        y_hard = np.zeros(tuple(logits.shape), dtype=logits.dtype)
        np.put_along_axis(y_hard, np.expand_dims(index, d), 1.0, axis=d)
    return Tensor._wrap(y_hard) - y_soft.detach() + y_soft
