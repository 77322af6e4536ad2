"""``matgrad.autograd.profiler``: time each op of the forward pass and each node of the
backward pass, as ``torch.autograd.profiler`` does::

    with matgrad.autograd.profiler.profile() as prof:
        loss = model(x).sum()
        loss.backward()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))

Forward events are the table's primitives by op name (``mm``, ``tanh``: composites show as
the primitives they run); backward events are nodes by name (``MmBackward0``,
``AccumulateGrad``). :class:`record_function` adds a named range of one's own. Events nest
(a ``record_function`` range holds the ops run in it; with ``create_graph=True`` a backward
node holds the ops its formula runs), so each has a total and a self time (without the
events inside it). Times are microseconds, as PyTorch's.

Off by default: an op tests one empty list (and a backward pass one flag) unless a profiler
records.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..core.graph import OP_OBSERVERS, Node
from ..tensor import Tensor

__all__ = ["EventList", "FunctionEvent", "FunctionEventAvg", "profile", "record_function"]

F = TypeVar("F", bound=Callable[..., Any])


class FunctionEvent:
    """One timed range: an op (``kind='forward'``), a backward node (``'backward'``) or a
    :class:`record_function` range (``'user'``)."""

    __slots__ = ("name", "kind", "start_ns", "end_ns", "children", "parent", "input_shapes", "tid")

    def __init__(self, name: str, kind: str, input_shapes: list | None, tid: int) -> None:
        self.name, self.kind, self.input_shapes, self.tid = name, kind, input_shapes, tid
        self.start_ns = self.end_ns = 0
        self.children: list[FunctionEvent] = []
        self.parent: FunctionEvent | None = None

    @property
    def key(self) -> str:
        return self.name

    @property
    def cpu_time_total(self) -> float:
        """Microseconds from start to end."""
        return (self.end_ns - self.start_ns) / 1e3

    @property
    def self_cpu_time_total(self) -> float:
        """Microseconds not spent in the events inside this one."""
        return self.cpu_time_total - sum(c.cpu_time_total for c in self.children)

    def __repr__(self) -> str:
        return (
            f"<FunctionEvent {self.name} ({self.kind}) cpu_time_total={self.cpu_time_total:.3f}"
            f"us self_cpu_time_total={self.self_cpu_time_total:.3f}us>"
        )


class FunctionEventAvg:
    """The events of one name (and input shapes, if grouped by them) together."""

    def __init__(self, key: str, kind: str, input_shapes: Any = None) -> None:
        self.key, self.kind, self.input_shapes = key, kind, input_shapes
        self.count = 0
        self.cpu_time_total = 0.0
        self.self_cpu_time_total = 0.0

    def add(self, event: FunctionEvent | FunctionEventAvg) -> FunctionEventAvg:
        if isinstance(event, FunctionEventAvg):
            self.count += event.count
        else:
            self.count += 1
        self.cpu_time_total += event.cpu_time_total
        self.self_cpu_time_total += event.self_cpu_time_total
        return self

    @property
    def cpu_time(self) -> float:
        """Mean microseconds per call."""
        return self.cpu_time_total / self.count if self.count else 0.0

    @property
    def self_cpu_time(self) -> float:
        return self.self_cpu_time_total / self.count if self.count else 0.0

    def __repr__(self) -> str:
        return (
            f"<FunctionEventAvg key={self.key} ({self.kind}) count={self.count} "
            f"cpu_time_total={self.cpu_time_total:.3f}us "
            f"self_cpu_time_total={self.self_cpu_time_total:.3f}us>"
        )


# what `table(sort_by=...)` takes: PyTorch's CPU keys (descending), and matgrad's aliases
_SORT_KEYS = {
    "cpu_time_total": "cpu_time_total",
    "self_cpu_time_total": "self_cpu_time_total",
    "cpu_time": "cpu_time",
    "self_cpu_time": "self_cpu_time",
    "count": "count",
    "total": "cpu_time_total",
    "mean": "cpu_time",
}


def _fmt_us(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.3f}s"
    if us >= 1e3:
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


class EventList(list):
    """A list of events (or of averages) that prints as a table."""

    def key_averages(self, group_by_input_shape: bool = False) -> EventList:
        """One :class:`FunctionEventAvg` per name (and per input shapes if asked), in order
        of first occurrence."""
        groups: dict[Any, FunctionEventAvg] = {}
        for e in self:
            shapes = e.input_shapes if group_by_input_shape else None
            key = (e.key, e.kind, repr(shapes))
            if key not in groups:
                groups[key] = FunctionEventAvg(e.key, e.kind, shapes)
            groups[key].add(e)
        return EventList(groups.values())

    def total_average(self) -> FunctionEventAvg:
        total = FunctionEventAvg("Total", "")
        for e in self:
            total.add(e)
        return total

    @property
    def self_cpu_time_total(self) -> float:
        return sum(e.self_cpu_time_total for e in self)

    def table(
        self,
        sort_by: str | None = None,
        row_limit: int = 100,
        max_name_column_width: int = 55,
        header: str | None = None,
        top_level_events_only: bool = False,
        **_ignored: Any,
    ) -> str:
        """PyTorch's table: name, pass (forward/backward/user), self and total time with
        their share of all self time, mean time per call and the number of calls; sorted
        by ``sort_by`` descending (``cpu_time_total``, ``self_cpu_time_total``,
        ``cpu_time``, ``self_cpu_time``, ``count``) or left in order."""
        rows = list(self)
        if top_level_events_only:
            rows = [e for e in rows if getattr(e, "parent", None) is None]
        if sort_by is not None:
            if sort_by not in _SORT_KEYS:
                raise ValueError(
                    f"table: cannot sort by {sort_by!r}; use one of {', '.join(_SORT_KEYS)}"
                )
            attr = _SORT_KEYS[sort_by]
            rows.sort(key=lambda e: getattr(e, attr), reverse=True)
        total_self = sum(e.self_cpu_time_total for e in self) or 1.0
        rows = rows[:row_limit] if row_limit is not None and row_limit >= 0 else rows
        name_width = min(max([len(e.key) for e in rows] + [4]), max_name_column_width)
        cols = ["Pass", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg"]
        cols.append("# of Calls")
        widths = [name_width, 8] + [12] * (len(cols) - 1)
        line = "  ".join("-" * w for w in widths)
        out = [] if header is None else [header]
        out += [line, "  ".join(f"{c:>{w}}" for c, w in zip(["Name", *cols], widths, strict=True))]
        out.append(line)
        for e in rows:
            name = e.key if len(e.key) <= name_width else e.key[: name_width - 3] + "..."
            count = getattr(e, "count", 1)
            mean = e.cpu_time_total / count if count else 0.0
            cells = [
                f"{name:>{name_width}}",
                f"{e.kind:>8}",
                f"{100 * e.self_cpu_time_total / total_self:>11.2f}%",
                f"{_fmt_us(e.self_cpu_time_total):>12}",
                f"{100 * e.cpu_time_total / total_self:>11.2f}%",
                f"{_fmt_us(e.cpu_time_total):>12}",
                f"{_fmt_us(mean):>12}",
                f"{count:>12}",
            ]
            out.append("  ".join(cells))
        out.append(line)
        out.append(f"Self CPU time total: {_fmt_us(sum(e.self_cpu_time_total for e in self))}")
        return "\n".join(out) + "\n"

    def __str__(self) -> str:
        return self.table()

    def export_chrome_trace(self, path: str) -> None:
        """Write the events as a Chrome trace (``chrome://tracing``, Perfetto)."""
        events = [
            {
                "name": e.name,
                "cat": e.kind,
                "ph": "X",
                "ts": e.start_ns / 1e3,
                "dur": e.cpu_time_total,
                "pid": 0,
                "tid": e.tid,
            }
            for e in self
            if isinstance(e, FunctionEvent)
        ]
        with open(path, "w") as f:
            json.dump({"traceEvents": events}, f)


def _shapes(args: Any) -> list:
    return [
        list(a.shape) if isinstance(a, Tensor) else [_shapes(a)] if isinstance(a, list) else []
        for a in args
    ]


class profile:  # noqa: N801 - PyTorch's name
    """Record every op and backward node run while open (all threads). PyTorch's arguments
    are accepted; ``record_shapes`` keeps each op's input shapes (for
    ``key_averages(group_by_input_shape=True)``); CUDA, memory, FLOP and stack options are
    not measured."""

    def __init__(
        self,
        enabled: bool = True,
        *,
        use_cuda: bool = False,
        use_device: str | None = None,
        record_shapes: bool = False,
        with_flops: bool = False,
        profile_memory: bool = False,
        with_stack: bool = False,
        with_modules: bool = False,
        use_kineto: bool = False,
        use_cpu: bool = True,
        **_ignored: Any,
    ) -> None:
        self.enabled = enabled
        self.record_shapes = record_shapes
        self.function_events: EventList | None = None
        self._events: list[FunctionEvent] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._running = False

    # -- the observer interface the core calls (see core.graph.observed_call, engine) ----------
    def _start(self, name: str, kind: str, shapes: list | None) -> FunctionEvent:
        event = FunctionEvent(name, kind, shapes, threading.get_ident())
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        if stack:
            event.parent = stack[-1]
            stack[-1].children.append(event)
        stack.append(event)
        with self._lock:
            self._events.append(event)
        event.start_ns = time.perf_counter_ns()
        return event

    def op_start(self, name: str, args: tuple) -> FunctionEvent:
        return self._start(name, "forward", _shapes(args) if self.record_shapes else None)

    def node_start(self, node: Node) -> FunctionEvent:
        return self._start(node.name(), "backward", None)

    def op_end(self, event: FunctionEvent) -> None:
        event.end_ns = time.perf_counter_ns()
        stack = self._local.stack
        if stack and stack[-1] is event:
            stack.pop()
        elif event in stack:  # an inner event left open by an error: close it too
            del stack[stack.index(event) :]

    # -- the context manager -------------------------------------------------------------------
    def __enter__(self) -> profile:
        if not self.enabled:
            return self
        if self._running:
            raise RuntimeError("profile: this profiler is already recording")
        self._running = True
        self._events = []
        OP_OBSERVERS.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        OP_OBSERVERS[:] = [o for o in OP_OBSERVERS if o is not self]
        self._running = False
        self.function_events = EventList(e for e in self._events if e.end_ns)

    def _check_finished(self) -> EventList:
        if self.function_events is None:
            raise RuntimeError("profile: the profiler has not finished (leave its `with` block)")
        return self.function_events

    def events(self) -> EventList:
        return self._check_finished()

    def key_averages(self, group_by_input_shape: bool = False, **_ignored: Any) -> EventList:
        return self._check_finished().key_averages(group_by_input_shape)

    def table(self, sort_by: str | None = None, row_limit: int = 100, **kwargs: Any) -> str:
        return self._check_finished().table(sort_by=sort_by, row_limit=row_limit, **kwargs)

    def total_average(self) -> FunctionEventAvg:
        return self._check_finished().total_average()

    @property
    def self_cpu_time_total(self) -> float:
        return self._check_finished().self_cpu_time_total

    def export_chrome_trace(self, path: str) -> None:
        self._check_finished().export_chrome_trace(path)

    def __str__(self) -> str:
        return self.table()


class record_function:  # noqa: N801
    """A named range in the profile (context manager or decorator); free when no profiler
    records."""

    def __init__(self, name: str, args: str | None = None) -> None:
        self.name = name
        self.args = args
        self._open: list[tuple[profile, FunctionEvent]] = []

    def __enter__(self) -> record_function:
        self._open = [(p, p._start(self.name, "user", None)) for p in list(OP_OBSERVERS)]
        return self

    def __exit__(self, *exc: object) -> None:
        for p, event in reversed(self._open):
            p.op_end(event)
        self._open = []

    def __call__(self, func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with record_function(self.name, self.args):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
