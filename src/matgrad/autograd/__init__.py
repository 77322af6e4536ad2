"""Reverse- and forward-mode automatic differentiation (``matgrad.autograd``)."""

from ..core.engine import backward, grad
from ..core.grad_mode import enable_grad, inference_mode, no_grad, set_grad_enabled
from ..core.graph import AccumulateGrad, BatchingUnsupported, Node
from . import forward_ad, functional
from .function import Function, FunctionCtx
from .gradcheck import GradcheckError, gradcheck, gradgradcheck

__all__ = [
    "AccumulateGrad",
    "BatchingUnsupported",
    "Function",
    "FunctionCtx",
    "GradcheckError",
    "Node",
    "backward",
    "enable_grad",
    "forward_ad",
    "functional",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "inference_mode",
    "no_grad",
    "set_grad_enabled",
]
