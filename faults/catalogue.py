"""The fault catalogue: realistic bugs, injected into the installed Keras by monkeypatching.

Every fault names the real-world bug it imitates and patches the place where
the real code lives: a cell's ``call`` (the per-step math), the backend's
``rnn`` loop (time order, masks, off-by-ones), ``RNN.call`` (initial and
stateful state, ``training``), ``Bidirectional.call``, ``activations.get``,
an initializer in ``LSTMCell.build``, ``Masking``. The original is always
called where possible and its inputs or outputs perturbed, so a fault changes
one thing only.

Keras versions. ``majors`` says where a fault is implemented: 3 is Keras 3
(``keras.src``, any backend for the loop-level faults; the TF backend is
the main target), 2 is Keras 2.15 / tf-keras (``keras.src`` / ``tf_keras.src``),
where LSTM and GRU with the default activations run ``standard_lstm`` /
``standard_gru`` instead of their cell, so cell faults also patch those.

Cell-level faults patch the generic (non-cuDNN) path, the one every CPU run
takes. On a GPU, an LSTM/GRU with the cuDNN-compatible configuration runs a
fused kernel and bypasses the cell: those faults then only reach the
configurations cuDNN refuses.

Usage::

    from rnnspec.faults import get
    undo = get("lstm_gate_order_if").apply()
    ...            # Keras now has the bug
    undo()         # every patched attribute is restored (identity)

    with get("lstm_gate_order_if").active():
        ...
"""

import contextlib
import functools
import importlib
from dataclasses import dataclass
from typing import Callable

# --------------------------------------------------------------------------- machinery


class Patcher:
    """Records ``setattr`` on modules and classes, and undoes them in reverse order."""

    def __init__(self):
        self.records = []          # (owner, attr, had_own_attribute, original_value)

    def set(self, owner, attr, value):
        own = vars(owner)
        self.records.append((owner, attr, attr in own, own.get(attr)))
        setattr(owner, attr, value)

    def wrap(self, owner, attr, make):
        """Replace ``owner.attr`` by ``make(original)``, keeping the original's name and signature."""
        original = getattr(owner, attr)
        replacement = make(original)
        functools.update_wrapper(replacement, original)
        if not _k3():
            # Keras 2 reads call signatures with tf_inspect (has_arg, call_spec), which
            # follows TFDecorator, not __wrapped__: without this a (*args, **kwargs)
            # wrapper would hide `initial_state`, `training`, `mask` from Keras.
            from tensorflow.python.util import tf_decorator
            replacement = tf_decorator.make_decorator(original, replacement)
        self.set(owner, attr, replacement)
        return replacement

    def undo(self):
        while self.records:
            owner, attr, had, original = self.records.pop()
            if had:
                setattr(owner, attr, original)
            else:
                delattr(owner, attr)


@dataclass(frozen=True)
class Fault:
    name: str
    imitates: str                          # one line: the real-world bug
    majors: tuple                          # Keras major versions where it is implemented
    expected: str                          # the spec module that should catch it
    install: Callable[[Patcher], None]
    region: str = "global"                 # where it changes Keras's results (faults/regional.py)
    backends: tuple = ()                   # Keras 3 backends where it applies (faults/gpu.py); () = any

    def supported(self, major=None):
        if self.backends and major is None and _adapter().BACKEND not in self.backends:
            return False
        return (major if major is not None else _adapter().KERAS_MAJOR) in self.majors

    def apply(self):
        """Inject the fault; return a callable that undoes it.

        The callable has a ``patches`` attribute: ``[(owner, attr, original)]``
        (original is None when the attribute was inherited, not owned).
        """
        if not self.supported():
            raise RuntimeError(f"fault {self.name!r} is implemented for Keras {self.majors}, "
                               f"not Keras {_adapter().KERAS_VERSION}")
        patcher = Patcher()
        try:
            self.install(patcher)
        except Exception:
            patcher.undo()
            raise
        records = list(patcher.records)

        def undo():
            patcher.undo()
        undo.patches = [(owner, attr, orig if had else None) for owner, attr, had, orig in records]
        undo.records = records
        return undo

    @contextlib.contextmanager
    def active(self):
        undo = self.apply()
        try:
            yield self
        finally:
            undo()


CATALOGUE = []


def fault(name, imitates, majors=(3,), expected="spec/test_equivalence.py", region="global"):
    def register(install):
        CATALOGUE.append(Fault(name, imitates, tuple(majors), expected, install, region))
        return install
    return register


def get(name):
    from rnnspec.faults.gpu import GPU_FAULTS
    for f in CATALOGUE + GPU_FAULTS:
        if f.name == name:
            return f
    raise KeyError(f"unknown fault {name!r}; known: {', '.join(names())}")


def names():
    return [f.name for f in CATALOGUE]


# --------------------------------------------------------------------------- keras access

def _adapter():
    from rnnspec.spec import adapter
    return adapter


def _k3():
    return _adapter().IS_KERAS3


def _src(path):
    """``keras.src.<path>`` (or ``tf_keras.src.<path>``) of the Keras under test."""
    return _adapter().internal_module(path)


def _rnn_layer_module():
    return _src("layers.rnn.rnn" if _k3() else "layers.rnn.base_rnn")


class _Ops:
    """The few tensor ops the faults need: keras.ops on Keras 3, TensorFlow on Keras 2."""

    def __init__(self):
        if _k3():
            from keras import ops
            self.k3, self.o = True, ops
        else:
            import tensorflow as tf
            self.k3, self.o = False, tf

    def tensor(self, v):
        return self.o.convert_to_tensor(v)

    def split(self, x, n, axis=-1):
        return self.o.split(x, n, axis=axis)

    def concat(self, xs, axis=-1):
        return self.o.concatenate(xs, axis=axis) if self.k3 else self.o.concat(xs, axis=axis)

    def flip(self, x, axis):
        return self.o.flip(x, axis=axis) if self.k3 else self.o.reverse(x, [axis])

    def transpose(self, x, axes=None):
        return self.o.transpose(x, axes) if self.k3 else self.o.transpose(x, perm=axes)

    def reshape(self, x, shape):
        return self.o.reshape(x, shape)

    def where(self, c, a, b):
        return self.o.where(c, a, b)

    def zeros_like(self, x):
        return self.o.zeros_like(x)

    def ones_like(self, x):
        return self.o.ones_like(x)

    def cast(self, x, dtype):
        return self.o.cast(x, dtype)

    def cumsum(self, x, axis):
        return self.o.cumsum(x, axis=axis)

    def logical_and(self, a, b):
        return self.o.logical_and(a, b)

    def logical_not(self, a):
        return self.o.logical_not(a)

    def equal(self, a, b):
        return self.o.equal(a, b)

    def greater(self, a, b):
        return self.o.greater(a, b)

    def expand_dims(self, x, axis):
        return self.o.expand_dims(x, axis)

    def matmul(self, a, b):
        return self.o.matmul(a, b)


def _is_nested(x):
    return isinstance(x, (list, tuple))


# --------------------------------------------------------------------------- weight-view faults
#
# A gate-order or slicing bug is the same, observably, as the correct code
# reading a permuted weight. These faults wrap the cell's ``call`` and let it
# see transformed views of its kernel, recurrent kernel and bias for the
# duration of the call (the variables themselves are untouched). On Keras 2,
# LSTM/GRU with the cuDNN-compatible arguments run ``standard_lstm`` /
# ``standard_gru``, which take the weights as arguments: those are wrapped too.

_MISSING = object()


@contextlib.contextmanager
def _views(obj, **values):
    """Let ``obj.<name>`` read ``values[name]`` inside the block (bypassing layer tracking)."""
    saved = {k: obj.__dict__.get(k, _MISSING) for k in values}
    try:
        for k, v in values.items():
            object.__setattr__(obj, k, v)
        yield
    finally:
        for k, v in saved.items():
            if v is _MISSING:
                object.__delattr__(obj, k)
            else:
                object.__setattr__(obj, k, v)


def _weight_view_fault(p, cell_class_path, standard_fn, transform):
    """``transform(ops, units, name, tensor) -> tensor`` for name in kernel/recurrent_kernel/bias."""
    module_path, cls_name = cell_class_path

    def make_call(original):
        def call(self, *args, **kwargs):
            ops = _Ops()
            views = {}
            for name in ("kernel", "recurrent_kernel", "bias"):
                w = getattr(self, name, None)
                if w is not None:
                    views[name] = transform(ops, self.units, name, ops.tensor(w))
            with _views(self, **views):
                return original(self, *args, **kwargs)
        return call

    p.wrap(getattr(_src(module_path), cls_name), "call", make_call)
    if not _k3() and standard_fn:
        module = _src(module_path)

        def make_standard(original):
            import inspect
            sig = inspect.signature(original)

            def standard(*args, **kwargs):
                a = sig.bind(*args, **kwargs).arguments   # tf.function passes them positionally
                ops = _Ops()
                units = int(a["recurrent_kernel"].shape[0])
                for name in ("kernel", "recurrent_kernel", "bias"):
                    if a.get(name) is not None:
                        a[name] = transform(ops, units, name, a[name])
                return original(**a)
            return standard
        p.wrap(module, standard_fn, make_standard)


def _permute_gates(n, order):
    def transform(ops, units, name, w):
        blocks = ops.split(w, n, axis=-1)
        return ops.concat([blocks[i] for i in order], axis=-1)
    return transform


LSTM_CELL = ("layers.rnn.lstm", "LSTMCell")
GRU_CELL = ("layers.rnn.gru", "GRUCell")
SIMPLE_CELL = ("layers.rnn.simple_rnn", "SimpleRNNCell")


@fault("lstm_gate_order_if",
       "LSTM input and forget gates read from each other's column block (i<->f), as when "
       "porting weights between layouts that order the gates differently",
       majors=(2, 3))
def _(p):
    _weight_view_fault(p, LSTM_CELL, "standard_lstm", _permute_gates(4, (1, 0, 2, 3)))


@fault("lstm_gate_order_ifog",
       "LSTM gates sliced as i,f,o,c~ (Caffe/cuDNN-style order) while Keras stores i,f,c~,o",
       majors=(2, 3))
def _(p):
    _weight_view_fault(p, LSTM_CELL, "standard_lstm", _permute_gates(4, (0, 1, 3, 2)))


@fault("lstm_kernel_interleaved",
       "LSTM kernel mis-sliced: gate g of unit j read from column j*4+g (interleaved layout, "
       "as in MXNet/CNTK exports) instead of the blocked g*units+j",
       majors=(2, 3))
def _(p):
    def transform(ops, units, name, w):
        lead = tuple(int(d) for d in w.shape[:-1])
        v = ops.reshape(w, lead + (units, 4))
        v = ops.transpose(v, tuple(range(len(lead))) + (len(lead) + 1, len(lead)))
        return ops.reshape(v, lead + (4 * units,))
    _weight_view_fault(p, LSTM_CELL, "standard_lstm", transform)


@fault("gru_gate_order_zr",
       "GRU update and reset gates swapped (z<->r), as when loading PyTorch's r,z,n layout "
       "into Keras's z,r,h",
       majors=(2, 3))
def _(p):
    _weight_view_fault(p, GRU_CELL, "standard_gru", _permute_gates(3, (1, 0, 2)))


@fault("gru_bias_rows_swapped",
       "GRU reset_after=True: input bias (row 0) and recurrent bias (row 1) swapped, as in "
       "CuDNNGRU weight conversions",
       majors=(2, 3))
def _(p):
    def transform(ops, units, name, w):
        if name == "bias" and len(w.shape) == 2:
            return ops.flip(w, 0)
        return w
    _weight_view_fault(p, GRU_CELL, "standard_gru", transform)


@fault("simple_rnn_recurrent_kernel_transposed",
       "SimpleRNN computes h.U^T instead of h.U (PyTorch's (out, in) weight convention "
       "applied to a Keras (in, out) matrix)",
       majors=(2, 3))
def _(p):
    def transform(ops, units, name, w):
        return ops.transpose(w, (1, 0)) if name == "recurrent_kernel" else w
    _weight_view_fault(p, SIMPLE_CELL, None, transform)


@fault("simple_rnn_bias_dropped",
       "SimpleRNN with use_bias=True never adds its bias (the '+ b' lost in a refactor; "
       "the missing-bias class of bug)",
       majors=(2, 3))
def _(p):
    def transform(ops, units, name, w):
        return ops.zeros_like(w) if name == "bias" else w
    _weight_view_fault(p, SIMPLE_CELL, None, transform)


# --------------------------------------------------------------------------- GRU formula faults

def _gru_variant(variant):
    """A GRUCell.call that differs from Keras 3's in one term (inference; dropout defers to Keras)."""

    def make(original):
        def call(self, inputs, states, training=False):
            if training and (self.dropout or self.recurrent_dropout):
                return original(self, inputs, states, training=training)
            from keras import ops
            nested = _is_nested(states)
            h_tm1 = states[0] if nested else states
            u = self.units
            kernel = ops.convert_to_tensor(self.kernel)
            rec = ops.convert_to_tensor(self.recurrent_kernel)
            b_in = b_rec = None
            if self.use_bias:
                bias = ops.convert_to_tensor(self.bias)
                b_in, b_rec = (bias[0], bias[1]) if self.reset_after else (bias, None)
            x = ops.matmul(inputs, kernel)
            if b_in is not None:
                x = x + b_in
            inner = ops.matmul(h_tm1, rec[:, :2 * u])
            if b_rec is not None:
                inner = inner + b_rec[:2 * u]
            z = self.recurrent_activation(x[:, :u] + inner[:, :u])
            r = self.recurrent_activation(x[:, u:2 * u] + inner[:, u:])
            if self.reset_after and variant != "reset_before_matmul":
                rh = ops.matmul(h_tm1, rec[:, 2 * u:])
                if b_rec is not None:
                    rh = rh + b_rec[2 * u:]
                rh = r * rh
            else:
                rh = ops.matmul(r * h_tm1, rec[:, 2 * u:])
                if b_rec is not None:
                    rh = rh + b_rec[2 * u:]
            hh = self.activation(x[:, 2 * u:] + rh)
            if variant == "update_swapped":
                h = (1 - z) * h_tm1 + z * hh
            else:
                h = z * h_tm1 + (1 - z) * hh
            return h, ([h] if nested else h)
        return call
    return make


@fault("gru_update_convention",
       "GRU mixes h' = (1-z)*h + z*h~ (the Chung et al. 2014 / Wikipedia convention) instead of "
       "Keras's h' = z*h + (1-z)*h~")
def _(p):
    p.wrap(_src("layers.rnn.gru").GRUCell, "call", _gru_variant("update_swapped"))


@fault("gru_reset_before_matmul",
       "GRU reset_after=True applies the reset gate before the recurrent matmul, "
       "(r*h).U_h + b, i.e. the reset_after=False formula with two biases")
def _(p):
    p.wrap(_src("layers.rnn.gru").GRUCell, "call", _gru_variant("reset_before_matmul"))


# --------------------------------------------------------------------------- LSTM formula fault

@fault("lstm_cell_output_not_activated",
       "LSTM emits h = o * c instead of h = o * g(c) (the output activation forgotten)")
def _(p):
    def make(original):
        def call(self, inputs, states, training=False):
            # The cell calls self.activation twice per step, in both implementations:
            # first on the candidate c~, then on the new carry c. The second becomes identity.
            act = self.activation
            seen = [0]

            def counting(x):
                seen[0] += 1
                return x if seen[0] == 2 else act(x)
            with _views(self, activation=counting):
                return original(self, inputs, states, training=training)
        return call
    p.wrap(_src("layers.rnn.lstm").LSTMCell, "call", make)


# --------------------------------------------------------------------------- activations

def _activation_fault(p, name, perturb):
    """Cells resolve their activations with ``activations.get``: hand them a perturbed ``name``."""
    acts = _src("activations")
    target = getattr(acts, name)
    cache = {}

    def make(original):
        def get(identifier):
            fn = original(identifier)
            if fn is target:
                if "f" not in cache:
                    cache["f"] = functools.wraps(target)(perturb(target))
                return cache["f"]
            return fn
        return get
    p.wrap(acts, "get", make)


@fault("sigmoid_plus_1e_3",
       "sigmoid returns sigmoid(x) + 1e-3 (a numerically sloppy fast-sigmoid approximation)",
       majors=(2, 3))
def _(p):
    _activation_fault(p, "sigmoid", lambda f: (lambda x: f(x) + 1e-3))


@fault("tanh_scaled_1_001",
       "tanh returns 1.001 * tanh(x) (an approximation whose gain is off by 0.1%)",
       majors=(2, 3))
def _(p):
    _activation_fault(p, "tanh", lambda f: (lambda x: f(x) * 1.001))


@fault("hard_sigmoid_wrong_slope",
       "hard_sigmoid uses the other Keras major's slope: 0.2 (Keras 2) on Keras 3, 1/6 (Keras 3) "
       "on Keras 2",
       majors=(2, 3))
def _(p):
    def perturb(f):
        ops = _Ops()
        slope = 0.2 if _k3() else 1.0 / 6.0

        def hard_sigmoid(x):
            y = x * slope + 0.5
            return ops.where(ops.greater(y, 1.0), ops.ones_like(y),
                             ops.where(ops.greater(0.0, y), ops.zeros_like(y), y))
        return lambda x: hard_sigmoid(x)
    _activation_fault(p, "hard_sigmoid", perturb)


# --------------------------------------------------------------------------- the time loop
#
# ``backend.rnn(step_function, inputs, initial_states, go_backwards, mask, ...)``
# is the loop every SimpleRNN/LSTM/GRU runs on the generic path (Keras 2's
# standard_lstm/standard_gru call it too). RNN layers look it up on the
# backend module at call time, so wrapping that attribute reaches them all.

def _rnn_fault(p, transform):
    """``transform(original_rnn, args: dict) -> (last_output, outputs, states)``."""
    backend = _src("backend")

    def make(original):
        import inspect
        sig = inspect.signature(original)

        def rnn(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            a = dict(bound.arguments)
            if a.get("time_major"):
                return original(**a)
            return transform(original, a)
        return rnn
    p.wrap(backend, "rnn", make)


def _time_flags(ops, inputs, go_backwards):
    """(batch, T) booleans: is this the first processed step? is it the last processed step?"""
    ones = ops.ones_like(inputs[:, :, 0])
    from_start = ops.cumsum(ones, axis=1)                       # 1..T
    from_end = ops.flip(ops.cumsum(ops.flip(ones, 1), axis=1), 1)  # T..1
    first_in, last_in = ops.equal(from_start, 1.0), ops.equal(from_end, 1.0)
    return (last_in, first_in) if go_backwards else (first_in, last_in)


def _custom_masked_rnn(original, a, *, carry_state, hold_output):
    """The loop with the mask applied by the step function itself (to break one rule)."""
    mask = a["mask"]
    if mask is None:
        return original(**a)
    ops = _Ops()
    step = a["step_function"]
    init = list(a["initial_states"])
    zero_output = a["zero_output_for_mask"]
    if len(mask.shape) == 3:
        mask = mask[:, :, 0]
    m = ops.expand_dims(ops.cast(mask, a["inputs"].dtype), -1)   # (batch, T, 1)

    def masked_step(inp, states):
        x, m_t = inp[:, :-1], inp[:, -1:]
        states = list(states)
        prev, inner = states[-1], states[:-1]
        out, new = step(x, tuple(inner))
        new = list(new) if _is_nested(new) else [new]
        keep = ops.greater(m_t, 0.5)
        if carry_state:
            new = [ops.where(keep, n, s) for n, s in zip(new, inner)]
        if hold_output:
            out = ops.where(keep, out, ops.zeros_like(out) if zero_output else prev)
        return out, new + [out]

    # The mask rides along as one more input feature, so the step sees it.
    b = dict(a, step_function=masked_step, inputs=ops.concat([a["inputs"], m], -1), mask=None,
             initial_states=init + [ops.zeros_like(init[0])], zero_output_for_mask=False)
    last, outputs, states = original(**b)
    return last, outputs, list(states)[:-1]


@fault("go_backwards_rereversed",
       "go_backwards returns the output sequence flipped back to input order (Keras returns it "
       "in processing order; only Bidirectional re-reverses)",
       majors=(2, 3))
def _(p):
    ops = _Ops()

    def transform(original, a):
        last, outputs, states = original(**a)
        if a["go_backwards"] and a["return_all_outputs"]:
            outputs = ops.flip(outputs, 1)
        return last, outputs, states
    _rnn_fault(p, transform)


@fault("go_backwards_ignored",
       "go_backwards is not forwarded to the loop: the sequence is processed forwards",
       majors=(2, 3))
def _(p):
    _rnn_fault(p, lambda original, a: original(**dict(a, go_backwards=False)))


@fault("masked_output_zeroed",
       "at a masked step the output is zeros instead of the previous output "
       "(zero_output_for_mask=True hard-wired)",
       majors=(2, 3))
def _(p):
    def transform(original, a):
        if a["mask"] is None:
            return original(**a)
        if not _k3() and a["unroll"] and not a["return_all_outputs"]:
            return original(**a)   # Keras 2 crashes there with zero_output_for_mask (a real bug)
        return original(**dict(a, zero_output_for_mask=True))
    _rnn_fault(p, transform)


@fault("masked_output_leaks",
       "at a masked step the new cell output leaks into the output sequence (states are still "
       "carried), as when only the states are passed through tf.where",
       majors=(2, 3))
def _(p):
    _rnn_fault(p, functools.partial(_custom_masked_rnn, carry_state=True, hold_output=False))


@fault("masked_state_not_carried",
       "at a masked step the state is updated anyway (the output is still held), as when only "
       "the output is passed through tf.where",
       majors=(2, 3))
def _(p):
    _rnn_fault(p, functools.partial(_custom_masked_rnn, carry_state=False, hold_output=True))


@fault("skip_first_step",
       "off-by-one: the loop starts at t=1, the first processed step is never applied "
       "(its output stays zero, the state stays initial)",
       majors=(2, 3))
def _(p):
    ops = _Ops()

    def transform(original, a):
        first, _ = _time_flags(ops, a["inputs"], a["go_backwards"])
        keep = ops.logical_not(first)
        if a["mask"] is not None:
            mask = a["mask"][:, :, 0] if len(a["mask"].shape) == 3 else a["mask"]
            keep = ops.logical_and(ops.cast(mask, "bool"), keep)
        return original(**dict(a, mask=keep))
    _rnn_fault(p, transform)


@fault("extra_step",
       "off-by-one: the loop runs T+1 iterations (t <= T, index clamped), applying the last "
       "processed step twice",
       majors=(2, 3))
def _(p):
    ops = _Ops()

    def transform(original, a):
        x, mask = a["inputs"], a["mask"]

        def extend(t):
            return ops.concat([t[:, :1], t], 1) if a["go_backwards"] else ops.concat([t, t[:, -1:]], 1)
        b = dict(a, inputs=extend(x), input_length=None,
                 mask=None if mask is None else extend(mask))
        last, outputs, states = original(**b)
        if a["return_all_outputs"]:
            outputs = ops.concat([outputs[:, :-2], outputs[:, -1:]], 1)
        return last, outputs, states
    _rnn_fault(p, transform)


@fault("last_output_from_first_step",
       "return_sequences=False returns the output of the first processed step "
       "(outputs[0] instead of outputs[-1]: a time-major/batch-major mix-up)",
       majors=(2, 3))
def _(p):
    def transform(original, a):
        last, outputs, states = original(**dict(a, return_all_outputs=True))
        last = outputs[:, 0]
        if not a["return_all_outputs"]:
            outputs = outputs[:, -1:]
        return last, outputs, states
    _rnn_fault(p, transform)


# --------------------------------------------------------------------------- RNN.call

def _wrap_rnn_calls(p, make, include_lstm_gru=True):
    """Wrap RNN.call, and on Keras 2 also LSTM.call / GRU.call (they do not call super().call)."""
    p.wrap(_rnn_layer_module().RNN, "call", make)
    if not _k3() and include_lstm_gru:
        p.wrap(_src("layers.rnn.lstm").LSTM, "call", make)
        p.wrap(_src("layers.rnn.gru").GRU, "call", make)


@fault("initial_state_ignored",
       "initial_state is accepted but not forwarded: every sequence starts from zeros",
       majors=(2, 3))
def _(p):
    if _k3():
        def make(original):
            def call(self, sequences, initial_state=None, mask=None, training=False):
                return original(self, sequences, initial_state=None, mask=mask, training=training)
            return call
        p.wrap(_rnn_layer_module().RNN, "call", make)
    else:
        def make(original):
            def _process_inputs(self, inputs, initial_state, constants):
                if isinstance(inputs, list):
                    inputs = inputs[0]
                return original(self, inputs, None, constants)
            return _process_inputs
        p.wrap(_rnn_layer_module().RNN, "_process_inputs", make)


@fault("stateful_state_not_carried",
       "stateful=True layers start every call from zeros (the recorded state is written but "
       "never read back)",
       majors=(2, 3), expected="spec/test_stateful.py")
def _(p):
    if _k3():
        from keras import ops

        def make(original):
            def call(self, sequences, initial_state=None, mask=None, training=False):
                if self.stateful and initial_state is None:
                    initial_state = self.get_initial_state(batch_size=ops.shape(sequences)[0])
                return original(self, sequences, initial_state=initial_state, mask=mask,
                                training=training)
            return call
        p.wrap(_rnn_layer_module().RNN, "call", make)
    else:
        def make(original):
            def _process_inputs(self, inputs, initial_state, constants):
                inputs, initial_state, constants = original(self, inputs, initial_state, constants)
                if self.stateful:
                    initial_state = self.get_initial_state(inputs)
                return inputs, initial_state, constants
            return _process_inputs
        p.wrap(_rnn_layer_module().RNN, "_process_inputs", make)


@fault("reset_states_noop",
       "reset_states() does nothing once the state variables exist (it resets a copy)",
       majors=(2, 3), expected="spec/test_stateful.py")
def _(p):
    cls = _rnn_layer_module().RNN
    if _k3():
        p.wrap(cls, "reset_state", lambda original: (lambda self: None))
    else:
        def make(original):
            def reset_states(self, states=None):
                existing = getattr(self, "_states", None)
                flat = existing if _is_nested(existing) else [existing]
                if not existing or any(s is None for s in flat):
                    return original(self, states)   # first call creates the variables
                return None
            return reset_states
        p.wrap(cls, "reset_states", make)


@fault("return_state_h_c_swapped",
       "LSTM return_state returns (output, c, h) instead of (output, h, c) "
       "(TF1's LSTMStateTuple order is (c, h))",
       majors=(2, 3))
def _(p):
    def make(original):
        def call(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            if self.return_state and _is_nested(out) and len(out) == 3:
                out = type(out)([out[0], out[2], out[1]])
            return out
        return call
    p.wrap(_src("layers.rnn.lstm").LSTM, "call", make)


@fault("dropout_at_inference",
       "training is not propagated to the cell (defaults to True): dropout and "
       "recurrent_dropout are applied at inference",
       majors=(2, 3), expected="spec/test_dropout.py")
def _(p):
    def make(original):
        def call(self, *args, **kwargs):
            cell = getattr(self, "cell", None)
            if getattr(cell, "dropout", 0) or getattr(cell, "recurrent_dropout", 0):
                kwargs["training"] = True
            return original(self, *args, **kwargs)
        return call
    _wrap_rnn_calls(p, make)


# --------------------------------------------------------------------------- dropout semantics
#
# Training-time faults in how the cell draws and applies its dropout masks. Inference
# (training=False) is untouched, so every forward chapter misses them; the old claim of
# spec/test_dropout.py ("training=True output differs from the formulas") misses them too,
# since a wrongly applied dropout still changes the output. The exact-dropout claims
# (recovered masks, layout, scaling, binomial rate test) must catch each.

DROPOUT_CELL = ("layers.rnn.dropout_rnn_cell", "DropoutRNNCell")          # Keras 3
DROPOUT_MIXIN = ("layers.rnn.dropout_rnn_cell_mixin", "DropoutRNNCellMixin")  # Keras 2


def _dropout_owner():
    path, name = DROPOUT_CELL if _k3() else DROPOUT_MIXIN
    return getattr(_src(path), name)


def _map_mask(m, f):
    return None if m is None else ([f(x) for x in m] if isinstance(m, (list, tuple)) else f(m))


def _wrap_mask_creation(p, transform):
    """Every freshly drawn mask (a tensor, or a list of per-gate tensors) passes through
    ``transform(mask, rate)`` before the cell caches and applies it."""
    if _k3():
        def make(original):
            def create(self, step_input, dropout_rate):
                return transform(original(self, step_input, dropout_rate), dropout_rate)
            return create
        p.wrap(_dropout_owner(), "_create_dropout_mask", make)
    else:
        module = _src(DROPOUT_MIXIN[0])

        def make(original):
            def generate(generator, ones, rate, training=None, count=1):
                out = original(generator, ones, rate, training=training, count=count)
                # only the training branch (a Python True, as layer(x, training=True) and fit pass
                # it); at inference in_train_phase returns the ones, which stay untouched
                return transform(out, rate) if training is True else out
            return generate
        p.wrap(module, "_generate_dropout_mask", make)


@fault("dropout_not_rescaled",
       "dropout keeps inputs unscaled (mask values 1 instead of 1/(1-rate)): 'inverted dropout' "
       "forgotten, so activations shrink by (1-rate) in training",
       majors=(2, 3), expected="spec/test_dropout.py")
def _(p):
    _wrap_mask_creation(p, lambda m, rate: _map_mask(m, lambda x: x * (1.0 - rate)))


@fault("dropout_mask_redrawn_each_step",
       "a new input-dropout mask is drawn at every timestep (naive per-step dropout) instead of "
       "one mask reused for the whole sequence (Gal & Ghahramani variational dropout)",
       majors=(2, 3), expected="spec/test_dropout.py")
def _(p):
    if _k3():
        def make(original):
            def get(self, step_input):
                self._dropout_mask = None
                return original(self, step_input)
            return get
        p.wrap(_dropout_owner(), "get_dropout_mask", make)
    else:
        def make(original):
            def get(self, inputs, training, count=1):
                self._dropout_mask_cache.clear()
                return original(self, inputs, training, count=count)
            return get
        p.wrap(_dropout_owner(), "get_dropout_mask_for_cell", make)


@fault("recurrent_dropout_ignored",
       "recurrent_dropout is accepted and its mask drawn, but the mask is never applied to h "
       "(the state enters the recurrent matmul undropped)",
       majors=(2, 3), expected="spec/test_dropout.py")
def _(p):
    ops = _Ops()
    attr = "get_recurrent_dropout_mask" if _k3() else "get_recurrent_dropout_mask_for_cell"

    def make(original):
        def get(self, *args, **kwargs):
            return _map_mask(original(self, *args, **kwargs), ops.o.ones_like)
        return get
    p.wrap(_dropout_owner(), attr, make)


@fault("gate_dropout_masks_collapsed",
       "the per-gate dropout masks (one per gate, as drawn) collapse to the first one, so every "
       "gate sees the same dropped units",
       majors=(2, 3), expected="spec/test_dropout.py")
def _(p):
    _wrap_mask_creation(p, lambda m, rate: [m[0]] * len(m) if isinstance(m, (list, tuple)) else m)


@fault("recurrent_dropout_uses_input_rate",
       "the recurrent mask is drawn with the `dropout` rate instead of `recurrent_dropout` "
       "(the two rates mixed up)",
       majors=(3,), expected="spec/test_dropout.py")
def _(p):
    def make(original):
        def get(self, step_input):
            if getattr(self, "_recurrent_dropout_mask", None) is None and 0 < self.dropout < 1 \
                    and self.recurrent_dropout > 0:
                self._recurrent_dropout_mask = self._create_dropout_mask(step_input, self.dropout)
            return original(self, step_input)
        return get
    p.wrap(_dropout_owner(), "get_recurrent_dropout_mask", make)


# --------------------------------------------------------------------------- initializers

@fault("unit_forget_bias_zeros",
       "unit_forget_bias=True leaves the forget-gate bias at zeros (the ones never written)",
       majors=(2, 3), expected="spec/test_initializers.py")
def _(p):
    def make(original):
        def build(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            if self.use_bias and self.unit_forget_bias:
                ops = _Ops()
                self.bias.assign(ops.zeros_like(ops.tensor(self.bias)))
            return result
        return build
    p.wrap(_src("layers.rnn.lstm").LSTMCell, "build", make)


# --------------------------------------------------------------------------- Bidirectional

class _ModuleProxy:
    """A stand-in for a module inside one other module: some attributes overridden."""

    def __init__(self, module, **overrides):
        self._module, self._overrides = module, overrides

    def __getattr__(self, name):
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._module, name)


@fault("bidirectional_backward_not_rereversed",
       "Bidirectional merges the backward half in processing order: its sequence is not "
       "re-reversed to input order before merging",
       majors=(2, 3))
def _(p):
    module = _src("layers.rnn.bidirectional")
    if _k3():
        p.set(module, "ops", _ModuleProxy(module.ops, flip=lambda x, axis=None: x))
    else:
        p.set(module, "backend", _ModuleProxy(module.backend, reverse=lambda x, axes: x))


@fault("bidirectional_initial_state_swapped",
       "Bidirectional hands the first half of initial_state to the backward layer and the "
       "second to the forward layer",
       majors=(2, 3))
def _(p):
    def make(original):
        def call(self, *args, **kwargs):
            init = kwargs.get("initial_state")
            if init is not None and len(init) >= 2:
                half = len(init) // 2
                kwargs["initial_state"] = list(init[half:]) + list(init[:half])
            return original(self, *args, **kwargs)
        return call
    p.wrap(_src("layers.rnn.bidirectional").Bidirectional, "call", make)


# --------------------------------------------------------------------------- Masking

@fault("masking_layer_mask_dropped",
       "Masking zeroes the padded steps but its mask never reaches the next layer "
       "(the RNN then runs over the padding)",
       majors=(2, 3), expected="spec/test_composition.py")
def _(p):
    cls = _src("layers.core.masking").Masking
    p.wrap(cls, "compute_mask", lambda original: (lambda self, inputs, mask=None: None))

    def make(original):
        def call(self, inputs):
            ops = _Ops()
            keep = ops.o.any(ops.o.not_equal(inputs, self.mask_value), axis=-1, keepdims=True) \
                if ops.k3 else ops.o.reduce_any(ops.o.not_equal(inputs, self.mask_value), axis=-1,
                                                keepdims=True)
            return inputs * ops.cast(keep, inputs.dtype)
        return call
    p.wrap(cls, "call", make)


# --------------------------------------------------------------------------- gradient-only faults
#
# The forward pass is bit for bit the same (stop_gradient is the identity; a custom
# gradient keeps the original forward op): only backpropagation differs. The
# forward chapters cannot see these; spec/test_gradients.py must.

def _stop_gradient(ops, x):
    return ops.o.stop_gradient(x)


def _custom_gradient_activation(p, name, derivative):
    """``activations.get(name)`` returns the same forward function with the gradient
    ``upstream * derivative(ops, x, y)`` (y = the forward value)."""
    def perturb(f):
        ops = _Ops()

        @ops.o.custom_gradient
        def with_gradient(x):
            y = f(x)

            def grad(*args, upstream=None):
                if upstream is None:
                    (upstream,) = args
                return upstream * derivative(ops, x, y)
            return y, grad

        def act(x):   # a plain function: Keras serializes it by the name _activation_fault gives it
            return with_gradient(x)
        return act
    _activation_fault(p, name, perturb)


def _gradient_cell_faults(p, make_call):
    for path, cls_name in (SIMPLE_CELL, LSTM_CELL, GRU_CELL):
        p.wrap(getattr(_src(path), cls_name), "call", make_call)


@fault("recurrent_kernel_stop_gradient",
       "no gradient reaches recurrent_kernel: the cell reads it through stop_gradient/.detach() "
       "(a weight accidentally frozen in one branch), so training never updates it",
       majors=(3,), expected="spec/test_gradients.py")
def _(p):
    _weight_view_fault(p, LSTM_CELL, None,
                       lambda ops, units, name, w: _stop_gradient(ops, w) if name == "recurrent_kernel" else w)
    _weight_view_fault(p, GRU_CELL, None,
                       lambda ops, units, name, w: _stop_gradient(ops, w) if name == "recurrent_kernel" else w)
    _weight_view_fault(p, SIMPLE_CELL, None,
                       lambda ops, units, name, w: _stop_gradient(ops, w) if name == "recurrent_kernel" else w)


@fault("state_detached_between_steps",
       "the carried state is detached at every step (truncated BPTT of length 1, the classic "
       "misplaced hidden.detach()): gradients stop flowing back through time",
       majors=(3,), expected="spec/test_gradients.py")
def _(p):
    def make(original):
        def call(self, inputs, states, *args, **kwargs):
            ops = _Ops()
            if _is_nested(states):
                states = type(states)(_stop_gradient(ops, s) for s in states)
            else:
                states = _stop_gradient(ops, states)
            return original(self, inputs, states, *args, **kwargs)
        return call
    _gradient_cell_faults(p, make)


@fault("tanh_gradient_from_input",
       "tanh's hand-written gradient uses its input instead of its output: 1 - x^2 instead of "
       "1 - tanh(x)^2 (a classic custom-backward bug); the forward value is unchanged",
       majors=(3,), expected="spec/test_gradients.py")
def _(p):
    _custom_gradient_activation(p, "tanh", lambda ops, x, y: 1.0 - x * x)


@fault("sigmoid_gradient_off_1pct",
       "sigmoid's gradient is 1% too large (an approximate derivative that does not match the "
       "forward function, as in a fused kernel's hand-written backward); forward unchanged",
       majors=(3,), expected="spec/test_gradients.py")
def _(p):
    _custom_gradient_activation(p, "sigmoid", lambda ops, x, y: 1.01 * y * (1.0 - y))


# --------------------------------------------------------------------------- optimizer-step faults
#
# Forward values and the gradients of chapter 2b are untouched: only what `fit` /
# `train_on_batch` does with them changes (spec/test_training.py).

@fault("optimizer_skips_repeated_variable_names",
       "the optimizer keys its per-variable updates by the variable's short name, so a second "
       "variable named like an earlier one (every layer's `kernel`, `bias`) gets no update: "
       "training silently freezes all but the first layer's weights",
       majors=(3,), expected="spec/test_training.py", region="fit/train_on_batch only")
def _(p):
    def make(original):
        def apply(self, grads, trainable_variables=None):
            variables = list(trainable_variables) if trainable_variables is not None else self._trainable_variables
            seen, kept = set(), []
            for g, v in zip(grads, variables):
                name = v.name.split("/")[-1]
                kept.append(g if name not in seen else g * 0.0)
                seen.add(name)
            return original(self, kept, trainable_variables)
        return apply
    p.wrap(_src("optimizers.base_optimizer").BaseOptimizer, "apply", make)


@fault("bidirectional_backward_half_frozen",
       "Bidirectional rebuilds its backward half without the trainable flag of its variables "
       "(they come out trainable=False): the backward half never learns, while its forward "
       "values and the gradients a tape computes are unchanged",
       majors=(3,), expected="spec/test_training.py", region="fit/train_on_batch only, Bidirectional")
def _(p):
    def make(original):
        def build(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            for v in self.backward_layer.weights:
                v.trainable = False
            return result
        return build
    p.wrap(_src("layers.rnn.bidirectional").Bidirectional, "build", make)


# --------------------------------------------------------------------------- regional faults
#
# Faults confined to one small region of the behavior (faults/regional.py).
# Imported last: the module registers its faults with ``fault`` above, so
# ``from rnnspec.faults.catalogue import CATALOGUE`` holds them all.

from rnnspec.faults import regional as _regional  # noqa: E402,F401
