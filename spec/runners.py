"""Built layers and compiled calls, reused across examples.

Building a layer and tracing its graph is the expensive part of an example
(about 85 ms on TF, about 1 s for a JAX compile); setting new weights and
calling an already-traced function with new inputs costs about a
millisecond. Layers are therefore cached by everything that changes the
graph -- the configuration, the input width, whether a mask and an initial
state are passed -- and every example sets fresh weights.
"""

from collections import OrderedDict

from spec import adapter
from spec.cases import keras_layer

#: The compiled paths users run, per backend; the first is the one ``compiled=True`` means.
#: TensorFlow: ``tf.function``, and ``tf.function(jit_compile=True)`` (XLA), which Keras 3's
#: ``jit_compile="auto"`` chooses in ``fit``/``predict``; JAX: ``jax.jit`` (always XLA);
#: torch: the eager call (Keras 3 on torch compiles nothing by default).
COMPILED_PATHS = {"tensorflow": ("tf.function", "xla"), "jax": ("jax.jit",), "torch": ("eager",)}[adapter.BACKEND]

_CACHE = OrderedDict()
_MAX_CACHED = 256
stats = {"hits": 0, "misses": 0}


def runner_for(case, *, compiled=True, device="cpu"):
    """A callable ``(weights, x, mask, initial_state) -> [outputs]`` for ``case`` on ``device``.

    ``compiled``: False (eager), True (the backend's first compiled path) or a
    name from :data:`COMPILED_PATHS`.
    """
    if compiled is True:
        compiled = COMPILED_PATHS[0]
    c = case.config
    timesteps = case.timesteps if (c.unroll and adapter.BACKEND == "tensorflow") else None
    key = (c, case.features, case.mask is not None, len(case.initial_state or ()),
           case.training, compiled, timesteps, device)
    if key in _CACHE:
        stats["hits"] += 1
        _CACHE.move_to_end(key)
        return _CACHE[key]
    stats["misses"] += 1
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
    _CACHE[key] = run
    if len(_CACHE) > _MAX_CACHED:
        _CACHE.popitem(last=False)
    return run


def run_case(case, *, compiled=True, device="cpu"):
    return runner_for(case, compiled=compiled, device=device)(case.weights, case.x, case.mask, case.initial_state)


def kernel_of(case, *, compiled=True, device="cpu"):
    """Which kernel the cached runner for ``case`` took: cudnn, backend-fused or generic-loop."""
    return runner_for(case, compiled=compiled, device=device).kernel


_GRADIENT_CACHE = OrderedDict()


def gradient_runner_for(case, *, compiled=True, device="cpu"):
    """A callable ``(weights, x, mask, initial_state, coefficients) -> [gradients]`` for ``case``
    (``spec.adapter.gradient_call``), cached per graph shape as :func:`runner_for` caches calls."""
    if compiled is True:
        compiled = COMPILED_PATHS[0]
    c = case.config
    timesteps = case.timesteps if (c.unroll and adapter.BACKEND == "tensorflow") else None
    n_outputs = (2 if c.bidirectional == "none" else 1) + (c.n_states if c.return_state else 0)
    key = (c, case.features, case.mask is not None, len(case.initial_state or ()),
           case.training, compiled, timesteps, device)
    if key in _GRADIENT_CACHE:
        stats["hits"] += 1
        _GRADIENT_CACHE.move_to_end(key)
        return _GRADIENT_CACHE[key]
    stats["misses"] += 1
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
    _GRADIENT_CACHE[key] = run
    if len(_GRADIENT_CACHE) > _MAX_CACHED:
        _GRADIENT_CACHE.popitem(last=False)
    return run


def run_gradients(case, coefficients, *, compiled=True, device="cpu"):
    """Keras's gradients for ``case`` and ``coefficients``, in ``spec.cases.gradient_names`` order."""
    return gradient_runner_for(case, compiled=compiled, device=device)(
        case.weights, case.x, case.mask, case.initial_state, coefficients)
