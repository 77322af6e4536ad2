"""Check analytical derivatives against central finite differences.

``gradcheck`` compares the Jacobian that reverse mode (and, optionally, forward mode)
computes with one from central differences in float64, and reports the worst element.
``gradgradcheck`` does the same for the gradient of the gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..core import grad_mode as _grad_mode
from ..core.engine import grad as autograd_grad
from ..tensor import Tensor


class GradcheckError(RuntimeError):
    """A computed derivative disagrees with finite differences."""


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, list | tuple) else (x,)


def _outputs(func: Callable, inputs: Sequence[Any]) -> tuple[Tensor, ...]:
    out = _as_tuple(func(*inputs))
    return tuple(o for o in out if isinstance(o, Tensor) and o.dtype.kind in "fc")


def _is_complex(x: Any) -> bool:
    return x.dtype.kind == "c"


def _real_width(x: Tensor) -> int:
    """How many real numbers ``x`` holds: 2 per complex element."""
    return x.numel() * (2 if _is_complex(x) else 1)


def _as_real(values: np.ndarray, complex_layout: bool) -> np.ndarray:
    """A flat vector of real numbers: (Re z_0, Im z_0, Re z_1, ...) for complex values."""
    flat = np.asarray(values).reshape(-1)
    if complex_layout:
        return np.stack([flat.real, flat.imag], axis=-1).reshape(-1)
    return flat.real if np.iscomplexobj(flat) else flat


def _directions(x: Tensor) -> list[tuple[int, Any]]:
    """The real coordinates of ``x``: (flat element, unit step) pairs, the real step 1 and, for
    a complex element, the imaginary step 1j (PyTorch's gradcheck perturbs both parts)."""
    steps = (1.0, 1j) if _is_complex(x) else (1.0,)
    return [(k, step) for k in range(x.numel()) for step in steps]


def numerical_jacobian(func: Callable, inputs: Sequence[Any], eps: float = 1e-6) -> list[list]:
    """J[i][j]: d vec(output j) / d vec(input i) as a (numel_out, numel_in) matrix, by central
    differences, perturbing each input element in place. Complex inputs and outputs count as
    pairs of real numbers (Re, Im, interleaved): a complex function is checked as the real map
    it is, through its real and imaginary perturbations."""
    # grad mode stays on: the function may itself differentiate (gradgradcheck)
    with _grad_mode.enable_grad():
        base = _outputs(func, inputs)
        jac: list[list] = []
        for x in inputs:
            if not (isinstance(x, Tensor) and x.requires_grad):
                jac.append([None] * len(base))
                continue
            flat = x._data.reshape(-1)  # a view: writes reach x
            cols = [np.zeros((_real_width(o), _real_width(x))) for o in base]
            for c, (k, step) in enumerate(_directions(x)):
                orig = flat[k]
                # copies: an output may be a view of the input being perturbed
                flat[k] = orig + eps * step
                plus = [np.array(o._data) for o in _outputs(func, inputs)]
                flat[k] = orig - eps * step
                minus = [np.array(o._data) for o in _outputs(func, inputs)]
                flat[k] = orig
                for j, (p, m) in enumerate(zip(plus, minus, strict=True)):
                    cols[j][:, c] = _as_real((p - m) / (2 * eps), _is_complex(base[j]))
            jac.append(cols)
    return jac


def analytical_jacobian(func: Callable, inputs: Sequence[Any]) -> list[list]:
    """The same Jacobian from reverse mode, one vector-Jacobian product per real output
    coordinate. With PyTorch's convention (the gradient of a real L at z is dL/dx + i dL/dy),
    the seed 1 at a complex output element w gives the gradient of Re w, the seed 1j that of
    Im w (L = Re(conj(seed) w)); a complex input's gradient holds the derivatives with respect
    to its real and imaginary parts."""
    diff_inputs = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    with _grad_mode.enable_grad():
        outs = _outputs(func, inputs)
    jac = [[None] * len(outs) for _ in inputs]
    positions = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    for j, o in enumerate(outs):
        rows = {i: np.zeros((_real_width(o), _real_width(inputs[i]))) for i in positions}
        if o.requires_grad:
            for r, (k, step) in enumerate(_directions(o)):
                seed = np.zeros(o.numel(), dtype=o.dtype)
                seed[k] = step
                grads = autograd_grad(
                    o,
                    diff_inputs,
                    Tensor(seed.reshape(o.shape)),
                    retain_graph=True,
                    allow_unused=True,
                )
                for i, g in zip(positions, grads, strict=True):
                    if g is not None:
                        rows[i][r] = _as_real(g._data, _is_complex(inputs[i]))
        for i in positions:
            jac[i][j] = rows[i]
    return jac


def forward_jacobian(func: Callable, inputs: Sequence[Any]) -> list[list]:
    """The Jacobian from forward mode, one Jacobian-vector product per real input coordinate
    (the tangents 1 and 1j of a complex element)."""
    from . import forward_ad

    jac: list[list] = []
    for i, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            jac.append(None)
            continue
        cols: list[np.ndarray] | None = None
        for c, (k, step) in enumerate(_directions(x)):
            tangent = np.zeros(x.numel(), dtype=x.dtype)
            tangent[k] = step
            with forward_ad.dual_level():
                args = list(inputs)
                args[i] = forward_ad.make_dual(x.detach(), Tensor(tangent.reshape(x.shape)))
                outs = _outputs(func, args)
                if cols is None:
                    cols = [np.zeros((_real_width(o), _real_width(x))) for o in outs]
                for j, o in enumerate(outs):
                    t = forward_ad.unpack_dual(o).tangent
                    if t is not None:
                        cols[j][:, c] = _as_real(t._data, _is_complex(o))
        jac.append(cols)
    return jac


def _compare(kind: str, numerical: list, analytical: list, atol: float, rtol: float) -> str | None:
    """None when every block agrees within ``atol + rtol * |numerical|``; else a report of the
    worst element. NaN agrees only with NaN."""
    for i, (num_i, ana_i) in enumerate(zip(numerical, analytical, strict=True)):
        if num_i is None or ana_i is None:
            continue
        for j, (n, a) in enumerate(zip(num_i, ana_i, strict=True)):
            if n is None or a is None:
                continue
            if n.shape != a.shape:
                return (
                    f"{kind}: Jacobian shapes differ for output {j}, input {i}: "
                    f"{n.shape} vs {a.shape}"
                )
            excess = np.abs(n - a) - (atol + rtol * np.abs(n))
            excess = np.where(np.isnan(n) & np.isnan(a), -np.inf, excess)  # both NaN: agree
            excess = np.where(np.isnan(excess), np.inf, excess)  # one NaN: disagree
            if excess.size == 0 or excess.max() <= 0:
                continue
            r, c = np.unravel_index(int(np.argmax(excess)), n.shape)
            return (
                f"{kind} Jacobian mismatch for output {j} with respect to input {i}: "
                f"worst at (output element {r}, input element {c}): "
                f"numerical {n[r, c]:.6g}, analytical {a[r, c]:.6g} "
                f"(|diff| {abs(n[r, c] - a[r, c]):.3g}, atol {atol}, rtol {rtol})\n"
                f"numerical:\n{n}\nanalytical:\n{a}"
            )
    return None


def gradcheck(
    func: Callable[..., Any],
    inputs: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    check_forward_ad: bool = False,
    check_backward_ad: bool = True,
    **_ignored: Any,
) -> bool:
    """True when reverse mode (and forward mode, with ``check_forward_ad``) agrees with
    central finite differences for every input that requires grad (use float64, or
    complex128: complex inputs are perturbed in their real and imaginary parts, complex
    outputs compared in both, as PyTorch's ``gradcheck(fast_mode=False)``)."""
    inputs = _as_tuple(inputs)
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad and x.dtype not in (np.float64, np.complex128):
            import warnings

            warnings.warn(
                f"gradcheck: input of dtype {x.dtype} is not float64 or complex128; finite "
                "differences "
                "will be inaccurate",
                stacklevel=2,
            )
    numerical = numerical_jacobian(func, inputs, eps)
    failures = []
    if check_backward_ad:
        msg = _compare("backward", numerical, analytical_jacobian(func, inputs), atol, rtol)
        if msg:
            failures.append(msg)
    if check_forward_ad:
        fwd = forward_jacobian(func, inputs)
        msg = _compare("forward", numerical, fwd, atol, rtol)
        if msg:
            failures.append(msg)
    if failures:
        if raise_exception:
            raise GradcheckError("\n".join(failures))
        return False
    return True


def gradgradcheck(
    func: Callable[..., Any],
    inputs: Any,
    grad_outputs: Any = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    seed: int = 0,
    **_ignored: Any,
) -> bool:
    """gradcheck of the map (inputs, v) -> vjp(func, inputs, v), i.e. of second derivatives,
    with the backward pass recorded (``create_graph=True``)."""
    inputs = _as_tuple(inputs)
    with _grad_mode.enable_grad():
        outs = _outputs(func, inputs)
    rng = np.random.default_rng(seed)
    if grad_outputs is None:

        def draw(o: Tensor) -> np.ndarray:
            v = rng.standard_normal(o.shape)
            return v + 1j * rng.standard_normal(o.shape) if _is_complex(o) else v

        grad_outputs = tuple(Tensor(draw(o), requires_grad=True) for o in outs)
    grad_outputs = _as_tuple(grad_outputs)
    n = len(inputs)
    positions = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]

    def first_derivative(*args: Any) -> tuple[Tensor, ...]:
        outs = _outputs(func, args[:n])
        diff = [args[i] for i in positions]
        live = [(o, v) for o, v in zip(outs, args[n:], strict=True) if o.requires_grad]
        if not live:
            return ()
        grads = autograd_grad(
            [o for o, _ in live],
            diff,
            [v for _, v in live],
            create_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        return tuple(grads)

    return gradcheck(
        first_derivative,
        inputs + grad_outputs,
        eps=eps,
        atol=atol,
        rtol=rtol,
        raise_exception=raise_exception,
    )
