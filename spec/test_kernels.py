"""Chapter 8 -- which kernel runs: cuDNN or the generic loop.

On a GPU, Keras 3's LSTM and GRU hand the whole sequence to a cuDNN kernel
when their settings allow it, and otherwise run the generic loop over time.
These are different code paths with their own layout conversions, so the
equivalence properties run on every device; this chapter pins *when* the
cuDNN path is taken. The conditions, per backend, are data
(``spec/data/cudnn.toml``): tanh activation, sigmoid recurrent activation,
no unroll, a bias, no recurrent_dropout, GRU reset_after=True, and a mask
that is absent (torch, JAX) or right-padded (TensorFlow).

On the CPU the cuDNN kernel cannot run, so the claim cannot fail there: it
is reported as skipped, with that reason, on a machine without a GPU. (The
equivalence chapter still records which kernel each CPU example took: the
torch backend has a fused CPU path for unmasked LSTM/GRU, "backend-fused".)
"""

import functools
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnnspec.spec import adapter, outcomes
from rnnspec.spec.conformance import assert_conforms, assert_refused, raises_as_listed
from rnnspec.spec.devices import DEVICE_PARAMS, pool_params
from rnnspec.spec.divergences import divergence_for
from rnnspec.spec.profiles import examples_per_entry, scaled_examples
from rnnspec.spec.report import note_observation
from rnnspec.spec.runners import kernel_of, run_case
from rnnspec.spec.strategies import cases, layer_configs, pool_cases



@functools.cache
def conditions():
    table = tomllib.loads((Path(__file__).parent / "data" / "cudnn.toml").read_text())
    return table.get(adapter.BACKEND, {})


def expects_cudnn(case):
    rule = conditions().get(case.config.kind)
    if rule is None:
        return False
    c = case.config
    for key in ("activation", "recurrent_activation", "unroll", "use_bias", "reset_after"):
        if key in rule and getattr(c, key) != rule[key]:
            return False
    if case.recurrent_dropout != rule.get("recurrent_dropout", 0.0):
        return False
    if case.mask is not None and not np.all(case.mask):
        if rule["mask"] == "none":
            return False
        lengths = case.mask.sum(axis=1)
        right_padded = np.array_equal(case.mask, np.arange(case.timesteps)[None, :] < lengths[:, None])
        if rule["mask"] == "right_padded" and not right_padded:
            return False
    elif case.mask is not None and rule["mask"] == "none":
        return False
    return True


GPU_DEVICES = [p for p in DEVICE_PARAMS if p.id == "gpu-tf32off"]


@pytest.mark.parametrize("device,entry", pool_params("lstm-gru", devices=GPU_DEVICES))
@given(data=st.data())
@settings(max_examples=examples_per_entry(1, "lstm-gru"))
def test_cudnn_taken_exactly_when_settings_allow(device, entry, data):
    """LSTM/GRU take cuDNN on a GPU exactly when spec/data/cudnn.toml says."""
    where, _ = device
    case = data.draw(pool_cases(entry), label="case")
    if not adapter.IS_KERAS3:
        # Keras 2 documents and has the choice (its LSTM/GRU pick the cuDNN function inside the graph)
        outcomes.harness_gap("Keras 2 picks its cuDNN function inside TF's graph: there is no pluggable "
                             "backend kernel for the kernel spy to observe")
        return
    entry_div = divergence_for(case)
    try:
        run_case(case, device=where)
    except Exception as exc:
        if entry_div is not None and "raises" in entry_div and raises_as_listed(entry_div, exc):
            outcomes.raised_as_modelled(entry_div["id"])
            return
        raise
    kernel = kernel_of(case, device=where)
    note_observation(f"kernel on {where}", kernel)
    expected = expects_cudnn(case)
    assert (kernel == "cudnn") == expected, (
        f"kernel={kernel!r}, but cuDNN {'should' if expected else 'should not'} run "
        f"[{case.config.one_line(case.features)} mask={'none' if case.mask is None else case.mask.astype(int).tolist()} on {where}]")
    outcomes.asserted_formulas()


# --------------------------------------------------------------------------- use_cudnn on the CPU

def use_cudnn_true_mode(kind):
    """What ``use_cudnn=True`` does on the CPU for ``kind`` on this backend (cudnn.toml)."""
    table = tomllib.loads((Path(__file__).parent / "data" / "cudnn.toml").read_text())
    return table["use_cudnn_true_on_cpu"][adapter.BACKEND][kind]


@given(case=cases(layer_configs(kinds=("lstm", "gru"), bidirectional=False, go_backwards=False),
                  with_initial_state=False),
       use_cudnn=st.sampled_from(("auto", True, False)))
@settings(max_examples=scaled_examples(0.5))
def test_use_cudnn_on_the_cpu(case, use_cudnn):
    """LSTM/GRU ``use_cudnn``: "auto" and False compute the formulas on the CPU; True is refused where
    the backend has no CPU kernel for the settings, and computes the formulas where it has one
    (spec/data/cudnn.toml [use_cudnn_true_on_cpu])."""
    if "gpu" in adapter.devices():
        pytest.skip("use_cudnn on the CPU is claimed on machines without a GPU (with one, True may take cuDNN)")
    if not adapter.conventions()["use_cudnn_argument"]:
        pytest.skip(f"unsupported: Keras {adapter.KERAS_VERSION}'s LSTM and GRU have no `use_cudnn` argument "
                    f"(conventions.toml use_cudnn_argument: not in their signature or docstring)")
    c = case.config
    layer = adapter.make_layer(c.kind, c.units, **c.keras_kwargs(), use_cudnn=use_cudnn,
                               kernel_initializer="zeros", recurrent_initializer="zeros")
    adapter.build(layer, None, case.features)
    adapter.set_weights(layer, case.weights)

    def run():
        with adapter.KernelSpy() as spy:
            out = adapter.call(layer, case.x, mask=case.mask)
        run.kernel = spy.kernel()
        return out
    mode = use_cudnn_true_mode(c.kind)
    if use_cudnn is True and mode == "refused":
        assert_refused(run)
        return
    if use_cudnn is True:   # backend-fused-or-refused: refused exactly where "auto" takes the generic loop
        run_case(case, compiled=False)
        if kernel_of(case, compiled=False) == "generic-loop":
            assert_refused(run)
            return
    assert_conforms(case, run, path=f"eager call, use_cudnn={use_cudnn!r}")
    note_observation(f"kernel with use_cudnn={use_cudnn!r}", run.kernel)
    if use_cudnn is True:
        assert run.kernel == "backend-fused", (
            f"use_cudnn=True computed on the {run.kernel!r} kernel, but cudnn.toml says the backend's fused "
            f"kernel runs it [{c.one_line(case.features)}]")
