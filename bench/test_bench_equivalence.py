"""Examples per second of the LSTM equivalence property, per backend.

Run: ``pytest bench --benchmark-only`` (or ``tox -e bench``); the backend is
whatever ``KERAS_BACKEND`` / the installed Keras says. Not part of the
default run (``testpaths`` excludes ``bench/``).

Two numbers per backend, printed at the end and stored in the benchmark
JSON's ``extra_info``:

- ``property``: Hypothesis examples/s of the LSTM equivalence property as
  ``spec/test_equivalence.py`` runs it on the compiled path (random, not
  derandomized: every example draws fresh weights, inputs, mask pattern and
  initial state; the graph shape comes from the covering pool of
  ``spec/pool.py``, and the first use of each pool entry costs a trace).
  Reported twice: ``cold`` is the first round in a fresh process (every
  trace paid), ``steady`` the mean of the later rounds (configurations seen
  before reuse their traced graph, as in a long run);
- ``bare_call``: compiled Keras calls/s on an already-built LSTM with new
  weights and new inputs each call, i.e. the floor cost the property pays per
  example; the ratio says how much the property adds on top.
"""

import numpy as np
from hypothesis import given, settings, HealthCheck

from spec import adapter
from spec.cases import Case, LayerConfig, random_weights
from spec.pool import covering_pool
from spec.runners import run_case, stats
from spec.strategies import pooled_cases
from spec.test_equivalence import check

N_EXAMPLES = 200
RESULTS = {}


def _lstm_property(n):
    pool = covering_pool(kinds=("lstm",))

    @settings(max_examples=n, derandomize=False, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(pooled_cases(pool))
    def lstm_matches_reference(case):
        check(case, compiled=True)
    return lstm_matches_reference


def test_lstm_property_examples_per_second(benchmark):
    prop = _lstm_property(N_EXAMPLES)
    stats.update(hits=0, misses=0)
    benchmark.pedantic(prop, rounds=3, iterations=1)
    rounds = benchmark.stats.stats.data
    cold = N_EXAMPLES / rounds[0]
    steady = N_EXAMPLES / (sum(rounds[1:]) / len(rounds[1:]))
    hit_rate = stats["hits"] / max(1, stats["hits"] + stats["misses"])
    RESULTS["property"] = (cold, steady)
    benchmark.extra_info.update(backend=adapter.BACKEND, cold_examples_per_s=round(cold, 1),
                                steady_examples_per_s=round(steady, 1),
                                layer_cache_hit_rate=round(hit_rate, 3))


def test_bare_compiled_call_per_second(benchmark):
    config = LayerConfig(kind="lstm", units=4, return_sequences=True)
    rng = np.random.default_rng(0)

    def one_call():
        b, t = rng.integers(1, 4), rng.integers(1, 7)
        case = Case(config, 3, random_weights(config, 3, rng), rng.uniform(-1, 1, (b, t, 3)))
        run_case(case)

    one_call()
    benchmark.pedantic(one_call, rounds=200, iterations=1, warmup_rounds=5)
    rate = 1.0 / benchmark.stats.stats.mean
    RESULTS["bare_call"] = rate
    benchmark.extra_info.update(backend=adapter.BACKEND, calls_per_s=round(rate, 1))


def teardown_module(module):
    if {"property", "bare_call"} <= RESULTS.keys():
        cold, steady = RESULTS["property"]
        bare = RESULTS["bare_call"]
        print(f"\nrnnspec bench [{adapter.BACKEND}, keras {adapter.KERAS_VERSION}]: LSTM property "
              f"{cold:.1f} examples/s cold, {steady:.1f} steady; bare compiled call {bare:.1f} calls/s; "
              f"ratio to bare {cold / bare:.3f} cold, {steady / bare:.3f} steady")
