"""Chapter 2 -- outputs and states equal the documented formulas.

For every configuration drawn -- SimpleRNN, LSTM or GRU; any activation and
recurrent_activation; with or without bias; GRU reset_after either way;
LSTM implementation 1 or 2; return_sequences, return_state, go_backwards,
unroll; an initial_state or zeros; no mask, right- or left-padded masks,
masks with holes, fully masked rows, with and without zero_output_for_mask;
plain or wrapped in Bidirectional with every merge_mode -- the installed
Keras returns what ``reference/`` computes in float64, within the tolerance
table (``spec/data/tolerances.toml``):

- the output: the full sequence (in processing order under go_backwards) or
  the last output;
- every returned state: ``h`` for SimpleRNN and GRU, ``h`` then ``c`` for
  LSTM; forward states then backward states for Bidirectional;
- at a masked step the state is carried unchanged and the output repeats the
  last unmasked output (zeros before it), or is zero with
  zero_output_for_mask (Bidirectional turns that on when it returns sequences).

Two execution paths are checked: the compiled call that users run in
training and ``predict`` (tf.function on TF, jax.jit on JAX; torch runs
eagerly), and the plain eager call. The compiled-path properties draw their
layer configuration from a pairwise covering pool (``spec/pool.py``) so that
traced graphs are reused and many more examples run per second; the eager
property draws every flag independently. A failure is minimised: flags that
do not matter to it are set back to their defaults before it is reported.
"""

import functools
from dataclasses import replace

import pytest
from hypothesis import given, note, settings, strategies as st

from spec import adapter
from spec.assertions import assert_matches_reference, tolerance
from spec.cases import reference_outputs
from spec.divergences import known_divergence
from spec.devices import DEVICE_PARAMS, TF32_TABLE_KEY
from spec.report import note_observation
from spec.runners import kernel_of, run_case
from spec.pool import covering_pool, simpler_configs
from spec.strategies import cases, pooled_cases
from spec.profiles import scaled_examples


def check(case, *, compiled, device=("cpu", "off")):
    """Assert ``case`` on ``device`` = (device, tf32 policy); on failure, report the
    simplest failing variant of its configuration."""
    __tracebackhide__ = True
    if known_divergence(case):
        return  # counted in the report as that divergence (spec/data/divergences.toml)
    hard_sigmoid = adapter.conventions()["hard_sigmoid"]
    where, tf32 = device
    path = ("compiled call" if compiled else "eager call") + f" on {where}" + (f", tf32 {tf32}" if where == "gpu" else "")
    atol, rtol = tolerance(device=where, tf32=TF32_TABLE_KEY[tf32])
    expected = reference_outputs(case, hard_sigmoid)
    with adapter.tf32_policy(tf32):
        actual = run_case(case, compiled=compiled, device=where)
    if case.config.kind != "simple_rnn":
        note_observation(f"kernel on {where}", kernel_of(case, compiled=compiled, device=where))
    if where == "gpu":
        on_cpu = run_case(case, compiled=compiled, device="cpu")
        assert_matches_reference(case, actual, on_cpu, atol=atol, rtol=rtol, path=path + " vs the same call on cpu")
    try:
        assert_matches_reference(case, actual, expected, atol=atol, rtol=rtol, path=path)
    except AssertionError as failure:
        simplest, removed = minimise(case, hard_sigmoid)
        if not removed:
            raise
        note(f"also fails with {', '.join(removed)} set back to the default")
        assert_matches_reference(simplest, run_case(simplest, compiled=False),
                                 reference_outputs(simplest, hard_sigmoid),
                                 path=f"{path}; minimised: {', '.join(removed)} at default")
        raise failure


def minimise(case, hard_sigmoid):
    """Greedily set flags back to their defaults while the case still fails (eager calls)."""
    removed = []
    progress = True
    while progress:
        progress = False
        for name, config in simpler_configs(case.config):
            candidate = replace(case, config=config)
            if known_divergence(candidate):
                continue
            try:
                assert_matches_reference(candidate, run_case(candidate, compiled=False),
                                         reference_outputs(candidate, hard_sigmoid))
            except AssertionError:
                case, progress = candidate, True
                removed.append(name)
                break
    return case, removed


@functools.cache
def _pool(bidirectional):
    return covering_pool(bidirectional=bidirectional)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@given(data=st.data())
@settings(max_examples=scaled_examples(5))
def test_layer_matches_reference(device, data):
    """A single SimpleRNN/LSTM/GRU layer (compiled call) matches the reference."""
    check(data.draw(pooled_cases(_pool(False)), label="case"), compiled=True, device=device)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@given(data=st.data())
@settings(max_examples=scaled_examples(5))
def test_bidirectional_matches_reference(device, data):
    """Bidirectional, every merge_mode (compiled call), matches the reference."""
    check(data.draw(pooled_cases(_pool(True)), label="case"), compiled=True, device=device)


@given(cases())
def test_eager_call_matches_reference(case):
    """The eager call path matches the reference, every flag drawn independently."""
    check(case, compiled=False)
