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

Three execution paths are checked: the compiled call that users run in
training and ``predict`` (tf.function on TF, jax.jit on JAX; torch runs
eagerly), XLA on TF (``jit_compile=True``, which Keras 3's ``"auto"`` may
choose in ``fit`` and ``predict``), and the plain eager call. The training
call (``training=True``, what ``fit`` runs) with no dropout computes the same
formulas. Three tiers (``spec/tiers.py``) set the sizes and values: tiny,
wide and long (units to 256, timesteps to 64), and saturating (gate
pre-activations past |x| = 3, hard_sigmoid clipped). The compiled-path properties are parametrized over every entry of a covering
pool of graph shapes (``spec/pool.py``), so that traced graphs are reused and
every entry runs; the eager property draws every flag independently. A failure is minimised: flags that
do not matter to it are set back to their defaults before it is reported.
"""

from dataclasses import replace

import pytest
from hypothesis import given, note, settings, strategies as st

from rnnspec.spec import adapter
from rnnspec.spec.assertions import assert_matches_reference, tolerance
from rnnspec.spec.cases import reference_outputs
from rnnspec.spec.conformance import assert_conforms
from rnnspec.spec.divergences import divergence_for, placed_on
from rnnspec.spec.devices import TF32_TABLE_KEY, pool_params
from rnnspec.spec.report import note_observation
from rnnspec.spec.runners import COMPILED_PATHS, kernel_of, run_case
from rnnspec.spec.pool import entries, simpler_configs
from rnnspec.spec.strategies import cases, pool_cases
from rnnspec.spec.profiles import examples_per_entry


def check(case, *, compiled, device=("cpu", "off"), path_name=None, tier="tiny"):
    """Assert ``case`` on ``device`` = (device, tf32 policy); on failure, report the
    simplest failing variant of its configuration."""
    __tracebackhide__ = True
    hard_sigmoid = adapter.conventions()["hard_sigmoid"]
    where, tf32 = device
    compiled_as = (path_name or COMPILED_PATHS[0]) if compiled else False
    path = (f"compiled call ({compiled_as})" if compiled else "eager call") + f" on {where}" \
        + (f", tf32 {tf32}" if where == "gpu" else "")
    atol, rtol = tolerance(device=where, tf32=TF32_TABLE_KEY[tf32], tier=tier)
    expected = reference_outputs(case, hard_sigmoid)

    def run():
        with adapter.tf32_policy(tf32):
            return run_case(case, compiled=compiled_as, device=where)
    try:
        with placed_on(where, compiled):
                actual = assert_conforms(case, run, path=path, atol=atol, rtol=rtol, hard_sigmoid=hard_sigmoid,
                                     expected=expected)
    except AssertionError as failure:
        if getattr(failure, "rnnspec_outcome", None):
            raise   # fixed or crashed inside a listed divergence: nothing to minimise
        simplest, removed = minimise(case, hard_sigmoid)
        if not removed:
            raise
        note(f"also fails with {', '.join(removed)} set back to the default")
        assert_matches_reference(simplest, run_case(simplest, compiled=False),
                                 reference_outputs(simplest, hard_sigmoid),
                                 path=f"{path}; minimised: {', '.join(removed)} at default")
        raise failure
    if actual is None:
        return   # a listed raising divergence raised as listed
    if case.config.kind != "simple_rnn":
        note_observation(f"kernel on {where}", kernel_of(case, compiled=compiled_as, device=where))
    if where == "gpu":
        with placed_on("cpu", compiled):
            if divergence_for(case) is not None:
                return   # the same call on the CPU is inside a listed divergence (asserted on the CPU params)
        on_cpu = run_case(case, compiled=compiled_as, device="cpu")
        assert_matches_reference(case, actual, on_cpu, atol=atol, rtol=rtol, path=path + " vs the same call on cpu")


def minimise(case, hard_sigmoid):
    """Greedily set flags back to their defaults while the case still fails (eager calls).

    Only variants outside every listed divergence are tried, so the minimised
    failure is a plain disagreement with the formulas.
    """
    removed = []
    progress = True
    while progress:
        progress = False
        for name, config in simpler_configs(case.config):
            candidate = replace(case, config=config)
            if divergence_for(candidate) is not None:
                continue
            try:
                assert_matches_reference(candidate, run_case(candidate, compiled=False),
                                         reference_outputs(candidate, hard_sigmoid))
            except AssertionError:
                case, progress = candidate, True
                removed.append(name)
                break
    return case, removed


@pytest.mark.parametrize("device,entry", pool_params("single"))
@given(data=st.data())
@settings(max_examples=examples_per_entry(5, "single"))
def test_layer_matches_reference(device, entry, data):
    """A single SimpleRNN/LSTM/GRU layer (compiled call) matches the reference."""
    check(data.draw(pool_cases(entry), label="case"), compiled=True, device=device)


@pytest.mark.parametrize("device,entry", pool_params("bidirectional"))
@given(data=st.data())
@settings(max_examples=examples_per_entry(5, "bidirectional"))
def test_bidirectional_matches_reference(device, entry, data):
    """Bidirectional, every merge_mode (compiled call), matches the reference."""
    check(data.draw(pool_cases(entry), label="case"), compiled=True, device=device)


@pytest.mark.parametrize("device,entry", pool_params("fused-kernel"))
@given(data=st.data())
@settings(max_examples=examples_per_entry(1, "fused-kernel"))
def test_fused_kernel_layer_matches_reference(device, entry, data):
    """LSTM/GRU with the settings a fused kernel takes (cuDNN on a GPU; compiled call) match the reference."""
    check(data.draw(pool_cases(entry), label="case"), compiled=True, device=device)


@pytest.mark.parametrize("device,entry", pool_params("fused-kernel-bidirectional"))
@given(data=st.data())
@settings(max_examples=examples_per_entry(1, "fused-kernel-bidirectional"))
def test_fused_kernel_bidirectional_matches_reference(device, entry, data):
    """Bidirectional LSTM/GRU with the settings a fused kernel takes (compiled call) match the reference."""
    check(data.draw(pool_cases(entry), label="case"), compiled=True, device=device)


@given(cases(), st.booleans())
def test_eager_call_matches_reference(case, training):
    """The eager call path matches the reference, every flag drawn independently, training or not (no dropout)."""
    check(replace(case, training=training), compiled=False)


@pytest.mark.parametrize("device,entry", pool_params("xla"))
@given(data=st.data())
@settings(max_examples=examples_per_entry(1, "xla"))
def test_training_call_matches_reference(device, entry, data):
    """With training=True and no dropout (the path fit takes), the compiled call still computes the formulas."""
    case = replace(data.draw(pool_cases(entry), label="case"), training=True)
    check(case, compiled=True, device=device)


@pytest.mark.parametrize("device,entry", pool_params("wide"))
@given(data=st.data())
@settings(max_examples=examples_per_entry(1, "wide"))
def test_wide_layer_matches_reference(device, entry, data):
    """The wide and long tier (units to 256, timesteps to 64, batch to 8; compiled call) matches the reference."""
    check(data.draw(pool_cases(entry, tier="wide"), label="case"), compiled=True, device=device, tier="wide")


@pytest.mark.parametrize("device,entry", pool_params("single"))
@given(data=st.data())
@settings(max_examples=examples_per_entry(1, "single"))
def test_saturating_layer_matches_reference(device, entry, data):
    """The saturating tier (gate pre-activations past |x| = 3; compiled call) matches the reference."""
    check(data.draw(pool_cases(entry, tier="saturating"), label="case"), compiled=True, device=device,
          tier="saturating")


XLA_PARAMS = [pytest.param(e, id=repr(e)) for e in entries("xla")] if "xla" in COMPILED_PATHS else [
    pytest.param(None, id="no-xla-path", marks=pytest.mark.skip(
        reason=f"unsupported: no separate XLA path on the {adapter.BACKEND} backend "
               f"(its compiled path is {COMPILED_PATHS[0]})"))]


@pytest.mark.parametrize("entry", XLA_PARAMS)
@given(data=st.data())
@settings(max_examples=examples_per_entry(1, "xla"))
def test_xla_compiled_call_matches_reference(entry, data):
    """tf.function(jit_compile=True) -- XLA, which Keras 3 may choose in fit and predict -- matches the reference."""
    check(data.draw(pool_cases(entry), label="case"), compiled=True, path_name="xla")
