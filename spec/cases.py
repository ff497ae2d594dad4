"""What one example is: a layer configuration, its weights and its inputs.

A :class:`LayerConfig` holds every Keras argument that a property varies. A
:class:`Case` adds the concrete data: input features, weights, inputs, mask
and initial state. ``keras_layer`` builds the layer under test from a
config, and ``reference_outputs`` computes what the formulas say it must
return, in Keras's output order.
"""

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from rnnspec import reference
from rnnspec.reference.structure import weight_shapes


@dataclass(frozen=True)
class LayerConfig:
    kind: str = "lstm"
    units: int = 4
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    use_bias: bool = True
    reset_after: bool = True          # GRU only
    unit_forget_bias: bool = True     # LSTM only (an initializer: no effect on set weights)
    implementation: int = 2           # LSTM/GRU: 1 = per-gate matmuls, 2 = one fused matmul
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    unroll: bool = False
    zero_output_for_mask: Optional[bool] = None   # None: the layer's default (False)
    bidirectional: Optional[str] = None           # None, or a merge_mode name ("none" for merge_mode=None)

    def keras_kwargs(self):
        kw = dict(activation=self.activation, use_bias=self.use_bias,
                  return_sequences=self.return_sequences, return_state=self.return_state,
                  go_backwards=self.go_backwards, unroll=self.unroll)
        if self.kind != "simple_rnn":
            kw["recurrent_activation"] = self.recurrent_activation
            kw["implementation"] = self.implementation
        if self.kind == "gru":
            kw["reset_after"] = self.reset_after
        if self.kind == "lstm":
            kw["unit_forget_bias"] = self.unit_forget_bias
        if self.zero_output_for_mask is not None:
            kw["zero_output_for_mask"] = self.zero_output_for_mask
        return kw

    def cell_spec(self, hard_sigmoid):
        return reference.CellSpec(
            kind=self.kind, units=self.units, activation=self.activation,
            recurrent_activation=self.recurrent_activation if self.kind != "simple_rnn" else "sigmoid",
            use_bias=self.use_bias, reset_after=self.reset_after, hard_sigmoid=hard_sigmoid)

    @property
    def n_states(self):
        per_layer = 2 if self.kind == "lstm" else 1
        return per_layer * (2 if self.bidirectional else 1)

    def one_line(self, features=None):
        """The configuration on one line, for failure messages and reports."""
        fields = [f"{k}={v!r}" for k, v in self.__dict__.items() if v != getattr(DEFAULT, k)]
        if features is not None:
            fields.insert(0, f"features={features}")
        return f"{self.kind}(units={self.units}" + "".join(", " + f for f in fields if not f.startswith(("kind=", "units="))) + ")"


DEFAULT = LayerConfig()


@dataclass
class Case:
    config: LayerConfig
    features: int
    weights: list                   # Keras order; Bidirectional: forward then backward
    x: np.ndarray                   # (batch, timesteps, features)
    mask: Optional[np.ndarray] = None
    initial_state: Optional[list] = None
    training: bool = False
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    stateful_batch: Optional[int] = None   # a stateful layer built for this batch size
    stored_states: Optional[list] = None   # a stateful layer's states before this call (when it is given initial_state)

    @property
    def batch(self):
        return self.x.shape[0]

    @property
    def timesteps(self):
        return self.x.shape[1]


def layer_weight_shapes(config, features):
    shapes = [s for _, s in weight_shapes(config.kind, config.units, features,
                                          use_bias=config.use_bias, reset_after=config.reset_after)]
    return shapes * (2 if config.bidirectional else 1)


def random_weights(config, features, rng, recurrent_gain=0.8, kernel_gain=1.0, bias_scale=0.5):
    """Fan-in-scaled weights, different for every gate.

    kernel ~ N(0, kernel_gain^2/features), recurrent_kernel ~ N(0, gain^2/units),
    bias ~ U(-bias_scale, bias_scale). Bounding the recurrent gain keeps the
    dynamics contracting, so a float32 run stays within ~1e-6 of the float64
    reference over many steps (unscaled N(0, 0.25) weights at 128 units are
    chaotic: float32 then drifts O(1) from float64 after 50 steps). The
    saturating tier (``spec/tiers.py``) raises ``kernel_gain`` and
    ``bias_scale`` to push gate pre-activations past |x| = 3.
    """
    out = []
    for i, shape in enumerate(layer_weight_shapes(config, features)):
        role = i % (3 if config.use_bias else 2)
        if role == 0:
            w = rng.standard_normal(shape) * kernel_gain / np.sqrt(features)
        elif role == 1:
            w = rng.standard_normal(shape) * recurrent_gain / np.sqrt(config.units)
        else:
            w = rng.uniform(-bias_scale, bias_scale, shape)
        out.append(w.astype(np.float32).astype(np.float64))
    return out


def with_flags(config, **changes):
    return replace(config, **changes)


# --------------------------------------------------------------------------- keras side

def keras_layer(config, features, batch=None, stateful=False, dropout=0.0, recurrent_dropout=0.0, seed=None,
                extra=None):
    """The Keras layer under test, built for inputs (batch, None, features); ``seed`` is the
    layers' dropout seed (Keras 3 only, ``dropout_seed_argument`` in conventions.toml);
    ``extra``: more constructor arguments, passed as they are.

    Every claim that builds its layer here sets the weights before calling it, so the kernels
    are initialized with "zeros" instead of the defaults: the default orthogonal
    recurrent_initializer runs a QR decomposition per new shape, which JAX compiles (measured,
    Keras 3.15.1 / JAX CPU: 18 LSTM builds 31.7 s with the defaults, 2.6 s with zeros; torch
    0.45 s / 0.08 s). The initializers themselves are claims of spec/test_initializers.py."""
    from rnnspec.spec import adapter
    kwargs = config.keras_kwargs()
    kwargs.update(kernel_initializer="zeros", recurrent_initializer="zeros")
    if stateful:
        kwargs["stateful"] = True
    if dropout or recurrent_dropout:
        kwargs.update(dropout=dropout, recurrent_dropout=recurrent_dropout)
    if seed is not None:
        kwargs["seed"] = seed
    kwargs.update(extra or {})
    layer = adapter.make_layer(config.kind, config.units, **kwargs)
    if config.bidirectional:
        layer = adapter.bidirectional(layer, merge_mode=None if config.bidirectional == "none" else config.bidirectional)
    return adapter.build(layer, batch, features)


# --------------------------------------------------------------------------- reference side

def _split_states(states, n):
    return (list(states[:n]), list(states[n:])) if states is not None else (None, None)


def reference_outputs(case, hard_sigmoid):
    """What Keras must return for ``case``, as a list in Keras's order.

    ``[output]`` (Bidirectional with merge_mode=None: ``[forward, backward]``),
    followed by the final states when ``return_state``.
    """
    c = case.config
    spec = c.cell_spec(hard_sigmoid)
    per = 3 if c.use_bias else 2
    weights = case.weights

    def unpack(ws):
        return (ws[0], ws[1], ws[2] if c.use_bias else None)

    zofm = c.zero_output_for_mask
    if not c.bidirectional:
        res = reference.run_layer(spec, case.x, *unpack(weights), mask=case.mask,
                                  initial_state=case.initial_state, go_backwards=c.go_backwards,
                                  zero_output_for_mask=bool(zofm))
        outs = [res.output(c.return_sequences)]
        states = list(res.states)
    else:
        n = spec.n_states
        mode = None if c.bidirectional == "none" else c.bidirectional
        init = None if case.initial_state is None else _split_states(case.initial_state, n)
        merged, fw_states, bw_states = reference.run_bidirectional(
            spec, case.x, unpack(weights[:per]), unpack(weights[per:]), merge_mode=mode,
            return_sequences=c.return_sequences, mask=case.mask, initial_state=init,
            zero_output_for_mask=zofm)
        outs = merged if isinstance(merged, list) else [merged]
        states = list(fw_states) + list(bw_states)
    return outs + states if c.return_state else outs


def gradient_names(case):
    """Names of the gradients :func:`reference_gradients` returns, in order: the weights in
    Keras's order (Bidirectional: forward then backward), ``x``, then each initial state."""
    c = case.config
    per = ["kernel", "recurrent_kernel"] + (["bias"] if c.use_bias else [])
    state_names = ["h", "c"] if c.kind == "lstm" else ["h"]
    halves = ["forward ", "backward "] if c.bidirectional else [""]
    names = [h + w for h in halves for w in per] + ["x"]
    if case.initial_state is not None:
        names += [f"{h}initial_state {s}" for h in halves for s in state_names]
    return names


def reference_gradients(case, hard_sigmoid, coefficients):
    """dL/d(weights, x, initial state) for ``L = sum_i sum(coefficients[i] * outputs[i])``,
    where ``outputs`` is :func:`reference_outputs`'s list; as ``[(name, array)]`` in the order
    of :func:`gradient_names`."""
    from rnnspec.reference.gradients import bidirectional_gradients, layer_gradients
    c = case.config
    spec = c.cell_spec(hard_sigmoid)
    per = 3 if c.use_bias else 2
    weights = case.weights
    coefficients = [np.asarray(k, np.float64) for k in coefficients]
    d_output = coefficients[:1] if c.bidirectional != "none" else coefficients[:2]
    d_states = coefficients[len(d_output):] if c.return_state else []

    def unpack(ws):
        return (ws[0], ws[1], ws[2] if c.use_bias else None)

    def weight_grads(g):
        return [g["kernel"], g["recurrent_kernel"]] + ([g["bias"]] if c.use_bias else [])

    d_out = d_output[0] if c.bidirectional != "none" else d_output
    if not c.bidirectional:
        g = layer_gradients(spec, case.x, *unpack(weights), mask=case.mask,
                            initial_state=case.initial_state, go_backwards=c.go_backwards,
                            zero_output_for_mask=bool(c.zero_output_for_mask),
                            d_states=d_states or None,
                            **({"d_sequence": d_out} if c.return_sequences else {"d_last": d_out}))
        grads = weight_grads(g) + [g["x"]]
        if case.initial_state is not None:
            grads += g["initial_state"]
    else:
        n = spec.n_states
        mode = None if c.bidirectional == "none" else c.bidirectional
        init = None if case.initial_state is None else _split_states(case.initial_state, n)
        g = bidirectional_gradients(
            spec, case.x, unpack(weights[:per]), unpack(weights[per:]), merge_mode=mode,
            return_sequences=c.return_sequences, mask=case.mask, initial_state=init,
            zero_output_for_mask=c.zero_output_for_mask, d_output=d_out,
            d_forward_states=d_states[:n] or None, d_backward_states=d_states[n:] or None)
        grads = weight_grads(g["forward"]) + weight_grads(g["backward"]) + [g["x"]]
        if case.initial_state is not None:
            grads += g["forward"]["initial_state"] + g["backward"]["initial_state"]
    return list(zip(gradient_names(case), grads))
