"""``matgrad.autograd.profiler``: per-op forward and per-node backward events, their counts,
nesting and times, the key_averages table and record_function."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import matgrad as mg
from matgrad.autograd import profiler
from matgrad.core import graph as core_graph


@pytest.fixture(autouse=True)
def _profiler_off_afterwards():
    yield
    assert core_graph.OP_OBSERVERS == []


def _chain(x, k):
    for _ in range(k):
        x = (x * 1.5).tanh()
    return x.sum()


def test_counts_per_op_and_per_node():
    x = mg.randn(4, 4, requires_grad=True)
    with profiler.profile() as prof:
        _chain(x, 5).backward()
    averages = {e.key: e for e in prof.key_averages()}
    assert averages["tanh"].count == 5 and averages["tanh"].kind == "forward"
    assert averages["mul"].count == 5 and averages["sum"].count == 1
    assert averages["TanhBackward0"].count == 5 and averages["TanhBackward0"].kind == "backward"
    assert averages["MulBackward0"].count == 5 and averages["SumBackward0"].count == 1
    assert averages["AccumulateGrad"].count == 1
    for e in averages.values():
        assert e.cpu_time_total >= e.self_cpu_time_total >= 0
        assert e.cpu_time == pytest.approx(e.cpu_time_total / e.count)


def test_results_are_unchanged_under_the_profiler():
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((3, 3))
    x = mg.tensor(x0, requires_grad=True)
    with profiler.profile():
        y = mg.cat([x, x.exp()]).sum()  # cat: a list row, through Op.reference
        y.backward()
    np.testing.assert_allclose(y.item(), x0.sum() + np.exp(x0).sum())
    np.testing.assert_allclose(x.grad.numpy(), 1 + np.exp(x0))


def test_record_function_nests_and_times_what_it_holds():
    x = mg.randn(3, requires_grad=True)
    with profiler.profile() as prof:
        with profiler.record_function("outer"):
            y = x.sin()
            time.sleep(0.01)
            with profiler.record_function("inner"):
                z = y.cos()
        z.sum().backward()
    events = prof.events()
    outer = next(e for e in events if e.name == "outer")
    inner = next(e for e in events if e.name == "inner")
    assert outer.kind == "user" and inner.parent is outer
    assert [c.name for c in outer.children] == ["sin", "inner"]
    assert [c.name for c in inner.children] == ["cos"]
    assert outer.cpu_time_total >= 1e4  # the 10 ms sleep, in microseconds
    assert outer.self_cpu_time_total >= 1e4 - 1  # the sleep is outer's own time
    assert outer.cpu_time_total >= inner.cpu_time_total + outer.children[0].cpu_time_total
    # top-level self times add up to the total of every event's self time
    total_self = sum(e.self_cpu_time_total for e in events)
    assert total_self == pytest.approx(prof.self_cpu_time_total)
    assert total_self == pytest.approx(sum(e.cpu_time_total for e in events if e.parent is None))


def test_backward_time_of_a_node_is_measured():
    class Slow(mg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            time.sleep(0.005)
            return g

    x = mg.randn(2, requires_grad=True)
    with profiler.profile() as prof:
        Slow.apply(x).sum().backward()
    slow = next(e for e in prof.key_averages() if e.key == "SlowBackward")
    assert slow.kind == "backward" and slow.count == 1 and slow.cpu_time_total >= 5e3


def test_create_graph_backward_ops_nest_in_their_node():
    x = mg.tensor([0.3, 0.4], requires_grad=True)
    y = x.exp().sum()
    with profiler.profile() as prof:
        (g,) = mg.autograd.grad(y, x, create_graph=True)
    node = next(e for e in prof.events() if e.name == "ExpBackward0")
    assert node.children and all(c.kind == "forward" for c in node.children)  # its formula
    np.testing.assert_allclose(g.detach().numpy(), np.exp([0.3, 0.4]))


def test_table_sorting_and_errors():
    x = mg.randn(4, requires_grad=True)
    with profiler.profile() as prof:
        _chain(x, 3).backward()
    averages = prof.key_averages()
    for key, attr in [
        ("cpu_time_total", "cpu_time_total"),
        ("self_cpu_time_total", "self_cpu_time_total"),
        ("cpu_time", "cpu_time"),
        ("count", "count"),
    ]:
        table = averages.table(sort_by=key)
        names = [line.split()[0] for line in table.splitlines()[3:-2]]
        want = [e.key for e in sorted(averages, key=lambda e: getattr(e, attr), reverse=True)]
        assert names == want, key
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=2)
    header = table.splitlines()[1]
    for column in ("Name", "Pass", "Self CPU %", "CPU total", "CPU time avg", "# of Calls"):
        assert column in header
    assert len(table.splitlines()) == 3 + 2 + 2  # rules, header, 2 rows, total line
    assert table.rstrip().splitlines()[-1].startswith("Self CPU time total:")
    with pytest.raises(ValueError, match="cannot sort by 'cuda_time'"):
        averages.table(sort_by="cuda_time")


def test_group_by_input_shape_and_chrome_trace(tmp_path):
    with profiler.profile(record_shapes=True) as prof:
        mg.ones(2, 3).exp()
        mg.ones(4).exp()
        mg.ones(4).exp()
    grouped = [e for e in prof.key_averages(group_by_input_shape=True) if e.key == "exp"]
    assert sorted((e.input_shapes, e.count) for e in grouped) == [([[2, 3]], 1), ([[4]], 2)]
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())["traceEvents"]
    assert [e["name"] for e in trace].count("exp") == 3
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in trace)


def test_disabled_profile_and_record_function_outside_profiling():
    with profiler.profile(enabled=False) as prof:
        mg.ones(2).exp()
    assert core_graph.OP_OBSERVERS == []

    @profiler.record_function("decorated")
    def f(t):
        return t.exp()

    np.testing.assert_allclose(f(mg.zeros(2)).numpy(), [1.0, 1.0])  # no profiler: just runs
    with profiler.profile() as prof:
        f(mg.zeros(2))
    assert [e.name for e in prof.events()] == ["decorated", "exp"]
    with pytest.raises(RuntimeError, match="has not finished"):
        profiler.profile().key_averages()


def test_counts_match_torch_names():
    """Node names and per-node counts are PyTorch's (PyTorch also lists the aten ops that run
    inside a backward node; matgrad's backward without create_graph runs raw formulas)."""
    torch = pytest.importorskip("torch")

    def counts(lib, prefix):
        x = lib.ones(3, 3, requires_grad=True)
        with lib.autograd.profiler.profile() as prof:
            ((x @ x).tanh() * 2).tanh().sum().backward()
        wanted = ("tanh", "MmBackward0", "TanhBackward0", "MulBackward0", "SumBackward0")
        return {
            k: e.count
            for e in prof.key_averages()
            for k in [e.key.removeprefix(prefix)]
            if k in wanted
        }

    got = counts(mg, "")
    assert got == {
        "tanh": 2,
        "MmBackward0": 1,
        "TanhBackward0": 2,
        "MulBackward0": 1,
        "SumBackward0": 1,
    }
    assert got == counts(torch, "aten::")
