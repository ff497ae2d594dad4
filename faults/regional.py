"""Regional faults: bugs that change Keras's results only inside one small region.

The faults of :mod:`rnnspec.faults.catalogue` are global: a gate order, an activation,
a time-order bug changes nearly every example, so a spec that draws a handful
of tiny layers catches them within seconds. Real bugs are often regional: they
live in one branch (the unrolled loop, one merge mode, reset_after=False), at
sizes the spec never draws (units > 32, timesteps > 8), where values saturate
(|x| > 3), on the training path, or in the very region a known divergence
already covers (where the spec skips every example). These faults measure how
well the spec covers those regions.

Every fault here:

- imitates a real bug class (``imitates``, one line) and says where it acts
  (``region``, one line);
- is *confined*: outside its region it calls the original code unchanged, or
  selects the original values with ``where`` (bit for bit the same results,
  in eager calls and in traced graphs: the activation faults act on the
  activation's output, or are written out, so that grappler fuses and
  re-associates the graph exactly as without the fault);
- is *non-equivalent*: inside its region some input gives a different result.
  ``tests/test_regional_faults.py`` holds one hand-chosen example inside and
  one outside each region;
- is implemented for Keras 3 (``keras.src``) and checked on the TensorFlow
  backend, on the generic (non-cuDNN) path that every TF CPU run takes. They
  patch the backend's ``rnn`` loop, a cell's ``call``, ``RNN.call`` or
  ``Bidirectional.call`` with ``keras.ops``, but other backends take other
  paths: on torch, LSTM/GRU without a mask run a fused CPU kernel
  (``backend.lstm``/``gru``) that bypasses both the cell and the loop, and
  unroll + go_backwards + mask raises. 14 of the 59 checks in
  ``tests/test_regional_faults.py`` fail there, so that file runs on TF only.

They register into :data:`rnnspec.faults.catalogue.CATALOGUE` (this module is imported
at the end of ``faults/catalogue.py``). ``REGIONAL`` lists their names.
"""

import inspect

import numpy as np

from rnnspec.faults.catalogue import _activation_fault, _is_nested, _rnn_fault, _src, _views, fault

REGIONAL = []


def regional(name, imitates, region, expected="spec/test_equivalence.py", majors=(3,)):
    """``@fault`` for a regional fault: also records its name in ``REGIONAL``."""
    REGIONAL.append(name)
    return fault(name, imitates, majors=majors, expected=expected, region=region)


def _ops():
    from keras import ops
    return ops


def _mask2d(mask):
    """The loop's mask as a (batch, T) bool tensor."""
    ops = _ops()
    if len(mask.shape) == 3:
        mask = mask[:, :, 0]
    return ops.cast(mask, "bool")


def _last_processed(t, go_backwards):
    """The slice of ``t`` (batch, T, ...) at the last processed step."""
    return t[:, 0] if go_backwards else t[:, -1]


def _positions(x):
    """(batch, T, 1) float: 0, 1, ..., T-1 along the time axis (works for a dynamic T)."""
    ops = _ops()
    ones = ops.ones_like(x[:, :, :1])
    return ops.cumsum(ones, axis=1) - 1.0


def _no_dropout(layer_or_cell):
    cell = getattr(layer_or_cell, "cell", layer_or_cell)
    return not getattr(cell, "dropout", 0) and not getattr(cell, "recurrent_dropout", 0)


def _bind(original):
    sig = inspect.signature(original)

    def bind(*args, **kwargs):
        b = sig.bind(*args, **kwargs)
        b.apply_defaults()
        return b.arguments
    return bind


def _wrap_rnn_layer_call(p, make):
    p.wrap(_src("layers.rnn.rnn").RNN, "call", make)


# --------------------------------------------------------------------------- the unrolled loop

@regional("unroll_initial_state_dropped",
          "the unrolled branch of the loop starts from zeros instead of initial_states (a copy of "
          "the zero-state setup pasted into the Python-unrolled loop)",
          region="unroll=True with a non-zero initial state (initial_state given, or stateful after "
                 "the first call)")
def _(p):
    def transform(original, a):
        if a["unroll"]:
            ops = _ops()
            a = dict(a, initial_states=[ops.zeros_like(s) for s in a["initial_states"]])
        return original(**a)
    _rnn_fault(p, transform)


@regional("unroll_last_output_unmasked",
          "unrolled loop: last_output taken from the raw step output of the final iteration, "
          "before the mask's tf.where (masked steps are handled for the sequence only)",
          region="unroll=True, return_sequences=False, a mask whose last processed step is masked "
                 "in some row")
def _(p):
    def transform(original, a):
        mask = a["mask"]
        if not a["unroll"] or mask is None or a["return_all_outputs"]:
            return original(**a)
        ops = _ops()
        last, outputs, states = original(**a)
        # A masked last step holds the states: the final states are the ones it started from.
        x_last = _last_processed(a["inputs"], a["go_backwards"])
        raw, _ = a["step_function"](x_last, tuple(states) + tuple(a["constants"] or ()))
        keep = ops.expand_dims(_last_processed(_mask2d(mask), a["go_backwards"]), -1)
        return ops.where(keep, last, raw), outputs, states
    _rnn_fault(p, transform)


# --------------------------------------------------------------------------- Bidirectional

@regional("bidirectional_mul_backward_not_rereversed",
          "Bidirectional merge_mode='mul' multiplies the backward sequence in processing order: a "
          "refactor moved the re-reversal into the merge branches and missed 'mul'",
          region="Bidirectional with merge_mode='mul' and return_sequences=True")
def _(p):
    module = _src("layers.rnn.bidirectional")
    from rnnspec.faults.catalogue import _ModuleProxy

    def make(original):
        def call(self, *args, **kwargs):
            if self.merge_mode != "mul" or not self.return_sequences:
                return original(self, *args, **kwargs)
            saved = module.ops
            module.ops = _ModuleProxy(saved, flip=lambda x, axis=None: x)
            try:
                return original(self, *args, **kwargs)
            finally:
                module.ops = saved
        return call
    p.wrap(module.Bidirectional, "call", make)


@regional("bidirectional_unrolled_mask_reversed_for_forward",
          "a workaround for the unrolled go_backwards mask bug pre-reverses the mask, but hands the "
          "reversed mask to the forward half of Bidirectional",
          region="Bidirectional over an unrolled layer, return_sequences=True, with a mask (inside "
                 "the known divergence unroll-backwards-zero-output-mask, which the spec skips)")
def _(p):
    module = _src("layers.rnn.bidirectional")

    def make(original):
        bind = _bind(original)

        def call(self, *args, **kwargs):
            a = bind(self, *args, **kwargs)
            mask = a["mask"]
            if (mask is None or _is_nested(mask) or not self.return_sequences
                    or not getattr(self.forward_layer, "unroll", False)):
                return original(self, *args, **kwargs)
            ops = _ops()
            sequences, initial_state = a["sequences"], a["initial_state"]
            kw = {}
            if self.forward_layer._call_has_training_arg:
                kw["training"] = a["training"]
            forward_state = backward_state = None
            if initial_state is not None:
                half = len(initial_state) // 2
                forward_state, backward_state = initial_state[:half], initial_state[half:]
            y = self.forward_layer(sequences, initial_state=forward_state,
                                   mask=ops.flip(mask, axis=1), **kw)
            y_rev = self.backward_layer(sequences, initial_state=backward_state, mask=mask, **kw)
            # the rest is Bidirectional.call's, unchanged
            if self.return_state:
                states = tuple(y[1:] + y_rev[1:])
                y, y_rev = y[0], y_rev[0]
            y = ops.cast(y, self.compute_dtype)
            y_rev = ops.flip(ops.cast(y_rev, self.compute_dtype), axis=1)
            mode = self.merge_mode
            if mode == "concat":
                output = ops.concatenate([y, y_rev], axis=-1)
            elif mode == "sum":
                output = y + y_rev
            elif mode == "ave":
                output = (y + y_rev) / 2
            elif mode == "mul":
                output = y * y_rev
            else:
                output = (y, y_rev)
            if self.return_state:
                return output + states if mode is None else (output,) + states
            return output
        return call
    p.wrap(module.Bidirectional, "call", make)


# --------------------------------------------------------------------------- masks

@regional("fully_masked_row_length_clamped_to_one",
          "mask converted to cuDNN-style sequence lengths clamped to >= 1 (zero-length rows are "
          "refused by the kernel), so a fully masked row runs its first step",
          region="a mask with a fully masked row")
def _(p):
    def transform(original, a):
        if a["mask"] is None:
            return original(**a)
        ops = _ops()
        m = _mask2d(a["mask"])
        empty = ops.logical_not(ops.any(m, axis=1, keepdims=True))
        first = ops.equal(_positions(a["inputs"])[:, :, 0], 0.0)
        return original(**dict(a, mask=ops.logical_or(m, ops.logical_and(empty, first))))
    _rnn_fault(p, transform)


@regional("mask_holes_compacted_to_span",
          "mask converted to (start, length) per row for a packed-sequence kernel (ONNX/cuDNN "
          "style), silently assuming every row's kept steps are contiguous",
          region="a mask with holes (a row whose kept steps are not one contiguous run)")
def _(p):
    def transform(original, a):
        if a["mask"] is None:
            return original(**a)
        ops = _ops()
        m = _mask2d(a["mask"])
        pos = _positions(a["inputs"])[:, :, 0]
        big = ops.ones_like(pos) * 1e9
        start = ops.min(ops.where(m, pos, big), axis=1, keepdims=True)
        length = ops.sum(ops.cast(m, pos.dtype), axis=1, keepdims=True)
        span = ops.logical_and(ops.greater_equal(pos, start), ops.less(pos, start + length))
        return original(**dict(a, mask=span))
    _rnn_fault(p, transform)


@regional("final_state_not_held_at_masked_tail",
          "the returned/stored final state is the step function's raw result of the last "
          "iteration, not the masked carry (the last iteration's tf.where on the states lost)",
          region="return_state or stateful, with a mask whose last processed step is masked in "
                 "some row")
def _(p):
    def transform(original, a):
        mask = a["mask"]
        if mask is None:
            return original(**a)
        ops = _ops()
        last, outputs, states = original(**a)
        x_last = _last_processed(a["inputs"], a["go_backwards"])
        _, raw = a["step_function"](x_last, tuple(states) + tuple(a["constants"] or ()))
        raw = list(raw) if _is_nested(raw) else [raw]
        keep = ops.expand_dims(_last_processed(_mask2d(mask), a["go_backwards"]), -1)
        return last, outputs, [ops.where(keep, s, r) for s, r in zip(states, raw)]
    _rnn_fault(p, transform)


@regional("stateful_masked_call_starts_from_zeros",
          "stateful layer called with a mask takes a separate masked code path that builds its "
          "initial state with get_initial_state (zeros) instead of reading self.states",
          region="stateful=True, called with a mask, after the first call",
          expected="spec/test_stateful.py")
def _(p):
    def make(original):
        bind = _bind(original)

        def call(self, *args, **kwargs):
            a = bind(self, *args, **kwargs)
            if self.stateful and a["mask"] is not None and a["initial_state"] is None:
                ops = _ops()
                a["initial_state"] = self.get_initial_state(batch_size=ops.shape(a["sequences"])[0])
                a.pop("self")
                return original(self, **a)
            return original(self, *args, **kwargs)
        return call
    _wrap_rnn_layer_call(p, make)


# --------------------------------------------------------------------------- GRU variants

def _gru_gate_inputs(cell, inputs, h_tm1):
    """Keras's GRU projections, shared by the GRU faults below (inference, no dropout)."""
    ops = _ops()
    u = cell.units
    kernel = ops.convert_to_tensor(cell.kernel)
    rec = ops.convert_to_tensor(cell.recurrent_kernel)
    b_in = b_rec = None
    if cell.use_bias:
        bias = ops.convert_to_tensor(cell.bias)
        b_in, b_rec = (bias[0], bias[1]) if cell.reset_after else (bias, None)
    x = ops.matmul(inputs, kernel)
    if b_in is not None:
        x = x + b_in
    return u, rec, b_rec, x


@regional("gru_reset_after_false_ignored_impl2",
          "GRU implementation=2 (one fused recurrent matmul) always uses the reset_after=True "
          "formula r*(h.U_h); only implementation=1 honours reset_after=False",
          region="GRU with reset_after=False and implementation=2 (also both halves of any "
                 "Bidirectional GRU: its copies run implementation=2)")
def _(p):
    def make(original):
        def call(self, inputs, states, training=False):
            dropping = training and (self.dropout or self.recurrent_dropout)
            if self.reset_after or self.implementation != 2 or dropping:
                return original(self, inputs, states, training=training)
            ops = _ops()
            nested = _is_nested(states)
            h_tm1 = states[0] if nested else states
            u, rec, _, x = _gru_gate_inputs(self, inputs, h_tm1)
            inner = ops.matmul(h_tm1, rec)
            z = self.recurrent_activation(x[:, :u] + inner[:, :u])
            r = self.recurrent_activation(x[:, u:2 * u] + inner[:, u:2 * u])
            hh = self.activation(x[:, 2 * u:] + r * inner[:, 2 * u:])
            h = z * h_tm1 + (1 - z) * hh
            return h, ([h] if nested else h)
        return call
    p.wrap(_src("layers.rnn.gru").GRUCell, "call", make)


@regional("gru_impl1_candidate_bias_outside_reset",
          "GRU reset_after=True, implementation=1: the recurrent candidate bias is added after the "
          "reset gate, r*(h.U_h) + b_rh, instead of r*(h.U_h + b_rh) (per-gate path only)",
          region="GRU with implementation=1, reset_after=True and use_bias=True (not under "
                 "Bidirectional, whose copies run implementation=2)")
def _(p):
    def make(original):
        def call(self, inputs, states, training=False):
            dropping = training and (self.dropout or self.recurrent_dropout)
            if not self.reset_after or self.implementation != 1 or not self.use_bias or dropping:
                return original(self, inputs, states, training=training)
            ops = _ops()
            nested = _is_nested(states)
            h_tm1 = states[0] if nested else states
            u, rec, b_rec, x = _gru_gate_inputs(self, inputs, h_tm1)
            rz = ops.matmul(h_tm1, rec[:, :u]) + b_rec[:u]
            rr = ops.matmul(h_tm1, rec[:, u:2 * u]) + b_rec[u:2 * u]
            z = self.recurrent_activation(x[:, :u] + rz)
            r = self.recurrent_activation(x[:, u:2 * u] + rr)
            rh = r * ops.matmul(h_tm1, rec[:, 2 * u:]) + b_rec[2 * u:]
            hh = self.activation(x[:, 2 * u:] + rh)
            h = z * h_tm1 + (1 - z) * hh
            return h, ([h] if nested else h)
        return call
    p.wrap(_src("layers.rnn.gru").GRUCell, "call", make)


# --------------------------------------------------------------------------- activations

@regional("relu_is_relu6",
          "activation='relu' resolves to relu6 (capped at 6), as in converters and mobile "
          "runtimes that lower ReLU to ReLU6",
          region="activation='relu' with a pre-activation above 6")
def _(p):
    def perturb(f):
        ops = _ops()
        return lambda x: ops.minimum(f(x), 6.0)
    _activation_fault(p, "relu", perturb)


@regional("sigmoid_table_clamped_beyond_3",
          "a lookup-table fast sigmoid whose table spans [-3, 3] and clamps its index outside "
          "(sigmoid(5) = sigmoid(3) = 0.9526)",
          region="sigmoid (activation or recurrent_activation) at |x| > 3: saturating gates")
def _(p):
    # sigmoid(clip(x, -3, 3)) computed on the output alone: x keeps sigmoid as its only
    # consumer, so a traced graph fuses it exactly as before (bit-exact outside |x| > 3).
    def perturb(f):
        ops = _ops()
        lo, hi = (float(np.float32(1 / (1 + np.exp(v)))) for v in (3.0, -3.0))
        return lambda x: ops.clip(f(x), lo, hi)
    _activation_fault(p, "sigmoid", perturb)


@regional("hard_sigmoid_lower_clip_missing",
          "hard_sigmoid = relu6(x + 3) / 6 with relu6 written as min(x, 6): the lower clip is lost "
          "and hard_sigmoid(x) < 0 for x < -3",
          region="hard_sigmoid (activation or recurrent_activation) at x < -3: a gate saturated "
                 "shut")
def _(p):
    # Written out, not wrapped around the original: a second consumer of x would stop
    # grappler from re-associating the add chain (mm + b) + 3 in a traced graph, and that
    # changes the last bit of hard_sigmoid outside the region too.
    def perturb(f):
        ops = _ops()
        return lambda x: ops.minimum(x + 3.0, 6.0) / 6.0
    _activation_fault(p, "hard_sigmoid", perturb)


# --------------------------------------------------------------------------- sizes beyond the tiny tier

@regional("lstm_recurrent_tail_tile_dropped",
          "tiled GEMM in the LSTM recurrent matmul: the K loop runs floor(units/32) tiles of 32, so "
          "the tail tile of h is never multiplied in",
          region="LSTM with units > 32 and units not a multiple of 32")
def _(p):
    def make(original):
        def call(self, *args, **kwargs):
            u = self.units
            if u <= 32 or u % 32 == 0:
                return original(self, *args, **kwargs)
            ops = _ops()
            keep = u // 32 * 32
            rec = ops.convert_to_tensor(self.recurrent_kernel)
            rec = ops.concatenate([rec[:keep], ops.zeros_like(rec[keep:])], axis=0)
            with _views(self, recurrent_kernel=rec):
                return original(self, *args, **kwargs)
        return call
    p.wrap(_src("layers.rnn.lstm").LSTMCell, "call", make)


CHUNK = 8


@regional("chunked_loop_resets_state_every_8",
          "a chunked scan (8 steps per chunk, for memory) restarts every chunk from the initial "
          "state instead of the previous chunk's final state",
          region="more than 8 timesteps (from the 9th processed step on)")
def _(p):
    def transform(original, a):
        x = a["inputs"]
        if x.shape[1] is not None and x.shape[1] <= CHUNK:
            return original(**a)
        ops = _ops()
        pos = _positions(x)
        if a["go_backwards"]:
            pos = ops.flip(pos, axis=1)                    # processing position of each input step
        init = list(a["initial_states"])
        n = len(init)
        step = a["step_function"]

        def chunked_step(inp, states):
            x_t, pos_t = inp[:, :-1], inp[:, -1:]
            states = list(states)
            cur, first = states[:n], states[n:]
            restart = ops.logical_and(ops.greater(pos_t, 0.0), ops.equal(ops.mod(pos_t, float(CHUNK)), 0.0))
            cur = [ops.where(restart, f, c) for c, f in zip(cur, first)]
            out, new = step(x_t, tuple(cur))
            new = list(new) if _is_nested(new) else [new]
            return out, new + first

        # the processing position rides along as one more input feature; the initial
        # states ride along as extra (constant) states
        last, outputs, states = original(**dict(
            a, step_function=chunked_step, inputs=ops.concatenate([x, ops.cast(pos, x.dtype)], axis=-1),
            initial_states=init + init))
        return last, outputs, list(states)[:n]
    _rnn_fault(p, transform)


# --------------------------------------------------------------------------- the training path

def _wants_training(a):
    return bool(a.get("training")) if not hasattr(a.get("training"), "shape") else False


@regional("training_ignores_go_backwards",
          "training=True without dropout dispatches to a fused training kernel (dropout would "
          "disable it) that is never passed go_backwards: the sequence runs forwards",
          region="training=True, no dropout, go_backwards=True (also Bidirectional's backward "
                 "half)",
          expected="spec/test_dropout.py")
def _(p):
    def make(original):
        bind = _bind(original)

        def call(self, *args, **kwargs):
            a = bind(self, *args, **kwargs)
            if self.go_backwards and _wants_training(a) and _no_dropout(self):
                with _views(self, go_backwards=False):
                    return original(self, *args, **kwargs)
            return original(self, *args, **kwargs)
        return call
    _wrap_rnn_layer_call(p, make)


@regional("training_forces_sigmoid_recurrent_activation",
          "training=True without dropout takes a fused cuDNN-style kernel whose eligibility check "
          "skips recurrent_activation: hard_sigmoid/tanh gates become sigmoid in training",
          region="LSTM/GRU, training=True, no dropout, recurrent_activation other than sigmoid",
          expected="spec/test_dropout.py")
def _(p):
    from keras.src import activations

    def make(original):
        def call(self, inputs, states, training=False):
            ra = self.recurrent_activation
            if (training is True or (training and not hasattr(training, "shape"))) \
                    and _no_dropout(self) and getattr(ra, "__name__", "") != "sigmoid":
                with _views(self, recurrent_activation=activations.sigmoid):
                    return original(self, inputs, states, training=training)
            return original(self, inputs, states, training=training)
        return call
    p.wrap(_src("layers.rnn.lstm").LSTMCell, "call", make)
    p.wrap(_src("layers.rnn.gru").GRUCell, "call", make)


# --------------------------------------------------------------------------- the known-divergence region

@regional("unrolled_backwards_zofm_states_not_held",
          "the unrolled loop's go_backwards + zero_output_for_mask branch (the lines of the known "
          "divergence) zeroes masked outputs but forgets to hold the states at masked steps",
          region="unroll=True, go_backwards (or Bidirectional's backward half), "
                 "zero_output_for_mask, with a mask: the known divergence "
                 "unroll-backwards-zero-output-mask, which the spec skips")
def _(p):
    def transform(original, a):
        if not (a["unroll"] and a["go_backwards"] and a["zero_output_for_mask"]) or a["mask"] is None:
            return original(**a)
        last, outputs, _ = original(**a)
        # states never held at masked steps evolve exactly as in the unmasked run
        _, _, states = original(**dict(a, mask=None))
        return last, outputs, states
    _rnn_fault(p, transform)


# --------------------------------------------------------------------------- other thin regions

@regional("single_step_ignores_initial_state",
          "a timesteps == 1 fast path (the step run as a Dense layer on the input) that starts "
          "from zeros instead of the initial or stored state",
          region="exactly 1 timestep with a non-zero initial state (initial_state given, or "
                 "stateful after the first call)")
def _(p):
    def transform(original, a):
        t = a["inputs"].shape[1]
        if t is not None and t != 1:
            return original(**a)
        ops = _ops()
        init = list(a["initial_states"])
        if t == 1:
            init = [ops.zeros_like(s) for s in init]
        else:   # unknown length (a traced graph): decide per call
            one = ops.equal(ops.shape(a["inputs"])[1], 1)
            init = [ops.where(one, ops.zeros_like(s), s) for s in init]
        return original(**dict(a, initial_states=init))
    _rnn_fault(p, transform)


@regional("go_backwards_reverses_state_list",
          "go_backwards reverses the list of initial states along with the inputs (reverse() on "
          "the wrong list), so LSTM starts from (c, h) instead of (h, c)",
          region="go_backwards=True (or Bidirectional's backward half), LSTM, with a non-zero "
                 "initial state")
def _(p):
    def transform(original, a):
        init = list(a["initial_states"])
        if a["go_backwards"] and len(init) > 1:
            a = dict(a, initial_states=init[::-1])
        return original(**a)
    _rnn_fault(p, transform)
