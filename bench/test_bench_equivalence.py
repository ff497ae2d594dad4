"""Examples per second of the LSTM equivalence property, per backend.

Run: ``pytest bench --benchmark-only`` (or ``tox -e bench``); the backend is
whatever ``KERAS_BACKEND`` / the installed Keras says. Not part of the
default run (``testpaths`` excludes ``bench/``).

Two numbers per backend, printed at the end and stored in the benchmark
JSON's ``extra_info``:

- ``property``: Hypothesis examples/s of an LSTM equivalence property
  (every example draws fresh weights and inputs, and may draw a new
  configuration, which costs a new build and trace);
- ``bare_call``: compiled Keras calls/s on an already-built LSTM with new
  weights and new inputs each call, i.e. the floor cost the property pays per
  example; the ratio says how much the property adds on top.
"""

import time

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from spec import adapter
from spec.assertions import assert_matches_reference
from spec.cases import LayerConfig, Case, random_weights, reference_outputs
from spec.runners import run_case, stats
from spec.strategies import cases, layer_configs

N_EXAMPLES = 200
RESULTS = {}


def _lstm_property(n):
    @settings(max_examples=n, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cases(layer_configs(kinds=("lstm",), bidirectional=False)))
    def lstm_matches_reference(case):
        expected = reference_outputs(case, adapter.conventions()["hard_sigmoid"])
        assert_matches_reference(case, run_case(case), expected)
    return lstm_matches_reference


def test_lstm_property_examples_per_second(benchmark):
    prop = _lstm_property(N_EXAMPLES)
    prop()  # warm-up: first traces are not what a long run pays per example
    stats.update(hits=0, misses=0)
    benchmark.pedantic(prop, rounds=2, iterations=1)
    rate = N_EXAMPLES / benchmark.stats.stats.mean
    hit_rate = stats["hits"] / max(1, stats["hits"] + stats["misses"])
    RESULTS["property"] = rate
    benchmark.extra_info.update(backend=adapter.BACKEND, examples_per_s=round(rate, 1),
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
        print(f"\nrnnspec bench [{adapter.BACKEND}, keras {adapter.KERAS_VERSION}]: "
              f"LSTM property {RESULTS['property']:.1f} examples/s; bare compiled call "
              f"{RESULTS['bare_call']:.1f} calls/s; ratio {RESULTS['property'] / RESULTS['bare_call']:.2f}")
