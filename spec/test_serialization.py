"""Chapter 9 -- saving: configs, weights and models survive a round trip.

What a user saves, they load back. Within one environment, each of these
gives a layer or model with the same configuration, the same weights and
exactly the same outputs (the same computation on the same numbers):

- ``get_config`` -> ``from_config``: every constructor argument the user
  passed is in the configuration, with its value, and a layer rebuilt from it
  has the same configuration. An argument that does not survive is a finding;
  the ones a version is known to drop are data
  (``spec/data/saving.toml``), asserted exactly: an argument dropped
  that is not listed fails, and a listed one that survives fails as "fixed".
- ``to_json`` -> ``model_from_json`` (then the same weights);
- ``save_weights`` -> ``load_weights`` into a model built from the same
  configuration, in every weights format the version writes;
- ``save`` (or ``export``) -> ``load_model``, in every model format the
  version writes.

The formats per version are data (``conventions.toml``: ``weights_formats``,
``model_formats``). The original model's outputs are first asserted against
the formulas (or a listed divergence), so "the same outputs" means the
formulas' outputs. Saving to disk costs far more than a call: the file
formats draw few examples each (``SAVE_EXAMPLES``).
"""

import functools
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnnspec.spec import adapter, outcomes
from rnnspec.spec.cases import Case, keras_layer
from rnnspec.spec.conformance import assert_conforms, call_unless_listed_crash
from rnnspec.spec.profiles import scaled_examples
from rnnspec.spec.strategies import NUMERIC_FEATURES, NUMERIC_TIMESTEPS, cases, layer_configs
from rnnspec.spec.versions import applies

#: Examples per file-format claim, as a fraction of the profile's max_examples
#: (ci: 40 -> 4). SavedModel and export trace and write a graph: about a second each.
SAVE_EXAMPLES = 0.1
SLOW_FORMATS = {"savedmodel", "export"}


@functools.cache
def _saving_table():
    from rnnspec.spec.report import environment
    table = tomllib.loads((Path(__file__).parent / "data" / "saving.toml").read_text())
    env = environment()
    return {kind: [e for e in table.get(kind, []) if applies(e.get("when"), env)] for kind in ("loss", "load_crash")}


def known_losses():
    """The (class, argument) pairs this environment's get_config is known to drop, with their reasons."""
    return {(entry["layer"], entry["argument"]): entry["reason"] for entry in _saving_table()["loss"]}


def load_crash(case, fmt):
    """The listed load crash (``saving.toml``) for a model of ``case`` saved as ``fmt``, or None."""
    layer = "Bidirectional" if case.config.bidirectional else adapter.LAYER_CLASSES[case.config.kind]
    return next((e for e in _saving_table()["load_crash"]
                 if fmt in (e["format"] if isinstance(e["format"], list) else [e["format"]]) and e["layer"] == layer
                 and all(getattr(case.config, k) == v for k, v in e.get("config", {}).items())), None)


def _wrapped_configs(layer_config, config):
    """The configs that hold the recurrent layer's arguments: itself, or Bidirectional's halves."""
    if not layer_config.bidirectional:
        return {"layer": config}
    found = {"forward layer": config["layer"]["config"]}
    if "backward_layer" in config:   # Keras 3 stores both halves
        found["backward layer"] = config["backward_layer"]["config"]
    return found


def _lost_arguments(layer_config, layer, extra=None):
    """Constructor arguments (the config's and ``extra``) that get_config does not carry, or
    carries with another value."""
    passed = {**layer_config.keras_kwargs(), **(extra or {})}
    if not adapter.conventions()["accepts_implementation"]:
        passed.pop("implementation", None)   # not passed at all (spec/adapter.py make_layer)
    lost = {}
    for where, config in _wrapped_configs(layer_config, layer.get_config()).items():
        for name, value in passed.items():
            if name == "go_backwards" and where == "backward layer":
                continue   # the backward half runs backwards by construction
            if config.get(name, "<absent>") != value:
                lost[name] = f"{where}: passed {value!r}, config has {config.get(name, '<absent>')!r}"
    merge_mode = None if layer_config.bidirectional == "none" else layer_config.bidirectional
    if layer_config.bidirectional and layer.get_config().get("merge_mode") != merge_mode:
        lost["merge_mode"] = f"Bidirectional: config has {layer.get_config().get('merge_mode')!r}"
    return lost


def _normalised(config):
    """A config without the names Keras makes unique per object."""
    if isinstance(config, dict):
        return {k: _normalised(v) for k, v in config.items() if k != "name"}
    if isinstance(config, (list, tuple)):   # a shape is a tuple in memory and a list in JSON
        return [_normalised(v) for v in config]
    return config


def extra_arguments(kind):
    """Arguments the layer configs do not vary, drawn where the version has them: the dropout
    ``seed`` (conventions.toml dropout_seed_argument) and LSTM's and GRU's ``use_cudnn``
    (use_cudnn_argument; True or False, the values that differ from the default "auto")."""
    conventions = adapter.conventions()
    optional = {}
    if conventions["dropout_seed_argument"]:
        optional["seed"] = st.integers(0, 2**16)
    if conventions["use_cudnn_argument"] and kind in ("lstm", "gru"):
        optional["use_cudnn"] = st.booleans()
    return st.fixed_dictionaries({}, optional=optional)


@given(layer_configs(), st.data())
def test_config_keeps_every_argument(layer_config, data):
    """get_config carries every argument the user passed, and from_config rebuilds the same config."""
    extra = data.draw(extra_arguments(layer_config.kind), label="extra arguments")
    layer = keras_layer(layer_config, 3, extra=extra)
    lost = _lost_arguments(layer_config, layer, extra)
    kind_class = adapter.LAYER_CLASSES[layer_config.kind]
    listed = {name for (cls, name) in known_losses()
              if cls in (kind_class, "Bidirectional" if layer_config.bidirectional else kind_class)}
    unexpected = {n: why for n, why in lost.items() if n not in listed}
    assert not unexpected, (
        "get_config drops or changes arguments the user passed: "
        + "; ".join(f"{n} ({why})" for n, why in unexpected.items())
        + f"\n  layer: {layer_config.one_line(3)}")
    fixed = sorted(n for n in listed if n in {**layer_config.keras_kwargs(), **extra} and n not in lost)
    if fixed:
        raise outcomes.DivergenceFixed(
            f"fixed in this environment: get_config now keeps {fixed}, listed as dropped in "
            f"spec/data/saving.toml ({layer_config.one_line(3)})")
    rebuilt = adapter.layer_from_config(layer)
    assert _normalised(rebuilt.get_config()) == _normalised(layer.get_config()), (
        f"from_config(get_config()) gives another config\n  before: {layer.get_config()}\n"
        f"  after:  {rebuilt.get_config()}")
    if lost:   # exactly the listed losses: asserted against the data, as a divergence model is
        outcomes.asserted_model("config-losses: " + ", ".join(sorted(lost)))
    else:
        outcomes.asserted_formulas()


# --------------------------------------------------------------------------- values

def _saved_cases():
    return cases(configs=layer_configs(), features=NUMERIC_FEATURES, timesteps=NUMERIC_TIMESTEPS,
                 with_masks=False, with_initial_state=False)


def _model_and_outputs(case):
    """The model around the drawn layer, its weights set, and its outputs asserted against the
    formulas; ``(None, None)`` where building or calling it raised as a listed divergence."""
    built = {}

    def run():
        layer = keras_layer(case.config, case.features)
        adapter.set_weights(layer, case.weights)
        built["model"] = adapter.model_of(layer, case.timesteps, case.features)
        return _outputs(built["model"], case)
    actual = assert_conforms(case, run, path="the model before saving")
    return built.get("model"), actual


def _outputs(model, case):
    return adapter.call(model, case.x)


def _assert_same(case, before, after, what, *, rebuilt, traced=False):
    """Exactly equal (the same computation on the same numbers), except where it cannot be:

    - the model was rebuilt from a config that drops an argument (saving.toml): a
      listed loss may change the kernel (LSTM implementation 1 -> 2);
    - ``traced``: an exported SavedModel serves a traced graph, where grappler may fuse and
      reorder float32 operations (measured: 6e-8 apart from the eager call, TF 2.21).

    Then the outputs must agree within the tolerance table's value."""
    from rnnspec.spec.assertions import close_mask, tolerance
    lost = _lost_arguments(case.config, keras_layer(case.config, case.features)) if rebuilt else {}
    atol, rtol = tolerance() if (lost or traced) else (0.0, 0.0)
    assert len(before) == len(after), f"{what}: {len(after)} outputs instead of {len(before)}"
    for i, (b, a) in enumerate(zip(before, after)):
        same = np.shape(a) == np.shape(b) and (bool(np.all(close_mask(a, b, atol, rtol))) if atol else np.array_equal(b, a))
        if not same:
            worst = float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if np.shape(a) == np.shape(b) else None
            raise AssertionError(
                f"{what}: output {i} differs from the model before saving "
                f"(shapes {np.shape(b)} vs {np.shape(a)}, max |difference| {worst}; "
                + (f"within atol={atol}, rtol={rtol})" if atol else "exact)")
                + f"\n  layer: {case.config.one_line(case.features)}")
    return lost


def _asserted(case, lost):
    """Record the example's outcome: diverged where the model before saving was inside a listed
    divergence, or where the rebuilt model lost a listed argument."""
    from rnnspec.spec.divergences import divergence_for
    entry = divergence_for(case)
    if entry is not None:
        outcomes.asserted_model(entry["id"])
    elif lost:
        outcomes.asserted_model("config-losses: " + ", ".join(sorted(lost)))
    else:
        outcomes.asserted_formulas()


@given(_saved_cases())
@settings(max_examples=scaled_examples(0.25))
def test_json_round_trip_computes_the_same(case):
    """to_json -> model_from_json, then the same weights: the same outputs."""
    model, before = _model_and_outputs(case)
    if before is None:
        return   # a listed raising divergence raised as listed
    def rebuild():
        again = adapter.model_from_json(model)
        adapter.set_weights(again, adapter.get_weights(model))
        return again
    rebuilt = call_unless_listed_crash(load_crash(case, "json"), rebuild, what="model_from_json(to_json())")
    if rebuilt is None:
        return   # raised as the listed crash
    lost = _assert_same(case, before, _outputs(rebuilt, case), "model_from_json(to_json()) with the same weights",
                        rebuilt=True)
    _asserted(case, lost)


def _format_params(kind):
    """One parameter per format this Keras writes; the others as one skip with the reason."""
    known = adapter.WEIGHTS_SUFFIX if kind == "weights" else adapter.MODEL_SUFFIX
    supported = adapter.conventions()[f"{kind}_formats"]
    params = [pytest.param(fmt, id=fmt) for fmt in supported]
    missing = [fmt for fmt in known if fmt not in supported]
    if missing:
        params.append(pytest.param(None, id="other-formats", marks=pytest.mark.skip(
            reason=f"unsupported: Keras {adapter.KERAS_VERSION} ({adapter.BACKEND}) does not write "
                   f"{kind} as {', '.join(missing)} (conventions.toml {kind}_formats)")))
    return params


@pytest.mark.parametrize("fmt", _format_params("weights"))
@given(data=st.data())
@settings(max_examples=scaled_examples(SAVE_EXAMPLES))
def test_weights_round_trip_computes_the_same(fmt, data):
    """save_weights -> load_weights into a model built from the same config: the same outputs."""
    case = data.draw(_saved_cases(), label="case")
    model, before = _model_and_outputs(case)
    if before is None:
        return
    fresh = adapter.model_of(keras_layer(case.config, case.features), case.timesteps, case.features)
    with tempfile.TemporaryDirectory() as directory:
        loaded = adapter.save_weights_then_load(model, fresh, directory, fmt)
    lost = _assert_same(case, before, _outputs(loaded, case), f"weights saved as {fmt} and loaded", rebuilt=False)
    _asserted(case, lost)


@pytest.mark.parametrize("fmt", _format_params("model"))
@given(data=st.data())
@settings(max_examples=scaled_examples(SAVE_EXAMPLES))
def test_model_round_trip_computes_the_same(fmt, data):
    """save (or export) -> load_model: the same config and the same outputs."""
    case = data.draw(_saved_cases(), label="case")
    model, before = _model_and_outputs(case)
    if before is None:
        return
    with tempfile.TemporaryDirectory() as directory:
        loaded = call_unless_listed_crash(load_crash(case, fmt),
                                          lambda: adapter.save_model_then_load(model, directory, fmt),
                                          what=f"loading a model saved as {fmt}")
        if loaded is None:
            return   # raised as the listed load crash
        if fmt == "export":   # a bare SavedModel function: no Keras config to compare
            after = adapter.to_numpy(adapter.as_list(loaded(np.asarray(case.x, np.float32))))
        else:
            kept, got = _normalised(model.layers[-1].get_config()), _normalised(loaded.layers[-1].get_config())
            assert got == kept, (f"the recurrent layer loaded from {fmt} has another config: "
                                 + ", ".join(f"{k}: {kept.get(k)!r} -> {got.get(k)!r}"
                                             for k in sorted(set(kept) | set(got)) if kept.get(k) != got.get(k)))
            after = _outputs(loaded, case)
    lost = _assert_same(case, before, after, f"model saved as {fmt} and loaded", rebuilt=fmt != "export",
                        traced=fmt == "export")
    _asserted(case, lost)
