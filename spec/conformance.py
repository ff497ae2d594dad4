"""Assert that Keras conforms on one example: to the formulas, or to a listed divergence's model.

Every property funnels its comparison through :func:`assert_conforms` (or,
for results it computes itself, :func:`assert_values`), so that an example
is never skipped:

- outside every listed divergence, Keras must equal the formulas
  (``reference/``);
- inside a value divergence (``model = ...`` in ``spec/data/divergences.toml``),
  every value the bug does not touch -- where the model equals the formulas
  within the tolerance -- is checked against the formulas, and every value it
  touches against the model (``spec/divergence_models.py``). An example
  where the model and the formulas agree everywhere is simply a formula
  example;
- inside a raising divergence (``[divergence.raises]``), Keras must raise
  that exception class with that message;
- a value that matches neither the formulas nor the model is a failure (a
  new bug); an affected example that matches the formulas where the model
  differs, or that no longer raises, is *fixed in this environment*, which
  fails the gate so that the entry gets removed.

"Matches" uses the same tolerance table as every other comparison.
"""

import re

import numpy as np

from rnnspec.spec import adapter, outcomes
from rnnspec.spec.assertions import assert_matches_reference, close_mask, describe, output_names, reproducer, tolerance
from rnnspec.spec.cases import reference_outputs
from rnnspec.spec.divergences import divergence_for, raising_divergences_for


def _model(entry):
    from rnnspec.spec.divergence_models import MODELS
    return MODELS[entry["model"]]


def raises_as_listed(entry, exc):
    """Whether ``exc`` is what the raising divergence ``entry`` says Keras raises, directly or
    chained under another exception (Keras 3's trainer re-raises an error of its first
    symbolic call as "Unable to automatically build the model", chained to the original)."""
    rule = entry.get("raises") or {}
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        names = {c.__name__ for c in type(exc).__mro__}
        if names & set(rule.get("exception", [])) and re.search(rule.get("message", ""), str(exc)) is not None:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def call_unless_listed_crash(entry, fn, *, what):
    """``fn()``'s result, or None when ``entry`` is a raising divergence and ``fn`` raised as it lists
    (the example is then recorded as that divergence). Inside a raising divergence a call that
    returns is "fixed in this environment"; any other exception propagates."""
    raising = entry is not None and "raises" in entry
    try:
        result = fn()
    except Exception as exc:
        if raising and raises_as_listed(entry, exc):
            outcomes.raised_as_modelled(entry["id"])
            return None
        raise
    if raising:
        raise outcomes.DivergenceFixed(f"fixed in this environment: {entry['id']!r} says {what} raises "
                                       f"{entry['raises']['exception']}, but the call returned")
    return result


def modelled_outputs(case, hard_sigmoid, entry):
    """What ``entry``'s model says Keras returns for ``case``."""
    return _model(entry)(case, hard_sigmoid)


#: a value counts as touched by a divergence when its model and the formulas differ by more
#: than this (both are float64 computations of the same loop: agreement is exact up to rounding)
TOUCHED = 1e-9


def touched_values(case, hard_sigmoid, entry):
    """``(modelled, touched)`` for a value divergence ``entry``: its model's outputs, and per
    returned value a boolean mask of the entries where the model differs from the formulas
    (all of a value whose shape differs)."""
    formulas = reference_outputs(case, hard_sigmoid)
    modelled = modelled_outputs(case, hard_sigmoid, entry)
    touched = [np.abs(np.asarray(m) - np.asarray(f)) > TOUCHED if np.shape(m) == np.shape(f)
               else np.ones(np.shape(f), bool) for m, f in zip(modelled, formulas)]
    return modelled, touched


def assert_conforms(case, run, *, path, atol=None, rtol=None, hard_sigmoid=None, expected=None, entry=False):
    """Run Keras (``run()`` -> list of arrays) on ``case`` and assert the result.

    ``entry`` defaults to the listed divergence that ``case`` falls in under
    the running claim (pass ``None`` to assert the formulas only).
    """
    __tracebackhide__ = True
    hard_sigmoid = hard_sigmoid or adapter.conventions()["hard_sigmoid"]
    if atol is None or rtol is None:
        atol, rtol = tolerance()
    if entry is False:
        entry = divergence_for(case)
    if expected is None:
        expected = reference_outputs(case, hard_sigmoid)
    if entry is not None and "raises" in entry:
        try:
            actual = run()
        except Exception as exc:
            met = next((e for e in [entry, *raising_divergences_for(case)] if raises_as_listed(e, exc)), None)
            if met is not None:
                outcomes.raised_as_modelled(met["id"])
                return None
            raise outcomes.KerasCrashed(
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} [{path}] -- inside the listed "
                f"raising divergence {entry['id']!r}, which expects {entry['raises']}\n  config: {describe(case)}"
            ) from exc
        if _all_close(actual, expected, atol, rtol):
            raise outcomes.DivergenceFixed(
                f"fixed in this environment: {entry['id']!r} says Keras raises {entry['raises']['exception']}, "
                f"but it returned the formulas' values [{path}]\n  config: {describe(case)}\n"
                f"Remove or narrow the entry in spec/data/divergences.toml.")
        assert_matches_reference(case, actual, expected, atol=atol, rtol=rtol,
                                 path=f"{path}; inside raising divergence {entry['id']!r}, which did not raise")
        return actual
    actual = run()
    if entry is None:
        assert_matches_reference(case, actual, expected, atol=atol, rtol=rtol, path=path)
        return actual
    assert_values(case, actual, expected, modelled_outputs(case, hard_sigmoid, entry), entry["id"],
                  atol=atol, rtol=rtol, path=path)
    return actual


def _all_close(actual, expected, atol, rtol):
    if len(actual) != len(expected):
        return False
    return all(np.shape(a) == np.shape(e) and np.all(close_mask(a, e, atol, rtol))
               for a, e in zip(actual, expected))


def assert_values(case, actual, expected, modelled, divergence_id, *, atol, rtol, path, names=None):
    """``actual`` equals the formulas where the model agrees with them, and the model where it does not."""
    __tracebackhide__ = True
    touched = [~close_mask(m, e, atol, rtol) if np.shape(m) == np.shape(e) else np.ones(np.shape(m), bool)
               for m, e in zip(modelled, expected)]
    if not any(np.any(t) for t in touched) and len(modelled) == len(expected):
        assert_matches_reference(case, actual, expected, atol=atol, rtol=rtol, path=path, names=names)
        return
    if _all_close(actual, modelled, atol, rtol):
        outcomes.asserted_model(divergence_id)
        return
    if _all_close(actual, expected, atol, rtol):
        raise outcomes.DivergenceFixed(
            f"fixed in this environment: inside {divergence_id!r} Keras returned the formulas' values where "
            f"the model differs [{path}]\n  config: {describe(case)}\n"
            f"Remove or narrow the entry in spec/data/divergences.toml.")
    names = names or output_names(case.config)
    lines = []
    for name, a, e, m, t in zip(names, actual, expected, modelled, touched):
        a = np.asarray(a)
        if a.shape != np.shape(m):
            lines.append(f"{name}.shape={a.shape}, model says {np.shape(m)}")
            continue
        bad = ~close_mask(a, m, atol, rtol)
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            lines.append(f"{name}{list(idx)}={a[idx]:.7g}: formulas {np.asarray(e)[idx]:.7g}, model of "
                         f"{divergence_id!r} {np.asarray(m)[idx]:.7g} ({'touched' if t[idx] else 'untouched'} "
                         f"by the divergence)")
    raise AssertionError(f"matches neither the formulas nor the model of {divergence_id!r}: "
                         f"{'; '.join(lines[:3])} [{path}]\n  config: {describe(case)}\n\n"
                         f"Reproducer (numpy + keras):\n{reproducer(case, expected)}")


def assert_refused(fn, *, claim=None):
    """``fn()`` must be refused as ``spec/data/refusals.toml`` says for the running claim.

    Refused: the outcome of the example. A listed crash (``[[crash]]`` in that
    file: a finding, with its reason, modelled by exception class and message
    pattern) counts as that divergence. Accepted: failed. Any other
    exception: crashed.
    """
    __tracebackhide__ = True
    from rnnspec.spec import refusals
    from rnnspec.spec.report import current_claim, note_observation
    claim = claim or current_claim()
    with refusals.keras_tracebacks():
        try:
            result = fn()
        except Exception as exc:   # what Keras raised is exactly what is judged
            outcome, detail = refusals.classify(claim, exc)
            note_observation("raises", f"{type(exc).__module__}.{type(exc).__qualname__}")
            if outcome == "refused":
                outcomes.refused(detail)
                return detail
            listed = refusals.listed_crash(claim, exc)
            if listed is not None:
                outcomes.raised_as_modelled(listed)
                return detail
            raise outcomes.KerasCrashed(f"crashed instead of a documented refusal: {detail} [{claim}]") from exc
    shapes = [getattr(r, "shape", None) for r in adapter.as_list(result)]
    raise AssertionError(f"accepted, returned {shapes}, but must be refused [{claim}]")
