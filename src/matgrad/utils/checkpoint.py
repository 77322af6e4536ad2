"""``matgrad.utils.checkpoint``: recompute activations in backward instead of keeping them.

``checkpoint(fn, *args, use_reentrant=False)`` runs ``fn`` recording its graph as usual, but
under saved-tensor hooks that keep none of the tensors its nodes save: each is replaced by a
small holder. The first backward access to one of them runs ``fn`` again on the same inputs
(with the RNG state of the first run) and takes the tensors saved there, in the same order,
stopping as soon as all are found. Gradients are those of the plain run (the same nodes run,
on recomputed values of the same ops). Only the inputs of ``fn`` and its outputs stay alive
between forward and backward.

``checkpoint_sequential(functions, segments, input)`` checkpoints ``segments`` runs of a
sequence of modules (all but the last), keeping one activation per segment: with
``segments ~ sqrt(depth)``, the memory of activations falls from O(depth) to O(sqrt(depth))
layers for one more forward pass (see ``benchmarks/bench_checkpoint.py``).

``use_reentrant=True`` is PyTorch's older variant: ``fn`` runs under ``no_grad`` and backward
reruns it and calls ``backward`` on it (so it works with ``.backward()`` only).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from ..autograd.function import Function, FunctionCtx
from ..autograd.graph import saved_tensors_hooks
from ..core import engine as _engine
from ..core.grad_mode import enable_grad, no_grad
from ..creation import default_generator
from ..tensor import Tensor

__all__ = ["CheckpointError", "checkpoint", "checkpoint_sequential", "noop_context_fn"]


class CheckpointError(RuntimeError):
    """The recomputation did not save what the first run saved (a function that depends on
    more than its inputs, or changed inputs)."""


def noop_context_fn() -> tuple[
    contextlib.AbstractContextManager, contextlib.AbstractContextManager
]:
    """The default ``context_fn``: no context around the forward run or the recomputation."""
    return contextlib.nullcontext(), contextlib.nullcontext()


# -- the RNG state: dropout inside fn draws the same masks when recomputed -------------------------
def _rng_state() -> Any:
    return copy.deepcopy(default_generator().bit_generator.state)


@contextlib.contextmanager
def _forked_rng(state: Any, enabled: bool) -> Any:
    if not enabled:
        yield
        return
    generator = default_generator().bit_generator
    current = generator.state
    generator.state = state
    try:
        yield
    finally:
        generator.state = current


def _check_use_reentrant(use_reentrant: bool | None, what: str) -> bool:
    if use_reentrant is None:
        warnings.warn(
            f"{what}: the use_reentrant parameter should be passed explicitly. "
            "use_reentrant=False is recommended (it works with autograd.grad, keyword "
            "arguments and backward inside the function); the default, as PyTorch's, is "
            "use_reentrant=True.",
            stacklevel=3,
        )
        return True
    return bool(use_reentrant)


def checkpoint(
    function: Callable[..., Any],
    *args: Any,
    use_reentrant: bool | None = None,
    context_fn: Callable[[], tuple[Any, Any]] = noop_context_fn,
    determinism_check: str = "default",
    debug: bool = False,
    early_stop: bool = True,
    **kwargs: Any,
) -> Any:
    """``function(*args, **kwargs)``, whose saved activations are recomputed in backward.

    ``preserve_rng_state`` (default True) reruns with the RNG state of the first run;
    ``determinism_check="default"`` compares the shapes and dtypes of the recomputed tensors
    with the first run's (``"none"``: no check); ``early_stop`` stops the recomputation once
    every saved tensor is found; ``context_fn`` returns two context managers, for the first
    run and for the recomputation."""
    use_reentrant = _check_use_reentrant(use_reentrant, "matgrad.utils.checkpoint")
    preserve = bool(kwargs.pop("preserve_rng_state", True))
    if determinism_check not in ("default", "none"):
        raise ValueError(
            f"determinism_check should be one of ['default', 'none'], but got {determinism_check!r}"
        )
    if use_reentrant:
        if kwargs:
            raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))
        if context_fn is not noop_context_fn or debug:
            raise ValueError(
                "Passing `context_fn` or `debug` is only supported when use_reentrant=False."
            )
        return _CheckpointFunction.apply(function, preserve, *args)
    return _checkpoint_without_reentrant(
        function, preserve, context_fn, determinism_check, early_stop, args, kwargs
    )


# -- use_reentrant=False: saved-tensor hooks ------------------------------------------------------
class _Holder:
    """Stands in a node for one saved tensor of a checkpointed function."""

    __slots__ = ("__weakref__",)


class _StopRecomputation(Exception):  # noqa: N818 - a signal, not an error
    pass


# ids for recomputations outside a backward pass (grad_fn._saved_x of a checkpointed node)
_OUTSIDE = itertools.count(-2, -1)


class _Frame:
    """One checkpointed call: how to rerun it, the holders of what it saved (weakly: a node
    freed by backward drops its holder) with their shapes and dtypes, and per backward pass
    the recomputed tensors not used yet."""

    def __init__(
        self,
        function: Callable[..., Any],
        args: tuple,
        kwargs: dict,
        preserve: bool,
        recompute_context: Any,
        check: bool,
        early_stop: bool,
    ) -> None:
        self.function, self.args, self.kwargs = function, args, kwargs
        self.preserve = preserve
        self.rng = _rng_state() if preserve else None
        self.recompute_context = recompute_context
        self.check, self.early_stop = check, early_stop
        self.versions = [(i, a, a._version) for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.holders: list[weakref.ref] = []
        self.metadata: list[tuple[tuple[int, ...], Any]] = []
        self.recomputed: dict[int, dict[_Holder, Tensor]] = {}

    def pack(self, x: Tensor) -> _Holder:
        holder = _Holder()
        self.holders.append(weakref.ref(holder))
        self.metadata.append((tuple(x.shape), x.dtype))
        return holder

    def unpack(self, holder: _Holder) -> Tensor:
        task_id = _engine.current_graph_task_id()
        if task_id == -1:  # outside backward (grad_fn._saved_x): a recomputation of its own
            task_id = next(_OUTSIDE)
        store = self.recomputed.get(task_id)
        if store is None:
            store = self._recompute(task_id)
        if holder not in store:
            raise CheckpointError(
                "matgrad.utils.checkpoint: a saved tensor of the checkpointed function was "
                "unpacked twice in one backward pass (or the recomputation stopped before it)"
            )
        value = store.pop(holder)
        if task_id < -1 or not store:
            self.recomputed.pop(task_id, None)
        return value

    def _recompute(self, task_id: int) -> dict[_Holder, Tensor]:
        for i, a, version in self.versions:
            if a._version != version:
                raise RuntimeError(
                    f"matgrad.utils.checkpoint: argument {i} of the checkpointed function "
                    f"(shape {tuple(a.shape)}) was modified in place after the forward pass "
                    f"(version {version} -> {a._version}); the recomputation would use the "
                    "new values. clone() it before modifying it."
                )
        store: dict[_Holder, Tensor] = {}
        self.recomputed[task_id] = store
        if task_id >= 0:  # dropped when the backward pass ends, whatever it used
            _engine.queue_callback(lambda: self.recomputed.pop(task_id, None))
        count = [0]
        n = len(self.holders)
        mismatches: list[str] = []

        def pack(x: Tensor) -> Tensor:
            k = count[0]
            count[0] += 1
            if k >= n:
                raise CheckpointError(
                    "matgrad.utils.checkpoint: trying to save more tensors during "
                    "recomputation than during the original forward pass (does the function "
                    "depend on something besides its inputs?)"
                )
            if self.check and (tuple(x.shape), x.dtype) != self.metadata[k]:
                mismatches.append(
                    f"saved tensor {k}: {self.metadata[k][0]} {self.metadata[k][1]} in the "
                    f"forward pass, {tuple(x.shape)} {x.dtype} recomputed"
                )
            holder = self.holders[k]()
            if holder is not None:  # (None: its node was freed by an earlier backward)
                store[holder] = x.detach()
            if self.early_stop and count[0] == n:
                raise _StopRecomputation
            return x.detach()

        with contextlib.ExitStack() as stack:
            stack.enter_context(_forked_rng(self.rng, self.preserve))
            stack.enter_context(saved_tensors_hooks(pack, lambda x: x))
            stack.enter_context(enable_grad())
            stack.enter_context(self.recompute_context)
            stack.enter_context(contextlib.suppress(_StopRecomputation))  # early stop
            self.function(*self.args, **self.kwargs)
        if mismatches:
            raise CheckpointError(
                "matgrad.utils.checkpoint: recomputed values for the following tensors have "
                "different metadata than during the forward pass:\n" + "\n".join(mismatches)
            )
        if count[0] != n:
            raise CheckpointError(
                "matgrad.utils.checkpoint: a different number of tensors was saved during the "
                f"original forward ({n}) and the recomputation ({count[0]})"
            )
        return store


def _checkpoint_without_reentrant(
    function: Callable[..., Any],
    preserve: bool,
    context_fn: Callable[[], tuple[Any, Any]],
    determinism_check: str,
    early_stop: bool,
    args: tuple,
    kwargs: dict,
) -> Any:
    forward_context, recompute_context = context_fn()
    frame = _Frame(
        function,
        args,
        kwargs,
        preserve,
        recompute_context,
        determinism_check == "default",
        early_stop,
    )
    with saved_tensors_hooks(frame.pack, frame.unpack), forward_context:
        return function(*args, **kwargs)


# -- use_reentrant=True: a Function that reruns its function and calls backward -------------------
class _CheckpointFunction(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, run_function: Callable, preserve: bool, *args: Any) -> Any:
        ctx.run_function = run_function
        ctx.preserve = preserve
        ctx.rng = _rng_state() if preserve else None
        ctx.inputs = [None if isinstance(a, Tensor) else a for a in args]
        ctx.tensor_indices = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        ctx.save_for_backward(*(a for a in args if isinstance(a, Tensor)))
        with no_grad():
            return run_function(*args)

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Any) -> tuple[Any, ...]:
        task = _engine.current_graph_task()
        if task is None or not task.accumulate or task.targets:
            raise RuntimeError(
                "When use_reentrant=True, matgrad.utils.checkpoint is incompatible with "
                ".grad() or passing an `inputs` parameter to .backward(). Set "
                "use_reentrant=False, or call .backward() without `inputs`."
            )
        inputs = list(ctx.inputs)
        detached = []
        for i, t in zip(ctx.tensor_indices, ctx.saved_tensors, strict=True):
            d = t.detach()
            if t.requires_grad:
                d.requires_grad_(True)
            inputs[i] = d
            detached.append(d)
        with _forked_rng(ctx.rng, ctx.preserve), enable_grad():
            outputs = ctx.run_function(*inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        outs, grads = [], []
        for o, g in zip(outputs, grad_outputs, strict=False):
            if isinstance(o, Tensor) and o.requires_grad:
                outs.append(o)
                grads.append(g)
        if not outs:
            raise RuntimeError(
                "none of output has requires_grad=True, this checkpoint() is not necessary"
            )
        _engine.backward(outs, grads)
        grads_in: list[Any] = [None] * len(inputs)
        for i, d in zip(ctx.tensor_indices, detached, strict=True):
            grads_in[i] = d.grad
        return (None, None, *grads_in)


def checkpoint_sequential(
    functions: Any,
    segments: int,
    input: Any,  # noqa: A002 - PyTorch's name
    use_reentrant: bool | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``functions`` (an ``nn.Sequential`` or a list of modules/functions) one after the
    other on ``input``, in ``segments`` pieces: all but the last are checkpointed, so only
    their inputs are kept for backward."""
    use_reentrant = _check_use_reentrant(use_reentrant, "matgrad.utils.checkpoint_sequential")
    preserve = kwargs.pop("preserve_rng_state", True)
    if kwargs:
        raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))
    children = getattr(functions, "children", None)
    fns = list(children()) if callable(children) else list(functions)
    if not isinstance(segments, int) or segments < 1:
        raise ValueError(
            f"checkpoint_sequential: segments must be a positive int, got {segments!r}"
        )

    def run(start: int, end: int) -> Callable[[Any], Any]:
        def forward(x: Any) -> Any:
            for j in range(start, end + 1):
                x = fns[j](x)
            return x

        return forward

    size = len(fns) // segments
    end = -1
    for start in range(0, size * (segments - 1), size) if size else ():
        end = start + size - 1
        input = checkpoint(
            run(start, end), input, use_reentrant=use_reentrant, preserve_rng_state=preserve
        )
    return run(end + 1, len(fns) - 1)(input)
