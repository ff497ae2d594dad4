"""Size and value regimes ("tiers") that the equivalence properties draw from.

tiny
    Units <= 6, features <= 5, timesteps <= 6, batch <= 3, fan-in-scaled
    weights: cheap examples, every pair (and loop-steering triple) of flag
    values covered (``spec/pool.py``, pools ``single`` and ``bidirectional``).
wide
    Units 8 to 256 (8, 20, 48, 64, 256: 256 in a few entries), features up to
    32, timesteps 8 to 64 (8 when unrolled), batch up to 8; the same
    fan-in-scaled weights.
    Catches what only shows at width or length: a kernel tile or split that
    is wrong past some width, a loop that loses the state after some steps.
saturating
    Tiny shapes, but kernels 4x larger and biases in [-2, 2], so that gate
    pre-activations often reach |x| >= 3, where sigmoid and tanh saturate and
    hard_sigmoid is clipped (Keras 3: |x| >= 3; Keras 2: |x| >= 2.5). The
    recurrent gain stays 0.8, so the float32/float64 comparison stays
    meaningful. ``tests/test_tiers.py`` measures and bounds the fraction.

Each tier has its own tolerance row in ``spec/data/tolerances.toml``,
measured with ``python -m rnnspec.tools.measure_error --tier NAME``.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Tier:
    name: str
    pool: str                 # the graph-shape pool (spec/pool.py POOLS) its properties run through
    kernel_gain: float = 1.0
    bias_scale: float = 0.5

    def weight_scales(self):
        return dict(kernel_gain=self.kernel_gain, bias_scale=self.bias_scale)


TIERS = {
    "tiny": Tier("tiny", "single"),
    "wide": Tier("wide", "wide"),
    "saturating": Tier("saturating", "single", kernel_gain=4.0, bias_scale=2.0),
}

#: the stated minimum fraction of gate pre-activations with |x| >= 3 in the saturating tier
#: (measured on drawn cases by tests/test_tiers.py)
SATURATING_MIN_FRACTION = 0.15


def gate_preactivations(case, hard_sigmoid):
    """Every value that the reference passes to the recurrent activation (the gates:
    LSTM i, f, o; GRU z, r) and to the activation, for ``case``, as two flat arrays.

    Measures a tier (how often gates saturate, whether hard_sigmoid's clipped
    region is reached inside the layer); the reference itself is unchanged.
    """
    import numpy as np

    import rnnspec.reference.cells as cells
    from rnnspec.spec.cases import reference_outputs

    seen = {"recurrent": [], "activation": []}
    original = cells._activation
    c = case.config

    def recording(name, convention="keras3"):
        fn = original(name, convention)
        slot = "recurrent" if (c.kind != "simple_rnn" and name == c.recurrent_activation) else "activation"

        def wrapped(x):
            seen[slot].append(np.ravel(x))
            return fn(x)
        return wrapped
    cells._activation = recording
    try:
        reference_outputs(case, hard_sigmoid)
    finally:
        cells._activation = original
    return tuple(np.concatenate(v) if v else np.zeros(0) for v in (seen["recurrent"], seen["activation"]))
