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
eagerly), and the plain eager call.
"""

from hypothesis import given

from spec import adapter
from spec.assertions import assert_matches_reference
from spec.cases import reference_outputs
from spec.divergences import known_divergence
from spec.runners import run_case
from spec.strategies import cases, layer_configs


def check(case, *, compiled):
    __tracebackhide__ = True
    if known_divergence(case):
        return  # counted in the report as that divergence (spec/data/divergences.toml)
    expected = reference_outputs(case, adapter.conventions()["hard_sigmoid"])
    actual = run_case(case, compiled=compiled)
    assert_matches_reference(case, actual, expected, path="compiled call" if compiled else "eager call")


@given(cases(layer_configs(bidirectional=False)))
def test_layer_matches_reference(case):
    """A single SimpleRNN/LSTM/GRU layer (compiled call) matches the reference."""
    check(case, compiled=True)


@given(cases(layer_configs(bidirectional=True)))
def test_bidirectional_matches_reference(case):
    """Bidirectional, every merge_mode (compiled call), matches the reference."""
    check(case, compiled=True)


@given(cases())
def test_eager_call_matches_reference(case):
    """The eager call path matches the reference (plain and Bidirectional layers)."""
    check(case, compiled=False)
