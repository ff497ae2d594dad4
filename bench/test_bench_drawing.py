"""What shrinkable data would cost: drawing a tiny-tier case from a seed versus with
``hypothesis.extra.numpy``, per example, over every entry of the ``single`` pool.

Run: ``pytest bench/test_bench_drawing.py --benchmark-only -s``. No Keras call is
made: only Hypothesis and the data. The rule (issue "no blind spots", item 6):
the tiny tier draws shrinkable arrays only if that costs less than 20% of the
property's throughput; compare the extra milliseconds printed here with the
property's cost per example from ``bench/test_bench_equivalence.py``.
"""

import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from rnnspec.spec.cases import Case, layer_weight_shapes
from rnnspec.spec.pool import entries
from rnnspec.spec.strategies import masks, pool_cases

PER_ENTRY = 4
RESULTS = {}


@st.composite
def shrinkable_cases(draw, entry):
    """The same case as ``pool_cases``, with every weight and input drawn by Hypothesis (shrinkable)."""
    shape = entry.shape
    c, b, t, f = shape.config, shape.batch, shape.timesteps, shape.features
    unit = st.floats(-1, 1, width=32)
    weights = [draw(hnp.arrays(np.float64, s, elements=unit)) for s in layer_weight_shapes(c, f)]
    x = draw(hnp.arrays(np.float64, (b, t, f), elements=unit))
    mask = draw(masks(b, t, kinds=(shape.mask,)))
    init = ([draw(hnp.arrays(np.float64, (b, c.units), elements=st.floats(-0.5, 0.5, width=32)))
             for _ in range(c.n_states)] if shape.initial_state else None)
    return Case(c, f, weights, x, mask=mask, initial_state=init)


def _draw_all(strategy, counter):
    for entry in entries("single"):
        @settings(max_examples=PER_ENTRY, derandomize=True, deadline=None, database=None)
        @given(strategy(entry))
        def drawn(case):
            counter[0] += 1
        drawn()


def _bench(benchmark, name, strategy):
    counter = [0]
    benchmark.pedantic(_draw_all, args=(strategy, counter), rounds=3, iterations=1)
    per_example = benchmark.stats.stats.mean / (counter[0] / 3)
    RESULTS[name] = per_example
    benchmark.extra_info.update(ms_per_example=round(1000 * per_example, 3))


def test_seeded_data(benchmark):
    _bench(benchmark, "seeded", pool_cases)


def test_shrinkable_data(benchmark):
    _bench(benchmark, "extra.numpy", shrinkable_cases)


def teardown_module(module):
    if len(RESULTS) == 2:
        print(f"\nrnnspec drawing: seeded {1000 * RESULTS['seeded']:.2f} ms/example, hypothesis.extra.numpy "
              f"{1000 * RESULTS['extra.numpy']:.2f} ms/example "
              f"(+{1000 * (RESULTS['extra.numpy'] - RESULTS['seeded']):.2f} ms)")
