"""The size and value tiers (spec/tiers.py) draw what they say they draw.

- saturating: at least ``SATURATING_MIN_FRACTION`` of the gate
  pre-activations (the values the reference passes to the recurrent
  activation) reach |x| >= 3, and hard_sigmoid's clipped region is reached
  inside the layer in most hard_sigmoid cases; the tiny tier, for contrast,
  almost never gets there;
- wide: its pool spans the sizes it names, and every entry unrolls at most
  ``MAX_UNROLLED_TIMESTEPS`` steps.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from rnnspec.spec.pool import MAX_UNROLLED_TIMESTEPS, entries, named_pool
from rnnspec.spec.strategies import pool_cases
from rnnspec.spec.tiers import SATURATING_MIN_FRACTION, gate_preactivations


def _measure(data, pool, tier, per_entry=2):
    gates, clipped, hard = [], 0, 0
    for entry in entries(pool):
        for _ in range(per_entry):
            case = data.draw(pool_cases(entry, tier=tier))
            recurrent, _ = gate_preactivations(case, "keras3")
            gates.append(recurrent)
            if case.config.kind != "simple_rnn" and case.config.recurrent_activation == "hard_sigmoid":
                hard += 1
                clipped += bool(np.any(np.abs(recurrent) >= 3))
    gates = np.concatenate(gates)
    return float(np.mean(np.abs(gates) >= 3)), clipped, hard


@settings(max_examples=1, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.data_too_large])
@given(st.data())
def test_saturating_tier_saturates_the_gates(data):
    fraction, clipped, hard = _measure(data, "single", "saturating")
    assert fraction >= SATURATING_MIN_FRACTION, f"only {fraction:.3f} of gate pre-activations reach |x| >= 3"
    assert hard and clipped >= 0.6 * hard, f"hard_sigmoid clipped inside the layer in {clipped}/{hard} cases"
    tiny, _, _ = _measure(data, "single", "tiny", per_entry=1)
    assert tiny < 0.02, f"the tiny tier saturates too ({tiny:.3f}): the tiers do not differ"


def test_wide_pool_spans_its_sizes():
    pool = named_pool("wide")
    assert max(s.config.units for s in pool) == 256 and min(s.config.units for s in pool) == 8
    assert sum(s.config.units == 256 for s in pool) <= len(pool) // 3, "256 units should be a few entries"
    assert max(s.timesteps for s in pool) == 64 and max(s.batch for s in pool) == 8
    assert all(s.timesteps <= MAX_UNROLLED_TIMESTEPS for s in pool if s.config.unroll)
