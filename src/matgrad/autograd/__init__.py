"""Reverse- and forward-mode automatic differentiation (``matgrad.autograd``)."""

from ..core.engine import autograd_backward as backward
from ..core.engine import grad
from ..core.grad_mode import enable_grad, inference_mode, no_grad, set_grad_enabled
from ..core.graph import AccumulateGrad, BatchingUnsupported, Node
from . import anomaly_mode, forward_ad, functional, graph, profiler
from .anomaly_mode import detect_anomaly, set_detect_anomaly
from .function import Function, FunctionCtx
from .gradcheck import GradcheckError, gradcheck, gradgradcheck

__all__ = [
    "AccumulateGrad",
    "BatchingUnsupported",
    "Function",
    "FunctionCtx",
    "GradcheckError",
    "Node",
    "anomaly_mode",
    "backward",
    "detect_anomaly",
    "enable_grad",
    "forward_ad",
    "functional",
    "grad",
    "gradcheck",
    "graph",
    "gradgradcheck",
    "inference_mode",
    "no_grad",
    "profiler",
    "set_detect_anomaly",
    "set_grad_enabled",
]
