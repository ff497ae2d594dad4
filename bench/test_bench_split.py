"""Where an example of the LSTM equivalence property spends its time: inside Keras, or in rnnspec.

Run: ``pytest bench/test_bench_split.py -s`` (any backend; no pytest-benchmark rounds). It runs
the same rounds as ``bench/test_bench_equivalence.py`` (every entry of the LSTM covering pool,
the ``ci`` example count, compiled path), once to trace or compile every entry, then twice
with every call of ``rnnspec.spec.adapter.invoke`` -- where rnnspec hands over to Keras (the
layer, the compiled graph or the jitted function, with its inputs converted) -- and of
``adapter.set_weights`` (torch's runner sets the weights eagerly; TF and JAX pass them into the
graph) timed as "inside Keras". What is left (Hypothesis, drawing the data, the float64
formulas, the comparison, the report) is the harness. Printed per example, in ms; this bounds
the examples/s any harness change can reach against the bench's bare Keras call.
"""

import math
import sys
import time
from pathlib import Path

from rnnspec.spec import adapter
from rnnspec.spec.pool import covering_pool

sys.path.insert(0, str(Path(__file__).resolve().parent))   # pytest imports bench/ files with importlib
from test_bench_equivalence import N_EXAMPLES, _round  # noqa: E402


def test_time_per_example_inside_and_outside_keras(monkeypatch):
    pool = covering_pool(kinds=("lstm",))
    per_entry = math.ceil(N_EXAMPLES / len(pool))
    inside = [0.0]

    def timed(keras_work):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return keras_work(*args, **kwargs)
            finally:
                inside[0] += time.perf_counter() - start
        return run

    counter = [0]
    _round(pool, per_entry, counter)          # trace / compile every entry first
    monkeypatch.setattr(adapter, "invoke", timed(adapter.invoke))
    monkeypatch.setattr(adapter, "set_weights", timed(adapter.set_weights))   # torch sets weights eagerly
    for _ in range(2):
        inside[0], counter[0] = 0.0, 0
        start = time.perf_counter()
        _round(pool, per_entry, counter)
        total = time.perf_counter() - start
        n = counter[0]
        print(f"\nrnnspec bench split [{adapter.BACKEND}, keras {adapter.KERAS_VERSION}]: {n} examples, "
              f"{1e3 * total / n:.2f} ms each: inside Keras {1e3 * inside[0] / n:.2f} ms, "
              f"harness {1e3 * (total - inside[0]) / n:.2f} ms")
