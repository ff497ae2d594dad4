"""The one place where Keras 2 and Keras 3, and their backends, differ.

Every property in ``spec/`` talks to Keras through this module, so each
property reads the same in every environment. What it hides:

- which Keras is under test: Keras 3 (``import keras``), tf.keras on TF <= 2.15
  (Keras 2, ``import keras`` is 2.x), or tf-keras with ``TF_USE_LEGACY_KERAS=1``;
- the backend (tensorflow, jax, torch) and how a call is compiled there;
- weight names (``lstm/lstm_cell/kernel:0`` in Keras 2, ``kernel`` in Keras 3);
- the container that ``return_state`` returns (list or tuple);
- ``reset_states`` versus ``reset_state``;
- tensors required for ``initial_state`` (Keras 2 refuses numpy arrays);
- device placement.

Version-dependent *behavior* (a default, a definition) is data, in
``spec/data/conventions.toml``; this module only reads it.
"""

import functools
import os
import re
import tomllib
from pathlib import Path

import numpy as np

from rnnspec.spec import arguments, versions
from rnnspec.spec.outcomes import mark_subject_exception

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DATA = Path(__file__).parent / "data"


def _load_keras():
    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
        import tf_keras as keras  # noqa: F401
        return keras, "tf_keras"
    import keras
    return keras, "keras"


keras, KERAS_PACKAGE = _load_keras()
KERAS_VERSION = keras.__version__
KERAS_MAJOR = int(KERAS_VERSION.split(".")[0])
BACKEND = keras.backend.backend() if KERAS_MAJOR >= 3 else "tensorflow"
IS_KERAS3 = KERAS_MAJOR >= 3


def _jax_compilation_cache():
    """Reuse XLA executables within one run (JAX only).

    In eager mode Keras's JAX backend runs each call's ``lax.scan`` through a fresh jaxpr, so
    JAX's in-memory cache (keyed by the traced function) misses, and the same computation is
    compiled again for every example of the same shape. JAX's persistent compilation cache is
    keyed by the lowered module instead, so those compiles become cache reads: 8% of a ``ci``
    run on JAX (spec/: 305.8 s -> 282.3 s, 2 cores, 2026-11-28). The cache is a fresh temporary
    folder, removed at exit, so every run still compiles each computation once (what a cold CI
    run pays). A ``JAX_COMPILATION_CACHE_DIR`` set by the user is left as it is.
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    import atexit
    import shutil
    import tempfile

    import jax
    folder = tempfile.mkdtemp(prefix="rnnspec-jax-cache-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for option, value in (("jax_compilation_cache_dir", folder),
                          ("jax_persistent_cache_min_compile_time_secs", 0.0),
                          ("jax_persistent_cache_min_entry_size_bytes", 0)):
        try:
            jax.config.update(option, value)
        except AttributeError:   # an older jax without the option keeps its default
            pass


if BACKEND == "jax":
    _jax_compilation_cache()
    # JAX cuts its own frames from tracebacks, so an error raised inside JAX or
    # Keras under jit would end in our adapter and read as a harness error
    # (spec/outcomes.py tells the two apart by the innermost frame).
    import jax
    jax.config.update("jax_traceback_filtering", "off")

LAYER_CLASSES = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}

# Every argument that rnnspec passes to a constructor or a call of the recurrent API is
# noted for the running claim: the argument coverage of the report (spec/arguments.py).
arguments.install(keras)


@functools.cache
def conventions():
    """The version-dependent conventions that apply to the Keras under test.

    ``conventions.toml`` has a ``[default]`` table and ``[[rule]]`` entries
    with ``keras = ">=3"``-style bounds; later matching rules override.
    """
    raw = tomllib.loads((DATA / "conventions.toml").read_text())
    return versions.conventions_for({"keras": KERAS_VERSION, "backend": BACKEND}, raw)


def subject(fn):
    """Mark ``fn`` as a call that is the subject of a claim (build, set weights, call).

    An exception escaping it from inside Keras is then Keras's outcome
    (crashed, refused or a listed raising divergence); an exception anywhere
    else in the adapter is a harness error (``spec/outcomes.py``).
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            mark_subject_exception(exc)
            raise
    return wrapper


def tf_version():
    try:
        import tensorflow as tf
        return tf.__version__
    except ImportError:
        return None


def devices():
    """Devices the backend can see, as ``["cpu"]`` or ``["cpu", "gpu"]``."""
    found = ["cpu"]
    try:
        if BACKEND == "tensorflow":
            import tensorflow as tf
            if tf.config.list_physical_devices("GPU"):
                found.append("gpu")
        elif BACKEND == "torch":
            import torch
            if torch.cuda.is_available():
                found.append("gpu")
        elif BACKEND == "jax":
            import jax
            if any(d.platform == "gpu" for d in jax.devices()):
                found.append("gpu")
    except Exception:  # a broken GPU runtime is reported as "no GPU"
        pass
    return found


def device_description(device):
    """A human name for ``device`` ("cpu", or the GPU's product name), for reports."""
    if device != "gpu":
        return "cpu"
    try:
        if BACKEND == "torch":
            import torch
            return torch.cuda.get_device_name(0)
        if BACKEND == "jax":
            import jax
            return next(d.device_kind for d in jax.devices() if d.platform == "gpu")
        import tensorflow as tf
        gpu = tf.config.list_physical_devices("GPU")[0]
        return tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
    except Exception as exc:  # naming the device must never break a run
        return f"gpu (name unavailable: {type(exc).__name__})"


def device_scope(device):
    """A context manager that places Keras computation on ``device``."""
    if IS_KERAS3:
        # the name each backend and version accepts is data (conventions.toml: device_name)
        return keras.device(conventions()["device_name"].format(device=device))
    import tensorflow as tf
    return tf.device("/CPU:0" if device == "cpu" else "/GPU:0")


def tf32_policy(mode):
    """A context manager: ``"off"`` forces full float32 matmuls on the GPU, ``"default"`` leaves the framework's default.

    Framework defaults (shared/gpu/README.md): torch's cuDNN allows TF32, JAX's
    default matmul precision uses it, TensorFlow enables TF32 on Ampere+.
    """
    import contextlib

    @contextlib.contextmanager
    def policy():
        if mode == "default":
            yield
            return
        if BACKEND == "torch":
            import torch
            saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
            try:
                yield
            finally:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
        elif BACKEND == "jax":
            import jax
            # "float32" (= lax.Precision.HIGHEST) is the spelling every jax accepts:
            # jax 0.4.25 rejects "highest" ("new enum value must be None or in
            # ['bfloat16', 'tensorfloat32', 'float32']"); 0.5.3-0.10.2 take both (measured)
            with jax.default_matmul_precision("float32"):
                yield
        else:
            import tensorflow as tf
            saved = tf.config.experimental.tensor_float_32_execution_enabled()
            tf.config.experimental.enable_tensor_float_32_execution(False)
            try:
                yield
            finally:
                tf.config.experimental.enable_tensor_float_32_execution(saved)
    return policy()


@functools.cache
def _spied_modules():
    """The module whose ``lstm``/``gru`` the layers call, the backend's RNN module and its cuDNN entry points.

    Where the layers look up the fused entry points is a version convention
    (conventions.toml: ``fused_kernel_module``). Looked up once.
    """
    import importlib
    backend_pkg = importlib.import_module(conventions()["fused_kernel_module"].format(backend=BACKEND))
    rnn_mod = importlib.import_module(f"keras.src.backend.{BACKEND}.rnn")
    entry_points = [(rnn_mod, n) for n in dir(rnn_mod) if n.startswith("_cudnn_")]
    if BACKEND == "jax":
        # Keras's JAX backend reaches cuDNN through jax.experimental.rnn.lstm,
        # imported inside its lstm()/bidirectional_lstm() at call time.
        try:
            jax_rnn = importlib.import_module("jax.experimental.rnn")
            entry_points.append((jax_rnn, "lstm"))
        except ImportError:
            pass
    fused = tuple(n for n in ("lstm", "gru", "bidirectional_lstm", "bidirectional_gru")
                  if hasattr(backend_pkg, n))
    return backend_pkg, tuple(entry_points), fused


class _Patches:
    """A context manager's monkeypatches: ``_patch`` replaces an attribute, leaving undoes them in reverse."""

    def _patch(self, owner, name, value, original):
        setattr(owner, name, value)
        self._undo.append((owner, name, original))

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


class KernelSpy(_Patches):
    """Records which kernel each LSTM/GRU call took: "cudnn", "backend-fused" or "generic-loop".

    Keras 3 layers first try ``keras.src.backend.lstm``/``gru`` (cuDNN where the
    settings allow it; torch also has a fused CPU path) and fall back to the
    generic loop when that raises NotImplementedError. Keras 2 is not spied
    (``supported`` is False).
    """

    def __init__(self):
        self.calls = []
        self.supported = IS_KERAS3
        self._undo = []

    def __enter__(self):
        if not self.supported:
            return self
        backend_pkg, cudnn_entry_points, fused = _spied_modules()
        cudnn_hits = []
        for module, name in cudnn_entry_points:
            original = getattr(module, name)

            def cudnn(*a, _original=original, **k):
                out = _original(*a, **k)
                cudnn_hits.append(True)   # counted only once it returned: torch falls back silently
                return out
            self._patch(module, name, cudnn, original)
        for name in fused:
            original = getattr(backend_pkg, name)

            def spy(*a, _original=original, _name=name, **k):
                cudnn_hits.clear()
                try:
                    out = _original(*a, **k)
                except NotImplementedError:
                    self.calls.append((_name, "generic-loop"))
                    raise
                self.calls.append((_name, "cudnn" if cudnn_hits else "backend-fused"))
                return out
            self._patch(backend_pkg, name, spy, original)
        return self

    def kernel(self):
        """The kernel of the last call; "generic-loop" when lstm/gru was never asked."""
        return self.calls[-1][1] if self.calls else "generic-loop"


# --------------------------------------------------------------------------- dropout masks

def internal_module(path):
    """``keras.src.<path>`` (or where this version keeps it: conventions.toml internal_package)."""
    import importlib
    return importlib.import_module(conventions()["internal_package"].format(package=KERAS_PACKAGE) + "." + path)


def _dropout_patch_points():
    """(cell owner, {method: kind}, primitive owner, primitive name, rate argument position)."""
    if IS_KERAS3:
        cell = internal_module("layers.rnn.dropout_rnn_cell").DropoutRNNCell
        backend_pkg = internal_module("backend")
        # DropoutRNNCell._create_dropout_mask calls backend.random.dropout(ones, rate=..., seed=...)
        return (cell, {"get_dropout_mask": "input", "get_recurrent_dropout_mask": "recurrent"},
                backend_pkg.random, "dropout", 1)
    mixin = internal_module("layers.rnn.dropout_rnn_cell_mixin")
    backend_mod = internal_module("backend")
    # _generate_dropout_mask calls generator.dropout(ones, rate), generator a backend.RandomGenerator
    return (mixin.DropoutRNNCellMixin,
            {"get_dropout_mask_for_cell": "input", "get_recurrent_dropout_mask_for_cell": "recurrent"},
            backend_mod.RandomGenerator, "dropout", 2)


class DropoutSpy(_Patches):
    """Records every dropout mask a recurrent cell draws while active.

    Instruments the backend's dropout primitive (Keras 3: ``backend.random.dropout``,
    which ``DropoutRNNCell`` applies to ``ones_like(step_input)``; Keras 2:
    ``backend.RandomGenerator.dropout``, which ``DropoutRNNCellMixin`` applies to
    ``ones_like(inputs)``), and the cell's two mask getters, to say which mask a draw is
    for. ``draws`` is a list of ``(kind, rate, mask)`` in drawing order: kind ``"input"``,
    ``"recurrent"`` or None (a draw outside the getters), ``mask`` the tensor the primitive
    returned (symbolic while a graph is traced). Whatever the getters call in between (a
    fault's wrapper, say) is inside the instrumentation.
    """

    def __init__(self):
        self.draws = []
        self._kind = []
        self._undo = []

    def __enter__(self):
        cell, getters, prim_owner, prim_name, rate_at = _dropout_patch_points()
        for name, kind in getters.items():
            original = vars(cell)[name] if name in vars(cell) else getattr(cell, name)

            def getter(obj, *a, _original=original, _kind=kind, **k):
                self._kind.append(_kind)
                try:
                    return _original(obj, *a, **k)
                finally:
                    self._kind.pop()
            functools.update_wrapper(getter, original)
            if not IS_KERAS3:
                from tensorflow.python.util import tf_decorator
                getter = tf_decorator.make_decorator(original, getter)
            self._patch(cell, name, getter, original)
        original = vars(prim_owner)[prim_name]

        def primitive(*a, _original=original, **k):
            out = _original(*a, **k)
            rate = k["rate"] if "rate" in k else a[rate_at]
            self.draws.append((self._kind[-1] if self._kind else None, float(rate), out))
            return out
        self._patch(prim_owner, prim_name, primitive, original)
        return self


def call_recording_dropout(layer, x, *, compiled=False):
    """``layer(x, training=True)`` with its dropout masks: ``(outputs, draws)``, outputs a list of
    float64 arrays, draws ``[(kind, rate, float64 mask)]`` (:class:`DropoutSpy`).

    ``compiled``: the eager call, or the backend's compiled path -- a ``tf.function``
    (TensorFlow) or ``jax.jit`` over ``stateless_call`` (JAX; the seed generator's state is
    passed in and returned) that returns the masks drawn while it was traced as extra
    outputs, so each run gives the values it used. Torch has no compiled path here.
    """
    if not compiled or BACKEND == "torch":
        with DropoutSpy() as spy:
            outputs = call(layer, x, training=True)
        return outputs, [(k, r, to_numpy(m)) for k, r, m in spy.draws]
    meta = []
    if BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def graph(x):
            with DropoutSpy() as spy:
                out = as_list(layer(x, training=True))
            meta[:] = [(k, r) for k, r, _ in spy.draws]
            return out, [m for _, _, m in spy.draws]
        outputs, masks = invoke(graph, _tensor(x))
    else:
        import jax
        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        @jax.jit
        def graph(trainable, non_trainable, x):
            with DropoutSpy() as spy:
                out, new_non_trainable = layer.stateless_call(trainable, non_trainable, x, training=True)
            meta[:] = [(k, r) for k, r, _ in spy.draws]
            return as_list(out), [m for _, _, m in spy.draws], new_non_trainable
        outputs, masks, new_non_trainable = invoke(graph, trainable, non_trainable, np.asarray(x, np.float32))
        for v, value in zip(layer.non_trainable_variables, new_non_trainable):
            v.assign(value)
    return to_numpy(outputs), [(k, r, to_numpy(m)) for (k, r), m in zip(meta, masks)]


# --------------------------------------------------------------------------- layers

def layer_class(kind):
    return getattr(keras.layers, LAYER_CLASSES[kind])


@subject
def make_layer(kind, units, **flags):
    """A SimpleRNN, LSTM or GRU layer with the given Keras arguments.

    Arguments that the installed Keras does not have (``conventions.toml``)
    are dropped: ``implementation`` on Keras 3.0-3.3.
    """
    if not conventions()["accepts_implementation"]:
        flags.pop("implementation", None)
    return layer_class(kind)(units, **flags)


@subject
def bidirectional(layer, merge_mode="concat"):
    return keras.layers.Bidirectional(layer, merge_mode=merge_mode)


# --------------------------------------------------------------------------- the RNN wrapper, its cells, mask sources
# (spec/test_cells.py, spec/test_mask_sources.py, spec/test_stateful.py)

CELL_CLASSES = {"simple_rnn": "SimpleRNNCell", "lstm": "LSTMCell", "gru": "GRUCell"}


@subject
def make_cell(kind, units, **kwargs):
    """A SimpleRNNCell, LSTMCell or GRUCell with the given Keras arguments; ``implementation`` is
    dropped where the version does not have it (conventions.toml: accepts_implementation)."""
    if not conventions()["accepts_implementation"]:
        kwargs.pop("implementation", None)
    return getattr(keras.layers, CELL_CLASSES[kind])(units, **kwargs)


@subject
def rnn_layer(cell, **flags):
    """``keras.layers.RNN(cell, **flags)``; ``cell`` a cell, or a list of cells (stacked)."""
    return keras.layers.RNN(cell, **flags)


@subject
def stacked_cells(cells):
    """``keras.layers.StackedRNNCells(cells)``."""
    return keras.layers.StackedRNNCells(cells)


@subject
def bidirectional_with_backward_layer(layer, backward_layer, merge_mode="concat"):
    """``keras.layers.Bidirectional(layer, merge_mode=..., backward_layer=...)``, the argument passed
    explicitly (None: the backward layer is generated from ``layer``)."""
    return keras.layers.Bidirectional(layer, merge_mode=merge_mode, backward_layer=backward_layer)


def flat(values):
    """A nested list of arrays (the states of stacked cells) as one flat list, in order."""
    out = []
    for v in values:
        out.extend(flat(v) if isinstance(v, (list, tuple)) else [v])
    return out


def call_nested(layer, x, *, mask=None, initial_state=None):
    """Eager call with a nested ``initial_state`` (stacked cells: one list of states per cell);
    the outputs flattened (:func:`flat`), as float64 arrays."""
    kwargs = {"training": False}
    if mask is not None:
        kwargs["mask"] = _tensor(mask, "bool")
    if initial_state is not None:
        def tensors(s):
            return [tensors(v) for v in s] if isinstance(s, (list, tuple)) else _tensor(s)
        kwargs["initial_state"] = tensors(initial_state)
    return to_numpy(flat(as_list(invoke(layer, _tensor(x), **kwargs))))


@subject
def reset_states_to(layer, states):
    """Set a stateful layer's states numerically, as the RNN docstring says: Keras 2 "by calling
    reset_states with the keyword argument states", Keras 3 "by calling `reset_state()` with the
    keyword argument `states`" (the method: conventions.toml reset_method)."""
    getattr(layer, conventions()["reset_method"])(states=[np.asarray(s, np.float32) for s in states])


@subject
def source_model(source, layer, input_shape, dtype="float32"):
    """``keras.Model(inputs, layer(source(inputs)))``: a mask source (Masking, Embedding) in front of
    a recurrent layer, inputs of ``input_shape`` (without the batch) and ``dtype``."""
    inputs = keras.Input(shape=input_shape, dtype=dtype)
    return keras.Model(inputs, layer(source(inputs)))


@subject
def stateful_model(layer, batch, timesteps, features):
    """A functional model around a stateful ``layer``, its input batch size fixed as the RNN
    docstring says ("passing `batch_size=...` to the `Input` layer(s)")."""
    inputs = keras.Input(shape=(timesteps, features), batch_size=batch)
    return keras.Model(inputs, layer(inputs))


def call_tokens(model, tokens):
    """Eager call of a model whose input is integer tokens (int32); outputs as float64 arrays."""
    return to_numpy(as_list(invoke(model, _tensor(tokens, "int32"))))


def predict(model, x, batch):
    """``model.predict(x, batch_size=batch)``: the compiled path; a list of float64 arrays."""
    return to_numpy(as_list(invoke(model.predict, np.asarray(x, np.float32), batch_size=batch, verbose=0)))


@subject
def build(layer, batch, features):
    """Build ``layer`` for inputs (batch, None, features)."""
    layer.build((batch, None, features))
    return layer


def short_weight_names(layer):
    """``['kernel', 'recurrent_kernel', 'bias']``, whatever the version's scoping."""
    return [re.sub(r":\d+$", "", w.name).split("/")[-1] for w in layer.weights]


def weight_shapes(layer):
    return [tuple(int(d) for d in w.shape) for w in layer.weights]


def count_params(layer):
    return int(layer.count_params())


@subject
def set_weights(layer, arrays):
    layer.set_weights([np.asarray(a, np.float32) for a in arrays])


def get_weights(layer):
    return [np.asarray(w, np.float64) for w in layer.get_weights()]


@subject
def reset_states(layer):
    """Reset a stateful layer with the method the version documents (conventions.toml: reset_method)."""
    getattr(layer, conventions()["reset_method"])()


def to_numpy(value):
    if isinstance(value, (list, tuple)):
        return [to_numpy(v) for v in value]
    if IS_KERAS3:
        return np.asarray(keras.ops.convert_to_numpy(value), np.float64)
    return np.asarray(value, np.float64)


def as_list(outputs):
    """Keras returns a tensor, a list (Keras 2) or a tuple (Keras 3): make it a list."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _tensor(a, dtype="float32"):
    if a is None:
        return None
    if IS_KERAS3:
        return keras.ops.convert_to_tensor(np.asarray(a, dtype))
    import tensorflow as tf
    return tf.convert_to_tensor(np.asarray(a, dtype))


def call(layer, x, *, mask=None, initial_state=None, training=False):
    """Eager call; returns the outputs as a list of float64 arrays."""
    kwargs = {"training": training}
    if mask is not None:
        kwargs["mask"] = _tensor(mask, "bool")
    if initial_state is not None:
        kwargs["initial_state"] = [_tensor(s) for s in initial_state]
    return to_numpy(as_list(invoke(layer, _tensor(x), **kwargs)))


def call_with_input_named(layer, name, x):
    """Eager call passing the input by keyword ``name`` (the name a docstring gives it)."""
    return to_numpy(as_list(invoke(layer, **{name: _tensor(x)})))


@subject
def invoke(fn, *args, **kwargs):
    """Call a layer, model or compiled graph: the subject of a claim."""
    return fn(*args, **kwargs)


# --------------------------------------------------------------------------- compiled calls

def compiled_call(layer, *, has_mask, n_initial_states, training=False, timesteps=None, jit_compile=False):
    """The compiled path users run: a callable ``(weights, x, mask, initial_state) -> [arrays]``.

    tensorflow: a ``tf.function`` with unknown batch and time dimensions, so
    new weights and new shapes do not retrace. jax: ``jax.jit`` over
    ``stateless_call`` with the weights as arguments (one compile per input
    shape). torch: the eager call (Keras 3 on torch has no graph mode).
    ``timesteps`` fixes the time dimension (``unroll=True`` needs it).
    ``jit_compile``: on TensorFlow, compile the tf.function with XLA.
    """
    if BACKEND == "tensorflow":
        return _tf_compiled(layer, has_mask, n_initial_states, training, timesteps, jit_compile)
    if BACKEND == "jax":
        return _jax_compiled(layer, has_mask, n_initial_states, training)
    return _eager_with_weights(layer, training)


def _eager_with_weights(layer, training):
    def run(weights, x, mask=None, initial_state=None):
        set_weights(layer, weights)
        return call(layer, x, mask=mask, initial_state=initial_state, training=training)
    return run


def _tf_compiled(layer, has_mask, n_initial_states, training, timesteps, jit_compile=False):
    """A tf.function that takes the weights as arguments and assigns them inside the graph.

    Assigning three variables from Python costs about 2.4 ms per example on
    TF CPU (Keras's ``set_weights`` checks and converts each one); inside the
    graph the assignment is part of the one call. What the layer computes is
    unchanged: it reads its variables, as in ``set_weights`` + call.
    """
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")  # one tf.function per cached layer is by design, not a retracing bug
    features = int(layer.weights[0].shape[0])
    units = [int(s) for s in _state_units(layer, n_initial_states)]
    variables = list(layer.weights)
    signature = [tf.TensorSpec([None, timesteps, features], tf.float32)]
    if has_mask:
        signature.append(tf.TensorSpec([None, timesteps], tf.bool))
    signature += [tf.TensorSpec([None, u], tf.float32) for u in units]
    signature += [tf.TensorSpec([int(d) for d in v.shape], tf.float32) for v in variables]
    n_inputs = len(signature) - len(variables)

    @tf.function(input_signature=signature, jit_compile=jit_compile or None)
    def graph(*args):
        inputs, weights = args[:n_inputs], args[n_inputs:]
        for variable, value in zip(variables, weights):
            variable.assign(value)
        x, rest = inputs[0], inputs[1:]
        kwargs = {"training": training}
        if has_mask:
            kwargs["mask"] = rest[0]
            rest = rest[1:]
        if rest:
            kwargs["initial_state"] = list(rest)
        return as_list(layer(x, **kwargs))

    def run(weights, x, mask=None, initial_state=None):
        args = [np.asarray(x, np.float32)]
        if has_mask:
            args.append(np.asarray(mask, bool))
        args += [np.asarray(s, np.float32) for s in (initial_state or [])]
        args += [np.asarray(w, np.float32) for w in weights]
        return to_numpy(invoke(graph, *args))
    return run


def _jax_compiled(layer, has_mask, n_initial_states, training):
    import jax
    non_trainable = [v.value for v in layer.non_trainable_variables]

    @jax.jit
    def graph(trainable, x, mask, initial_state):
        kwargs = {"training": training}
        if has_mask:
            kwargs["mask"] = mask
        if initial_state:
            kwargs["initial_state"] = list(initial_state)
        out, _ = layer.stateless_call(trainable, non_trainable, x, **kwargs)
        return as_list(out)

    def run(weights, x, mask=None, initial_state=None):
        trainable = [np.asarray(w, np.float32) for w in weights]
        init = [np.asarray(s, np.float32) for s in (initial_state or [])]
        m = np.asarray(mask, bool) if has_mask else None
        return to_numpy(invoke(graph, trainable, np.asarray(x, np.float32), m, init))
    return run


def _state_units(layer, n):
    """Width of each initial state a layer takes (Bidirectional: forward then backward)."""
    inner = getattr(layer, "forward_layer", None)
    cell = (inner or layer).cell
    size = cell.state_size
    sizes = list(size) if isinstance(size, (list, tuple)) else [size]
    if inner is not None:
        sizes = sizes * 2
    return sizes[:n]


# --------------------------------------------------------------------------- saving (spec/test_serialization.py)
#
# Which weight and model formats a version writes is data (conventions.toml:
# weights_formats, model_formats); each format below is one way to save and
# load, as the Keras documentation of that version spells it.

WEIGHTS_SUFFIX = {"weights.h5": ".weights.h5", "h5": ".h5", "tf": ""}
MODEL_SUFFIX = {"keras": ".keras", "h5": ".h5", "savedmodel": "", "export": ""}


def model_of(layer, timesteps, features):
    """A functional model around an already built ``layer``: inputs (batch, timesteps, features)."""
    return functional_model(layer, timesteps, features)


@subject
def layer_from_config(layer):
    """``layer.__class__.from_config(layer.get_config())``."""
    return layer.__class__.from_config(layer.get_config())


@subject
def model_from_json(model):
    return keras.models.model_from_json(model.to_json())


def save_weights_then_load(model, into, directory, fmt):
    """``model.save_weights`` in format ``fmt``, then ``into.load_weights`` from that file."""
    return load_weights_from(into, save_as(model, directory, fmt, "weights"))


def save_model_then_load(model, directory, fmt):
    """Save ``model`` in format ``fmt`` and load it back; returns a callable ``x -> outputs``
    (``export``, Keras 3 and tf.keras >= 2.13: an inference-only SavedModel) or the model."""
    return load_saved(save_as(model, directory, fmt, "model"), fmt)

# --------------------------------------------------------------------------- one training step

@subject
def training_model(layer, *, timesteps, features, head_units, masking):
    """``[Masking(0.0)] -> layer -> Dense(head_units)``, compiled with plain SGD (no momentum)
    and the mean squared error, as the article trains its models (``model.compile(optimizer=...,
    loss="mse")``). ``layer`` is built already; ``masking`` puts a Masking(mask_value=0.0) layer
    in front, the documented way to mask a Sequential model's inputs."""
    inputs = keras.Input(shape=(timesteps, features))
    h = keras.layers.Masking(mask_value=0.0)(inputs) if masking else inputs
    outputs = keras.layers.Dense(head_units)(layer(h))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.0), loss="mse")
    return model


@subject
def sgd_train_step(model, weights, x, y, learning_rate):
    """Set ``weights`` (``model.weights`` order) and the learning rate, run one
    ``model.train_on_batch(x, y)``, and return the weights after the step. The model keeps its
    traced train function, so later examples of the same graph shape cost one call each."""
    model.set_weights([np.asarray(w, np.float32) for w in weights])
    model.optimizer.learning_rate = learning_rate    # a variable: assigned, not retraced
    model.train_on_batch(np.asarray(x, np.float32), np.asarray(y, np.float32))
    return [to_numpy(w) for w in model.weights]


# --------------------------------------------------------------------------- weight arguments and dtypes
# (spec/test_weight_arguments.py, spec/test_dtypes.py). Initializers, regularizers and
# constraints have the same classes and arguments in Keras 2.15 and Keras 3; a mixed precision
# policy is passed as its name in Keras 3 and as a Policy object in Keras 2 (conventions.toml:
# mixed_policy_argument).

INITIALIZERS = {"zeros": "Zeros", "ones": "Ones", "constant": "Constant",
                "glorot_uniform": "GlorotUniform", "orthogonal": "Orthogonal"}
CONSTRAINTS = {"non_neg": "NonNeg", "max_norm": "MaxNorm", "unit_norm": "UnitNorm",
               "min_max_norm": "MinMaxNorm"}


def initializer(name, **params):
    """``keras.initializers.<Class>(**params)`` for a name of :data:`INITIALIZERS`."""
    return getattr(keras.initializers, INITIALIZERS[name])(**params)


def regularizer(l1=0.0, l2=0.0):
    """``L1(l1)``, ``L2(l2)`` or ``L1L2(l1, l2)``: the class that names the nonzero factors."""
    if l1 and l2:
        return keras.regularizers.L1L2(l1=l1, l2=l2)
    return keras.regularizers.L1(l1) if l1 else keras.regularizers.L2(l2)


def constraint(name, **params):
    """``keras.constraints.<Class>(**params)`` for a name of :data:`CONSTRAINTS`."""
    return getattr(keras.constraints, CONSTRAINTS[name])(**params)


def layer_losses(layer):
    """``layer.losses`` as float64 numbers, in Keras's order."""
    return [float(np.asarray(to_numpy(loss))) for loss in layer.losses]


def dtype_argument(name):
    """What the layers' ``dtype`` argument takes for the dtype or policy ``name``."""
    if name.startswith("mixed_") and conventions()["mixed_policy_argument"] == "policy":
        return keras.mixed_precision.Policy(name)
    return name


def dtype_name(dtype):
    """A tensor's or variable's dtype as a string ("float16"), whatever the backend's dtype object."""
    if IS_KERAS3:
        return keras.backend.standardize_dtype(dtype)
    import tensorflow as tf
    return tf.as_dtype(dtype).name


def _cast(tensor, dtype):
    """``tensor`` cast to ``dtype`` by the backend: numpy has no bfloat16 of its own (ml_dtypes, which
    TF 2.12 and 2.13 do not ship, or TF's own type, which only TF 2.12 reads)."""
    if IS_KERAS3:
        return keras.ops.cast(tensor, dtype)
    import tensorflow as tf
    return tf.cast(tensor, dtype)


def call_with_dtypes(layer, x, *, mask=None, initial_state=None, state_dtype="float32"):
    """Eager call on float32 inputs (a layer casts them to its compute dtype) and initial states of
    ``state_dtype`` (Keras 2 does not cast those: pass the compute dtype): ``(outputs as float64
    arrays, their dtype names)``."""
    kwargs = {"training": False}
    if mask is not None:
        kwargs["mask"] = _tensor(mask, "bool")
    if initial_state is not None:
        kwargs["initial_state"] = [_cast(_tensor(s), state_dtype) for s in initial_state]
    outputs = as_list(invoke(layer, _tensor(x), **kwargs))
    return to_numpy(outputs), [dtype_name(o.dtype) for o in outputs]


def variable_dtypes(layer):
    """The dtype each of ``layer.weights`` says it holds."""
    return [dtype_name(w.dtype) for w in layer.weights]


# --------------------------------------------------------------------------- gradients

def gradient_call(layer, *, has_mask, n_initial_states, n_outputs, compiled, training=False,
                  timesteps=None, jit_compile=False):
    """A callable ``(weights, x, mask, initial_state, coefficients) -> [arrays]``: the gradients of
    ``L = sum_i sum(coefficients[i] * outputs[i])`` (``outputs`` as :func:`call` returns them)
    with respect to each weight (in ``layer.weights`` order), ``x``, and each initial state.

    ``compiled``: tensorflow -- a ``tf.function`` around ``tf.GradientTape`` (``jit_compile`` for
    XLA), else the tape eagerly; jax -- ``jax.jit(jax.grad(...))`` over ``stateless_call``, else
    ``jax.grad`` unjitted; torch -- autograd through ``stateless_call`` (there is no graph mode,
    so both are the eager call). The weights are arguments, so one traced graph serves every
    example of a graph shape (``rnnspec.spec.runners.gradient_runner_for`` caches it).
    """
    if BACKEND == "tensorflow":
        return _tf_gradients(layer, has_mask, n_initial_states, n_outputs, compiled, training,
                             timesteps, jit_compile)
    if BACKEND == "jax":
        return _jax_gradients(layer, has_mask, n_initial_states, compiled, training)
    return _torch_gradients(layer, has_mask, n_initial_states, training)


def _weighted_sum(ops_sum, outputs, coefficients):
    total = 0.0
    for o, c in zip(outputs, coefficients):
        total = total + ops_sum(o * c)
    return total


def _tf_gradients(layer, has_mask, n_initial_states, n_outputs, compiled, training, timesteps,
                  jit_compile):
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    features = int(layer.weights[0].shape[0])
    units = [int(s) for s in _state_units(layer, n_initial_states)]
    variables = list(layer.weights)
    signature = [tf.TensorSpec([None, timesteps, features], tf.float32)]
    if has_mask:
        signature.append(tf.TensorSpec([None, timesteps], tf.bool))
    signature += [tf.TensorSpec([None, u], tf.float32) for u in units]
    signature += [tf.TensorSpec([int(d) for d in v.shape], tf.float32) for v in variables]
    signature += [tf.TensorSpec(None, tf.float32) for _ in range(n_outputs)]
    n_inputs = len(signature) - len(variables) - n_outputs

    def body(*args):
        inputs = args[:n_inputs]
        weights = args[n_inputs:n_inputs + len(variables)]
        coefficients = args[n_inputs + len(variables):]
        for variable, value in zip(variables, weights):
            variable.assign(value)
        x, rest = inputs[0], list(inputs[1:])
        kwargs = {"training": training}
        if has_mask:
            kwargs["mask"] = rest.pop(0)
        states = rest
        with tf.GradientTape() as tape:
            tape.watch([x] + states)
            if states:
                kwargs["initial_state"] = list(states)
            outputs = as_list(layer(x, **kwargs))
            loss = _weighted_sum(tf.reduce_sum, outputs, coefficients)
        wrt = variables + [x] + states
        grads = tape.gradient(loss, wrt)
        # an unconnected input (a gradient that never reaches it) has gradient zero; built here,
        # since UnconnectedGradients.ZERO fails on Keras 3 variables (their dtype is a str)
        return [tf.zeros([int(d) for d in w.shape] if i < len(variables) else tf.shape(w), tf.float32)
                if g is None else g for i, (g, w) in enumerate(zip(grads, wrt))]

    fn = tf.function(body, input_signature=signature, jit_compile=jit_compile or None) if compiled else body

    def run(weights, x, mask, initial_state, coefficients):
        args = [np.asarray(x, np.float32)]
        if has_mask:
            args.append(np.asarray(mask, bool))
        args += [np.asarray(s, np.float32) for s in (initial_state or [])]
        args += [np.asarray(w, np.float32) for w in weights]
        args += [np.asarray(c, np.float32) for c in coefficients]
        if not compiled:
            args = [tf.convert_to_tensor(a) for a in args]
        return to_numpy(invoke(fn, *args))
    return run


def _jax_gradients(layer, has_mask, n_initial_states, compiled, training):
    import jax
    import jax.numpy as jnp
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def loss(trainable, x, initial_state, mask, coefficients):
        kwargs = {"training": training}
        if has_mask:
            kwargs["mask"] = mask
        if initial_state:
            kwargs["initial_state"] = list(initial_state)
        out, _ = layer.stateless_call(trainable, non_trainable, x, **kwargs)
        return _weighted_sum(jnp.sum, as_list(out), coefficients)

    grad = jax.grad(loss, argnums=(0, 1, 2))
    fn = jax.jit(grad) if compiled else grad

    def run(weights, x, mask, initial_state, coefficients):
        trainable = [np.asarray(w, np.float32) for w in weights]
        init = [np.asarray(s, np.float32) for s in (initial_state or [])]
        m = np.asarray(mask, bool) if has_mask else None
        coefs = [np.asarray(c, np.float32) for c in coefficients]
        d_weights, d_x, d_init = invoke(fn, trainable, np.asarray(x, np.float32), init, m, coefs)
        return to_numpy(list(d_weights) + [d_x] + list(d_init))
    return run


def _torch_gradients(layer, has_mask, n_initial_states, training):
    import torch
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def leaf(a, dtype="float32"):
        return keras.ops.convert_to_tensor(np.asarray(a, dtype)).detach().requires_grad_(True)

    def run(weights, x, mask, initial_state, coefficients):
        trainable = [leaf(w) for w in weights]
        x_t = leaf(x)
        init = [leaf(s) for s in (initial_state or [])]
        kwargs = {"training": training}
        if has_mask:
            kwargs["mask"] = _tensor(mask, "bool")
        if init:
            kwargs["initial_state"] = list(init)
        out, _ = invoke(layer.stateless_call, trainable, non_trainable, x_t, **kwargs)
        loss = _weighted_sum(torch.sum, as_list(out), [_tensor(c) for c in coefficients])
        grads = invoke(torch.autograd.grad, loss, trainable + [x_t] + init, allow_unused=True)
        wrt = trainable + [x_t] + init
        return [np.zeros(tuple(w.shape)) if g is None else to_numpy(g) for g, w in zip(grads, wrt)]
    return run


# --------------------------------------------------------------------------- across versions (spec/compat.py)
#
# The compatibility corpus and the fingerprint command save in one environment and load in
# another: these are the calls they make, each the way this version documents it.

@functools.cache
def user_cell_class():
    """A user-defined recurrent cell, registered for deserialization as ``rnnspec>MinimalRNNCell``.

    The cell of the Keras guide "Working with RNNs" (``MinimalRNNCell``): ``h' = x.W + h.U``, no
    activation, no bias, weights ``kernel`` (features, units) and ``recurrent_kernel`` (units,
    units). Keras 3 computes with ``keras.ops.matmul``, Keras 2 with ``keras.backend.dot``.
    """
    matmul = keras.ops.matmul if IS_KERAS3 else keras.backend.dot

    @keras.utils.register_keras_serializable(package="rnnspec")
    class MinimalRNNCell(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(int(input_shape[-1]), self.units),
                                          initializer="uniform", name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                    initializer="uniform", name="recurrent_kernel")
            self.built = True

        def call(self, inputs, states):
            output = matmul(inputs, self.kernel) + matmul(states[0], self.recurrent_kernel)
            return output, [output]

        def get_config(self):
            return {**super().get_config(), "units": self.units}
    return MinimalRNNCell


@subject
def user_cell_layer(units, **flags):
    """``keras.layers.RNN`` around the registered :func:`user_cell_class`."""
    return keras.layers.RNN(user_cell_class()(units), **flags)


@subject
def functional_model(build_outputs, timesteps, features):
    """``keras.Model(inputs, build_outputs(inputs))`` for inputs (batch, timesteps, features)."""
    inputs = keras.Input(shape=(timesteps, features))
    return keras.Model(inputs, build_outputs(inputs))


def artifact_path(directory, fmt, kind):
    """Where a model (``kind="model"``) or its weights (``"weights"``) saved as ``fmt`` live."""
    import os
    suffix = (WEIGHTS_SUFFIX if kind == "weights" else MODEL_SUFFIX)[fmt]
    return os.path.join(directory, kind + suffix)


@subject
def save_as(model, directory, fmt, kind):
    """Save ``model`` (or, ``kind="weights"``, its weights) as ``fmt`` into ``directory``: the path.

    ``kind="json"``: ``to_json()`` into ``model.json``."""
    import os
    if kind == "json":
        path = os.path.join(directory, "model.json")
        Path(path).write_text(model.to_json())
        return path
    path = artifact_path(directory, fmt, kind)
    if kind == "weights":
        model.save_weights(path, **({"save_format": "tf"} if fmt == "tf" else {}))
    elif fmt == "export":
        model.export(path)
    elif fmt == "savedmodel":
        model.save(path, save_format="tf")
    else:
        model.save(path)
    return path


@subject
def load_saved(path, fmt):
    """Load a model saved as ``fmt``: a Keras model, or (``export``) a callable ``x -> outputs``."""
    if fmt == "export":
        import tensorflow as tf
        restored = tf.saved_model.load(path)
        return lambda x, _restored=restored: _restored.serve(x)   # the function needs its object alive
    if fmt == "json":
        return keras.models.model_from_json(Path(path).read_text())
    return keras.models.load_model(path)


@subject
def load_weights_from(model, path):
    model.load_weights(path)
    return model
