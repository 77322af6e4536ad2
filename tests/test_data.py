"""matgrad.utils.data against torch.utils.data: the same batches (structure, types, dtypes,
shapes, values) from the same datasets where no randomness is involved; for shuffling, whose
permutations come from another generator, the properties: every index exactly once per epoch,
the same order for the same seed, counts with drop_last and num_samples; errors as PyTorch's;
and matgrad.Generator."""

from __future__ import annotations

import collections
import math
import warnings

import numpy as np
import pytest

import matgrad
from matgrad.utils import data

torch = pytest.importorskip("torch")
tdata = torch.utils.data

Point = collections.namedtuple("Point", ["x", "y"])


def _same(ours, theirs, where="batch"):
    """``ours`` (matgrad) has the structure, types, dtypes, shapes and values of ``theirs``
    (torch)."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, matgrad.Tensor), f"{where}: {type(ours)}"
        assert tuple(ours.shape) == tuple(theirs.shape), where
        assert ours.dtype == np.dtype(str(theirs.dtype).removeprefix("torch.")), where
        np.testing.assert_array_equal(np.asarray(ours._data), theirs.numpy(), err_msg=where)
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs), where
        assert list(ours) == list(theirs), where
        for k in theirs:
            _same(ours[k], theirs[k], f"{where}[{k!r}]")
    elif isinstance(theirs, list | tuple):
        assert type(ours) is type(theirs), f"{where}: {type(ours)} vs {type(theirs)}"
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _same(a, b, f"{where}[{i}]")
    else:
        assert type(ours) is type(theirs) and ours == theirs, where


def _to_torch(sample):
    """The same sample with torch tensors in place of matgrad's."""
    if isinstance(sample, matgrad.Tensor):
        return torch.from_numpy(np.array(sample._data))
    if isinstance(sample, Point):
        return Point(*(_to_torch(s) for s in sample))
    if isinstance(sample, dict | collections.OrderedDict):
        return type(sample)((k, _to_torch(v)) for k, v in sample.items())
    if isinstance(sample, list | tuple):
        return type(sample)(_to_torch(s) for s in sample)
    return sample


def _samples(kind, n=5):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        if kind == "tensor":
            out.append(matgrad.tensor(rng.standard_normal((2, 3))))
        elif kind == "numbers":
            out.append((i, float(i) / 3, i % 2 == 0))
        elif kind == "numpy":
            out.append([rng.standard_normal(3).astype(np.float32), np.int16(i), np.float64(i / 7)])
        elif kind == "dict":
            out.append({"x": matgrad.tensor(rng.standard_normal(4)), "label": i, "name": f"s{i}"})
        elif kind == "nested":
            out.append(
                {
                    "pair": (matgrad.tensor([float(i), 1.0]), [i, i + 1]),
                    "meta": collections.OrderedDict(w=float(i), tags=("a", "b")),
                    "bytes": b"x" * i,
                }
            )
        elif kind == "namedtuple":
            out.append(Point(matgrad.tensor(rng.standard_normal(2)), i))
        elif kind == "int-tensor":
            out.append(matgrad.tensor(np.arange(i, i + 3)))
    return out


@pytest.mark.parametrize(
    "kind", ["tensor", "numbers", "numpy", "dict", "nested", "namedtuple", "int-tensor"]
)
def test_default_collate_like_torch(kind):
    samples = _samples(kind)
    _same(data.default_collate(samples), tdata.default_collate(_to_torch(samples)))


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal"):
        data.default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors"):
        data.default_collate([np.array(["a"]), np.array(["b"])])
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors"):
        data.default_collate([object(), object()])
    with pytest.raises(RuntimeError):
        data.default_collate([matgrad.zeros(2), matgrad.zeros(3)])  # torch: RuntimeError too


def test_default_convert_like_torch():
    sample = {"a": np.arange(3), "b": (np.float32(2.5), "s"), "c": [np.ones(2)], "d": 3}
    _same(data.default_convert(sample), tdata.default_convert(sample))


def _tensor_datasets(n=10):
    x = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    y = np.arange(n) % 3
    ours = data.TensorDataset(matgrad.tensor(x), matgrad.tensor(y))
    theirs = tdata.TensorDataset(torch.tensor(x), torch.tensor(y))
    return ours, theirs


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (3, False), (3, True), (10, True)])
def test_sequential_loader_like_torch(batch_size, drop_last):
    ours_ds, theirs_ds = _tensor_datasets()
    ours = data.DataLoader(ours_ds, batch_size=batch_size, drop_last=drop_last)
    theirs = tdata.DataLoader(theirs_ds, batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    a, b = list(ours), list(theirs)
    assert len(a) == len(b) == len(ours)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        _same(x, y, f"batch {i}")


def test_unbatched_loader_and_custom_collate():
    ours_ds, theirs_ds = _tensor_datasets(4)
    _same(
        list(data.DataLoader(ours_ds, batch_size=None)),
        list(tdata.DataLoader(theirs_ds, batch_size=None)),
    )

    def collate(batch):
        return len(batch), [int(y) for _, y in batch]

    ours = list(data.DataLoader(ours_ds, batch_size=3, collate_fn=collate))
    theirs = list(tdata.DataLoader(theirs_ds, batch_size=3, collate_fn=collate))
    assert ours == theirs == [(3, [0, 1, 2]), (1, [0])]


def test_sampler_and_batch_sampler_options_like_torch():
    ours_ds, theirs_ds = _tensor_datasets()
    order = [9, 0, 3, 3, 7]
    _same(
        list(data.DataLoader(ours_ds, batch_size=2, sampler=order)),
        list(tdata.DataLoader(theirs_ds, batch_size=2, sampler=order)),
    )
    batches = [[1, 2], [5], [0, 9, 4]]
    ours = data.DataLoader(ours_ds, batch_sampler=batches)
    theirs = tdata.DataLoader(theirs_ds, batch_sampler=batches)
    _same(list(ours), list(theirs))
    assert len(ours) == 3
    bs = data.BatchSampler(data.SequentialSampler(range(7)), 3, drop_last=False)
    tbs = tdata.BatchSampler(tdata.SequentialSampler(range(7)), 3, drop_last=False)
    assert list(bs) == list(tbs) == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(bs) == 3 and len(data.BatchSampler(range(7), 3, drop_last=True)) == 2


def test_loader_errors_like_torch():
    ds, _ = _tensor_datasets()
    cases = [
        ({"sampler": [0, 1], "shuffle": True}, "sampler option is mutually exclusive with shuffle"),
        ({"batch_sampler": [[0]], "batch_size": 2}, "batch_sampler option is mutually exclusive"),
        ({"batch_sampler": [[0]], "drop_last": True}, "batch_sampler option is mutually exclusive"),
        ({"batch_size": None, "drop_last": True}, "batch_size=None option disables auto-batching"),
        ({"num_workers": -1}, "num_workers option should be non-negative"),
        ({"prefetch_factor": 2}, "prefetch_factor option could only be specified"),
        ({"persistent_workers": True}, "persistent_workers option needs num_workers > 0"),
        ({"batch_size": 0}, "batch_size should be a positive integer value"),
        ({"batch_size": 2, "drop_last": 1}, "drop_last should be a boolean value"),
    ]
    for kw, message in cases:
        with pytest.raises(ValueError, match=message):
            data.DataLoader(ds, **kw)
        with pytest.raises(ValueError, match=message):
            tdata.DataLoader(_tensor_datasets()[1], **kw)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value"):
        data.RandomSampler(ds, num_samples=0)
    with pytest.raises(TypeError, match="replacement should be a boolean value"):
        data.RandomSampler(ds, replacement=1)


def test_num_workers_runs_in_process_with_a_warning():
    ds, theirs_ds = _tensor_datasets()
    with pytest.warns(UserWarning, match="loads the batches in the main process"):
        loader = data.DataLoader(ds, batch_size=4, num_workers=2)
    _same(list(loader), list(tdata.DataLoader(theirs_ds, batch_size=4)))
    with pytest.raises(NotImplementedError, match="IterableDataset"):
        data.DataLoader(_Stream(5), num_workers=2)


def _epochs(loader, n):
    return [[int(i) for batch in loader for i in batch[0]._data[:, 0] // 3] for _ in range(n)]


def test_shuffle_properties():
    ds, _ = _tensor_datasets(23)
    g = matgrad.Generator().manual_seed(7)
    loader = data.DataLoader(ds, batch_size=5, shuffle=True, generator=g)
    epochs = _epochs(loader, 3)
    for order in epochs:
        assert sorted(order) == list(range(23))  # every sample exactly once per epoch
    assert epochs[0] != epochs[1] != epochs[2]  # a new order each epoch
    assert epochs[0] != list(range(23))
    again = _epochs(
        data.DataLoader(
            ds, batch_size=5, shuffle=True, generator=matgrad.Generator().manual_seed(7)
        ),
        3,
    )
    assert again == epochs  # the same seed gives the same orders
    assert [len(b[0]) for b in loader] == [5, 5, 5, 5, 3]
    dropped = data.DataLoader(ds, batch_size=5, shuffle=True, drop_last=True, generator=g)
    sizes = [len(b[0]) for b in dropped]
    assert sizes == [5, 5, 5, 5] and len(dropped) == 4
    assert len(tdata.DataLoader(_tensor_datasets(23)[1], batch_size=5, drop_last=True)) == 4


def test_shuffle_without_generator_follows_manual_seed():
    ds, _ = _tensor_datasets(12)
    matgrad.manual_seed(3)
    a = _epochs(data.DataLoader(ds, batch_size=4, shuffle=True), 2)
    matgrad.manual_seed(3)
    b = _epochs(data.DataLoader(ds, batch_size=4, shuffle=True), 2)
    assert a == b and a[0] != a[1]
    assert all(sorted(e) == list(range(12)) for e in a)


def test_random_sampler_counts():
    g = matgrad.Generator().manual_seed(0)
    s = list(data.RandomSampler(range(4), num_samples=10, generator=g))
    counts = collections.Counter(s)
    # two full permutations, then 2 more distinct indices
    assert len(s) == 10 and sorted(s[:4]) == sorted(s[4:8]) == [0, 1, 2, 3]
    assert len(set(s[8:])) == 2 and all(c in (2, 3) for c in counts.values())
    r = list(data.RandomSampler(range(3), replacement=True, num_samples=600, generator=g))
    assert len(r) == 600 and set(r) == {0, 1, 2}
    assert all(abs(c - 200) < 60 for c in collections.Counter(r).values())
    assert len(data.RandomSampler(range(5))) == len(tdata.RandomSampler(range(5))) == 5
    sub = list(data.SubsetRandomSampler([4, 8, 15, 16], generator=g))
    assert sorted(sub) == [4, 8, 15, 16]


@pytest.mark.parametrize(
    "lengths", [[3, 7], [0.5, 0.5], [0.3, 0.3, 0.4], [0.33, 0.33, 0.34], [0.1, 0.9], [10]]
)
def test_random_split_like_torch(lengths):
    ds, tds = _tensor_datasets(10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = data.random_split(ds, lengths, generator=matgrad.Generator().manual_seed(1))
        theirs = tdata.random_split(tds, lengths, generator=torch.Generator().manual_seed(1))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    indices = [i for s in ours for i in s.indices]
    assert sorted(indices) == list(range(10))  # disjoint, and covering the dataset
    for subset in ours:
        for k in range(len(subset)):
            _same(subset[k], _tensor_datasets(10)[1][subset.indices[k]])
    again = data.random_split(ds, lengths, generator=matgrad.Generator().manual_seed(1))
    assert [s.indices for s in again] == [s.indices for s in ours]


def test_random_split_errors():
    ds, _ = _tensor_datasets(10)
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        data.random_split(ds, [3, 3])
    with pytest.raises(ValueError, match="Fraction at index 1 is not between 0 and 1"):
        data.random_split(ds, [0.5, 1.5, -1.0])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        data.random_split(ds, [0.99, 0.01])


def test_datasets_like_torch():
    ds, tds = _tensor_datasets(6)
    assert len(ds) == 6
    _same(ds[2], tds[2])
    _same(ds[-1], tds[-1])
    sub, tsub = data.Subset(ds, [5, 1, 1]), tdata.Subset(tds, [5, 1, 1])
    assert len(sub) == 3
    _same(sub[0], tsub[0])
    cat = ds + sub
    tcat = tds + tsub
    assert isinstance(cat, data.ConcatDataset) and len(cat) == len(tcat) == 9
    assert cat.cumulative_sizes == tcat.cumulative_sizes == [6, 9]
    for i in [0, 5, 6, 8, -1, -9]:
        _same(cat[i], tcat[i], f"item {i}")
    with pytest.raises(ValueError, match="absolute value of index should not exceed"):
        cat[-10]
    with pytest.raises(IndexError):
        cat[9]
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        data.TensorDataset(matgrad.zeros(3, 2), matgrad.zeros(4))
    with pytest.raises(AssertionError, match="datasets should not be an empty iterable"):
        data.ConcatDataset([])
    with pytest.raises(NotImplementedError):
        data.Dataset()[0]
    # a loader over a Subset and a ConcatDataset
    _same(list(data.DataLoader(cat, batch_size=4)), list(tdata.DataLoader(tcat, batch_size=4)))


class _Stream(data.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter({"i": i, "sq": float(i * i)} for i in range(self.n))

    def __len__(self):
        return self.n


class _TorchStream(tdata.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter({"i": i, "sq": float(i * i)} for i in range(self.n))

    def __len__(self):
        return self.n


@pytest.mark.parametrize("batch_size,drop_last", [(3, False), (3, True), (None, False)])
def test_iterable_dataset_like_torch(batch_size, drop_last):
    ours = data.DataLoader(_Stream(8), batch_size=batch_size, drop_last=drop_last)
    theirs = tdata.DataLoader(_TorchStream(8), batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    _same(list(ours), list(theirs))
    chained = list(data.DataLoader(_Stream(2) + _Stream(3), batch_size=None))
    assert [d["i"] for d in chained] == [0, 1, 0, 1, 2]


def test_iterable_dataset_errors():
    with pytest.raises(ValueError, match="expected unspecified shuffle option"):
        data.DataLoader(_Stream(3), shuffle=True)
    with pytest.raises(ValueError, match="expected unspecified sampler option"):
        data.DataLoader(_Stream(3), sampler=[0])


def test_generator():
    g = matgrad.Generator()
    assert g.initial_seed() == torch.Generator().initial_seed() == 67280421310721
    a = matgrad.rand(4, generator=g.manual_seed(5))
    state = g.get_state()
    b = matgrad.randn(3, generator=g)
    g.set_state(state)
    np.testing.assert_array_equal(matgrad.randn(3, generator=g)._data, b._data)
    np.testing.assert_array_equal(matgrad.rand(4, generator=g.manual_seed(5))._data, a._data)
    assert g.manual_seed(-1).initial_seed() == 2**64 - 1
    with pytest.raises(ValueError, match="the seed must be in"):
        g.manual_seed(2**64)
    with pytest.raises(RuntimeError, match="not a state from get_state"):
        g.set_state(matgrad.tensor(np.frombuffer(b"{}", dtype=np.uint8).copy()))
    with pytest.raises(TypeError, match="generator must be a matgrad.Generator"):
        matgrad.rand(2, generator=42)
    fresh = g.seed()
    assert g.initial_seed() == fresh and 0 <= fresh < 2**64


def test_training_loop_over_a_loader():
    """Minibatch SGD on y = 3 x - 1 (32 points, batch 8, shuffled): 30 epochs recover the
    coefficients to 1e-3."""
    x = np.linspace(-1, 1, 32)[:, None]
    ds = data.TensorDataset(matgrad.tensor(x), matgrad.tensor(3 * x - 1))
    loader = data.DataLoader(ds, batch_size=8, shuffle=True, generator=matgrad.Generator())
    w = matgrad.zeros(1, 1, requires_grad=True)
    b = matgrad.zeros(1, requires_grad=True)
    opt = matgrad.optim.SGD([w, b], lr=0.3)
    for _ in range(30):
        for xb, yb in loader:
            opt.zero_grad()
            ((xb @ w + b - yb) ** 2).mean().backward()
            opt.step()
    assert float(w.detach()[0, 0]) == pytest.approx(3.0, abs=1e-3)
    assert float(b.detach()[0]) == pytest.approx(-1.0, abs=1e-3)
    assert math.isfinite(float(w.detach()[0, 0]))
