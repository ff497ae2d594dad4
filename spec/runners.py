"""Built layers and compiled calls, reused across examples.

Building a layer and tracing its graph is the expensive part of an example
(about 85 ms on TF, about 1 s for a JAX compile); setting new weights and
calling an already-traced function with new inputs costs about a
millisecond. Layers are therefore cached by everything that changes the
graph -- the configuration, the input width, whether a mask and an initial
state are passed -- and every example sets fresh weights.
"""

from collections import OrderedDict

from rnnspec.spec import adapter
from rnnspec.spec.cases import keras_layer

#: The compiled paths users run, per backend; the first is the one ``compiled=True`` means.
#: TensorFlow: ``tf.function``, and ``tf.function(jit_compile=True)`` (XLA), which Keras 3's
#: ``jit_compile="auto"`` chooses in ``fit``/``predict``; JAX: ``jax.jit`` (always XLA);
#: torch: the eager call (Keras 3 on torch compiles nothing by default).
COMPILED_PATHS = {"tensorflow": ("tf.function", "xla"), "jax": ("jax.jit",), "torch": ("eager",)}[adapter.BACKEND]

_CACHE = OrderedDict()
# Room for every graph shape the claims share: the equivalence, gradient and training
# chapters' ci run keeps 319 on TF 2.21 (451 traces with 256 slots, 393 unbounded; peak
# RSS of that run about 2 GB).
_MAX_CACHED = 1024
stats = {"hits": 0, "misses": 0}


def _graph_shape(case, compiled, device):
    """``(compiled path, fixed timesteps or None, cache key)``: everything that fixes ``case``'s traced graph."""
    if compiled is True:
        compiled = COMPILED_PATHS[0]
    c = case.config
    timesteps = case.timesteps if (c.unroll and adapter.BACKEND == "tensorflow") else None
    key = (c, case.features, case.mask is not None, len(case.initial_state or ()),
           case.training, compiled, timesteps, device)
    return compiled, timesteps, key


def _cached(cache, key, build):
    """``cache[key]``, built by ``build()`` on a miss; the least recently used entry goes past _MAX_CACHED."""
    if key in cache:
        stats["hits"] += 1
        cache.move_to_end(key)
        return cache[key]
    stats["misses"] += 1
    cache[key] = built = build()
    if len(cache) > _MAX_CACHED:
        cache.popitem(last=False)
    return built


def runner_for(case, *, compiled=True, device="cpu"):
    """A callable ``(weights, x, mask, initial_state) -> [outputs]`` for ``case`` on ``device``.

    ``compiled``: False (eager), True (the backend's first compiled path) or a
    name from :data:`COMPILED_PATHS`.
    """
    compiled, timesteps, key = _graph_shape(case, compiled, device)
    return _cached(_CACHE, key, lambda: _build_runner(case, compiled, timesteps, device))


def _build_runner(case, compiled, timesteps, device):
    c = case.config
    with adapter.device_scope(device):
        layer = keras_layer(c, case.features)
        if compiled:
            inner = adapter.compiled_call(layer, has_mask=case.mask is not None,
                                          n_initial_states=len(case.initial_state or ()),
                                          training=case.training, timesteps=timesteps,
                                          jit_compile=compiled == "xla")
        else:
            def inner(weights, x, mask=None, initial_state=None, _layer=layer):
                adapter.set_weights(_layer, weights)
                return adapter.call(_layer, x, mask=mask, initial_state=initial_state, training=case.training)

    def run(weights, x, mask=None, initial_state=None):
        with adapter.device_scope(device), adapter.KernelSpy() as spy:
            out = inner(weights, x, mask, initial_state)
        if spy.calls:   # a compiled graph is only spied on while it is traced
            run.kernel = spy.kernel()
        return out
    run.kernel = "generic-loop" if c.kind != "simple_rnn" else "n/a"
    return run


def run_case(case, *, compiled=True, device="cpu"):
    return runner_for(case, compiled=compiled, device=device)(case.weights, case.x, case.mask, case.initial_state)


def kernel_of(case, *, compiled=True, device="cpu"):
    """Which kernel the cached runner for ``case`` took: cudnn, backend-fused or generic-loop."""
    return runner_for(case, compiled=compiled, device=device).kernel


_GRADIENT_CACHE = OrderedDict()


def gradient_runner_for(case, *, compiled=True, device="cpu"):
    """A callable ``(weights, x, mask, initial_state, coefficients) -> [gradients]`` for ``case``
    (``rnnspec.spec.adapter.gradient_call``), cached per graph shape as :func:`runner_for` caches calls."""
    compiled, timesteps, key = _graph_shape(case, compiled, device)
    return _cached(_GRADIENT_CACHE, key, lambda: _build_gradient_runner(case, compiled, timesteps, device))


def _build_gradient_runner(case, compiled, timesteps, device):
    c = case.config
    n_outputs = (2 if c.bidirectional == "none" else 1) + (c.n_states if c.return_state else 0)
    with adapter.device_scope(device):
        layer = keras_layer(c, case.features)
        inner = adapter.gradient_call(layer, has_mask=case.mask is not None,
                                      n_initial_states=len(case.initial_state or ()), n_outputs=n_outputs,
                                      compiled=bool(compiled) and compiled != "eager",
                                      training=case.training, timesteps=timesteps,
                                      jit_compile=compiled == "xla")

    def run(weights, x, mask, initial_state, coefficients):
        with adapter.device_scope(device):
            return inner(weights, x, mask, initial_state, coefficients)
    return run


def run_gradients(case, coefficients, *, compiled=True, device="cpu"):
    """Keras's gradients for ``case`` and ``coefficients``, in ``rnnspec.spec.cases.gradient_names`` order."""
    return gradient_runner_for(case, compiled=compiled, device=device)(
        case.weights, case.x, case.mask, case.initial_state, coefficients)


# --------------------------------------------------------------------------- dtypes (spec/test_dtypes.py)

#: dtype or policy name -> (compute dtype, variable dtype), as Keras documents its policies
DTYPES = {"float32": ("float32", "float32"), "float64": ("float64", "float64"),
          "float16": ("float16", "float16"), "bfloat16": ("bfloat16", "bfloat16"),
          "mixed_float16": ("float16", "float32"), "mixed_bfloat16": ("bfloat16", "float32")}
_DTYPE_CACHE = OrderedDict()


def run_in_dtype(case, dtype):
    """Eager call of ``case`` on a layer built with ``dtype=`` the dtype or policy name ``dtype``:
    ``(outputs as float64, output dtype names, variable dtype names, kernel)`` (kernel as
    :class:`rnnspec.spec.adapter.KernelSpy` says; Keras 2: "generic-loop"). Layers are cached per
    configuration, width and dtype; every call sets the case's weights."""
    c = case.config

    def build():
        kwargs = c.keras_kwargs()
        kwargs.update(kernel_initializer="zeros", recurrent_initializer="zeros", dtype=adapter.dtype_argument(dtype))
        return adapter.build(adapter.make_layer(c.kind, c.units, **kwargs), None, case.features)
    layer = _cached(_DTYPE_CACHE, (c, case.features, dtype), build)
    adapter.set_weights(layer, case.weights)
    with adapter.KernelSpy() as spy:
        outputs, out_dtypes = adapter.call_with_dtypes(layer, case.x, mask=case.mask,
                                                       initial_state=case.initial_state, state_dtype=DTYPES[dtype][0])
    kernel = spy.kernel() if c.kind != "simple_rnn" else "generic-loop"
    return outputs, out_dtypes, adapter.variable_dtypes(layer), kernel


def bfloat16_rounded(f32):
    """float32 values rounded to the nearest bfloat16 (ties to even), as float32: bfloat16 keeps the
    upper 16 bits of a float32. (numpy has no bfloat16; ml_dtypes is not installed with TF 2.12/2.13.)"""
    import numpy as np
    bits = np.ascontiguousarray(f32, np.float32).view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return bits.astype(np.uint32).view(np.float32)


def rounded_to(case, dtype):
    """``case`` with its weights, inputs and initial states rounded to the compute dtype of ``dtype``
    (what the layer computes with: its variables, or their autocast copies, and its cast inputs)."""
    from dataclasses import replace
    import numpy as np
    compute = DTYPES[dtype][0]
    if compute in ("float32", "float64"):
        return case

    def r(a):
        f32 = np.asarray(a, np.float32)   # the values are float32 already: what the layer is given
        return np.asarray(f32.astype(np.float16) if compute == "float16" else bfloat16_rounded(f32), np.float64)
    return replace(case, weights=[r(w) for w in case.weights], x=r(case.x),
                   initial_state=None if case.initial_state is None else [r(s) for s in case.initial_state])
