"""wbc_classic.evaluation.profiling: time, memory and model size."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from wbc_classic.evaluation import profiling as P


def test_measure_call_and_time_inference():
    def work(x):
        return np.ones((x, 1000)).sum()

    res, m = P.measure_call(work, 500, n_items=500, trace_python=True)
    assert res == 500_000
    assert m.seconds > 0 and m.throughput > 0
    assert m.python_peak_bytes >= 500 * 1000 * 8
    assert m.rss_peak_bytes is None or m.rss_peak_bytes > 0

    X = np.zeros((64, 16))
    out, m = P.time_inference(lambda a: a.sum(axis=1), X, repeats=2)
    assert out.shape == (64,) and m.n_items == 64 and m.throughput > 0
    assert m.python_peak_bytes is not None
    assert set(m.to_dict()) >= {"seconds", "throughput", "rss_peak_bytes"}


def test_model_size_bytes(tmp_path):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression().fit(np.random.default_rng(0).normal(size=(20, 3)), [0, 1] * 10)
    assert P.model_size_bytes(clf) == len(pickle.dumps(clf, protocol=5))
    f = tmp_path / "m.bin"
    f.write_bytes(b"x" * 123)
    assert P.model_size_bytes(f) == 123
    assert P.model_size_bytes(str(tmp_path)) == 123
    assert P.model_size_bytes(b"abcd") == 4


@pytest.mark.torch
def test_model_size_bytes_torch_module():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):  # defined outside torch: the isinstance check must see it
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(100, 10)

    size = P.model_size_bytes(Net())
    assert 1010 * 4 <= size < 1010 * 4 + 4000  # float32 weights + torch.save framing
