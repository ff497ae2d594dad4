"""The suite's own power: every fault of the catalogue must stay caught.

- Cheap: the catalogue has >= 20 faults, each with a one-line description of
  the bug it imitates; applying a fault patches something and undoing it puts
  back the very same objects (identity, not equality).
- Fast subset (default run, about a minute on 2 cores): four faults that
  ``spec/test_equivalence.py`` catches within a few examples -- a gate order,
  a 1e-3 activation error, a time-order bug and a mask bug -- each run as a
  real pytest subprocess with ``-p rnnspec.faults.plugin``, exactly as the mutation
  runner does.
- Gradient-only faults (``GRADIENT_ONLY``): the forward values stay bit for bit the
  same (so no forward chapter can catch them) while the gradients change; each fails
  ``spec/test_gradients.py`` (``@pytest.mark.slow``).
- Whole catalogue (``@pytest.mark.slow``; runs only with
  ``RNNSPEC_FULL_CATALOGUE=1``, otherwise skipped): ``python -m rnnspec.tools.mutation
  --all`` must exit 0 -- clean run green, no fault escapes. The tox env
  ``mutation`` runs the same command directly.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnspec.faults.catalogue import CATALOGUE, Fault, get, names

ROOT = Path(__file__).resolve().parent.parent

FAST_SUBSET = [
    "lstm_gate_order_if",       # gate order: first example with an LSTM
    "tanh_scaled_1_001",        # the smallest numerical fault: within the float32 tolerance?
    "go_backwards_rereversed",  # time order of the returned sequence
    "skip_first_step",          # off-by-one in the loop
]


def _keras_or_skip():
    try:
        from rnnspec.spec import adapter
    except ImportError as exc:  # the reference-only environment has no Keras
        pytest.skip(f"no Keras installed: {exc}")
    return adapter


# --------------------------------------------------------------------------- cheap

def test_catalogue_is_large_and_described():
    assert len(CATALOGUE) >= 20, f"only {len(CATALOGUE)} faults"
    assert len(set(names())) == len(CATALOGUE), "fault names must be unique"
    for f in CATALOGUE:
        assert isinstance(f, Fault)
        assert f.name.isidentifier() and f.name == f.name.lower(), f"{f.name}: use a snake_case name"
        assert f.imitates and "\n" not in f.imitates and len(f.imitates) > 30, f"{f.name}: describe the bug"
        assert set(f.majors) <= {2, 3} and f.majors, f"{f.name}: majors={f.majors}"
        assert f.expected.startswith("spec/test_"), f"{f.name}: expected={f.expected!r}"
    assert all(get(n).name == n for n in FAST_SUBSET)


@pytest.mark.parametrize("name", names())
def test_apply_then_undo_restores_the_originals(name):
    adapter = _keras_or_skip()
    fault = get(name)
    if not fault.supported():
        pytest.skip(f"{name} is implemented for Keras {fault.majors}, not {adapter.KERAS_VERSION}")
    undo = fault.apply()
    try:
        assert undo.records, f"{name} patched nothing"
        for owner, attr, had, original in undo.records:
            assert vars(owner).get(attr) is not original, f"{name}: {owner!r}.{attr} was not replaced"
    finally:
        undo()
    for owner, attr, original in undo.patches:
        if original is None:
            assert attr not in vars(owner), f"{name}: {owner!r}.{attr} left behind"
        else:
            assert vars(owner)[attr] is original, f"{name}: {owner!r}.{attr} not restored"


def test_faults_do_not_stack_up():
    """Applying and undoing every fault twice leaves Keras exactly as it was."""
    _keras_or_skip()
    supported = [f for f in CATALOGUE if f.supported()]
    first = [f.apply() for f in supported]
    for undo in reversed(first):
        undo()
    snapshot = {(id(o), a): vars(o).get(a) for undo in first for o, a, _ in undo.patches}
    for f in supported:
        with f.active():
            pass
    for undo in first:
        for owner, attr, _ in undo.patches:
            assert vars(owner).get(attr) is snapshot[(id(owner), attr)]


# --------------------------------------------------------------------------- fast subset

@pytest.mark.keras
@pytest.mark.parametrize("name", FAST_SUBSET)
def test_fast_subset_is_caught_by_equivalence(name):
    _keras_or_skip()
    from rnnspec.tools.mutation import run_suite
    result = run_suite(sys.executable, ["spec/test_equivalence.py"], fault=name, timeout=600)
    assert result["status"] == "caught", (
        f"fault {name} was not caught by spec/test_equivalence.py: {result['status']} "
        f"(exit {result['exit_code']})\n{result.get('detail', '')}{result.get('output_tail', '')[-3000:]}")
    assert result["reason"].startswith("AssertionError"), (
        f"{name} was caught by a crash, not by an assertion: {result['reason']}")


# --------------------------------------------------------------------------- whole catalogue

@pytest.mark.slow
@pytest.mark.keras
@pytest.mark.skipif(os.environ.get("RNNSPEC_FULL_CATALOGUE") != "1",
                    reason="the whole catalogue takes ~15 min: set RNNSPEC_FULL_CATALOGUE=1 "
                           "(or run `tox -e mutation` / `python -m rnnspec.tools.mutation --all`)")
def test_whole_catalogue_is_caught(tmp_path):
    out = tmp_path / "mutation-results.json"
    proc = subprocess.run([sys.executable, "-m", "rnnspec.tools.mutation", "--all", "--jobs", "2",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"mutation run failed (escapes, errors or a red clean run):\n{proc.stdout[-6000:]}"


# --------------------------------------------------------------------------- GPU faults

def test_gpu_faults_are_reachable_but_kept_out_of_the_cpu_catalogue():
    """faults/gpu.py: found by name (RNNSPEC_FAULT), each for one backend, none in the CPU catalogue."""
    from rnnspec.faults.gpu import GPU_FAULTS
    assert len(GPU_FAULTS) >= 4
    cpu_names = set(names())
    for f in GPU_FAULTS:
        assert f.name not in cpu_names, f"{f.name} would count as escaped in every CPU mutation run"
        assert get(f.name) is f
        assert len(f.backends) == 1 and f.backends[0] in ("torch", "jax", "tensorflow")
        assert f.imitates and f.region != "global"


def test_a_backend_fault_is_unsupported_on_another_backend():
    adapter = _keras_or_skip()
    from rnnspec.faults.gpu import GPU_FAULTS
    for f in GPU_FAULTS:
        assert f.supported() == (adapter.IS_KERAS3 and adapter.BACKEND in f.backends)

# --------------------------------------------------------------------------- gradient-only faults

#: faults that leave every forward value bit for bit unchanged and change only the gradient:
#: no forward claim can catch them; spec/test_gradients.py must
GRADIENT_ONLY = ["recurrent_kernel_stop_gradient", "state_detached_between_steps",
                 "tanh_gradient_from_input", "sigmoid_gradient_off_1pct"]


def _forward_and_gradients(kind, compiled):
    """A fresh LSTM/GRU/SimpleRNN (built now, so that a fault applied before is in it): outputs
    and gradients of a fixed case, with a mask and an initial state."""
    import numpy as np
    from rnnspec.spec import adapter
    from rnnspec.spec.cases import Case, LayerConfig, keras_layer, random_weights
    rng = np.random.default_rng(5)
    config = LayerConfig(kind=kind, units=3, return_sequences=True, return_state=True)
    x = rng.uniform(-1, 1, (2, 4, 2))
    init = [rng.uniform(-0.5, 0.5, (2, 3)) for _ in range(config.n_states)]
    mask = np.array([[True, True, False, True], [True, True, True, True]])
    case = Case(config, 2, random_weights(config, 2, rng), x, mask=mask, initial_state=init)
    layer = keras_layer(config, 2)
    adapter.set_weights(layer, case.weights)
    outputs = adapter.call(layer, x, mask=mask, initial_state=init)
    grad = adapter.gradient_call(layer, has_mask=True, n_initial_states=len(init), n_outputs=len(outputs),
                                 compiled=compiled)
    coefficients = [rng.uniform(-1, 1, np.shape(o)) for o in outputs]
    return outputs, grad(case.weights, x, mask, init, coefficients)


@pytest.mark.keras
@pytest.mark.parametrize("name", GRADIENT_ONLY)
def test_gradient_only_faults_leave_the_forward_pass_alone(name):
    """Bit-identical forward values (so every forward chapter misses it), different gradients."""
    import numpy as np
    adapter = _keras_or_skip()
    fault = get(name)
    assert fault.expected == "spec/test_gradients.py"
    if not fault.supported():
        pytest.skip(f"{name} is implemented for Keras {fault.majors}, not {adapter.KERAS_VERSION}")
    kind = "gru" if name == "sigmoid_gradient_off_1pct" else "lstm"
    compiled = adapter.BACKEND != "torch"
    clean_out, clean_grad = _forward_and_gradients(kind, compiled)
    with fault.active():
        out, grad = _forward_and_gradients(kind, compiled)
    for a, b in zip(clean_out, out):
        assert np.array_equal(a, b), f"{name} changed a forward value by {np.max(np.abs(a - b)):.2e}"
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(clean_grad, grad))
    assert diff > 1e-4, f"{name}: no gradient changed (max |diff| {diff:.2e})"


@pytest.mark.slow
@pytest.mark.keras
@pytest.mark.parametrize("name", GRADIENT_ONLY)
def test_gradient_only_faults_are_caught_by_the_gradient_chapter(name):
    """Each gradient-only fault fails spec/test_gradients.py (a pytest subprocess, as the mutation
    runner runs it; 20-60 s each on TF CPU, hence slow)."""
    _keras_or_skip()
    if not get(name).supported():
        pytest.skip(f"{name} is not implemented for this Keras")
    from rnnspec.tools.mutation import run_suite
    result = run_suite(sys.executable, ["spec/test_gradients.py"], fault=name, timeout=600)
    assert result["status"] == "caught", (
        f"fault {name} was not caught by spec/test_gradients.py: {result['status']} "
        f"(exit {result['exit_code']})\n{result.get('detail', '')}{result.get('output_tail', '')[-3000:]}")
    assert result["reason"].startswith("AssertionError"), result["reason"]
