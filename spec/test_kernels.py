"""Chapter 8 -- which kernel runs: cuDNN or the generic loop.

On a GPU, Keras 3's LSTM and GRU hand the whole sequence to a cuDNN kernel
when their settings allow it, and otherwise run the generic loop over time.
These are different code paths with their own layout conversions, so the
equivalence properties run on every device; this chapter pins *when* the
cuDNN path is taken. The conditions, per backend, are data
(``spec/data/cudnn.toml``): tanh activation, sigmoid recurrent activation,
no unroll, a bias, no recurrent_dropout, GRU reset_after=True, and a mask
that is absent (torch, JAX) or right-padded (TensorFlow).

On the CPU the cuDNN kernel never runs (the torch backend has a fused CPU
path for unmasked LSTM/GRU, reported as "backend-fused").
"""

import functools
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from spec import adapter
from spec.devices import DEVICE_PARAMS
from spec.divergences import known_divergence
from spec.pool import covering_pool
from spec.profiles import scaled_examples
from spec.report import note_example, note_observation
from spec.runners import kernel_of, run_case
from spec.strategies import pooled_cases

pytestmark = pytest.mark.skipif(not adapter.IS_KERAS3, reason="Keras 2 has no pluggable backend kernels to observe")


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


@functools.cache
def _pool():
    return covering_pool(kinds=("lstm", "gru"))


@pytest.mark.parametrize("device", [p for p in DEVICE_PARAMS if p.id != "gpu-tf32default"])
@given(data=st.data())
@settings(max_examples=scaled_examples(1))
def test_cudnn_taken_exactly_when_settings_allow(device, data):
    """LSTM/GRU take cuDNN on a GPU exactly when spec/data/cudnn.toml says; never on the CPU."""
    where, _ = device
    case = data.draw(pooled_cases(_pool()), label="case")
    if known_divergence(case):
        return
    run_case(case, device=where)
    kernel = kernel_of(case, device=where)
    note_observation(f"kernel on {where}", kernel)
    note_example()
    expected = expects_cudnn(case) if where == "gpu" else False
    assert (kernel == "cudnn") == expected, (
        f"kernel={kernel!r}, but cuDNN {'should' if expected else 'should not'} run "
        f"[{case.config.one_line(case.features)} mask={'none' if case.mask is None else case.mask.astype(int).tolist()} on {where}]")
