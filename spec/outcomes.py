"""Outcomes: every example and every claim ends in exactly one.

An *example* is one drawn input of a property (one call of the test body by
Hypothesis; a test without Hypothesis is one example). A *claim* is a test
function without its parameters. The outcomes, in the report and in the
pytest output:

================  ==============================================================
passed            it equals the documented formulas
diverged          it equals the model of a listed known divergence
                  (``spec/data/divergences.toml``): a value model, or for a
                  raising divergence the exception class and message it names
refused           Keras raised the exception it documents or raises on purpose
                  (``spec/data/refusals.toml``: class, message, explicit raise)
unsupported       the feature does not exist in this version (stated as data)
skipped           the claim cannot fail where it runs (its reason says why)
harness-gap       the feature exists, but rnnspec cannot observe it here (a limit of
                  ours, listed with its reason; e.g. Keras 2's dropout masks drawn
                  inside a compiled tf.while_loop)
failed            a value differs from the formulas and from every listed
                  model, or Keras accepted what it must refuse: a new finding
crashed           Keras raised otherwise (an unlisted exception from inside
                  Keras, or a refusal with the wrong class or message): a finding
fixed             an example inside a listed divergence equals the formulas
                  where the model differs: the entry is stale in this environment
harness-error     the suite itself failed: a defect of rnnspec, never of Keras
================  ==============================================================

The last four fail the gate. A claim is ``passed`` only where at least one of its
examples was compared with the formulas: a claim whose examples were all
``unsupported`` ends ``unsupported``, one whose examples hit a harness gap ends
``harness-gap`` (never a hollow pass; ``rnnspec gate`` fails on a report that has one).

How "crashed" is told from "harness error":
the adapter marks the calls that are the subject of a claim -- building a
layer, setting its weights, calling it (``rnnspec.spec.adapter.subject``). An
exception that escapes one of those from inside a library (its innermost
frame is not in rnnspec's own code) is Keras's: crashed, unless the claim's
data says it is a documented refusal or a listed raising divergence. Any
other exception -- the adapter choosing a device, reading states, converting
to numpy, a Python argument error at our own call site, a bug in a strategy
or in ``reference/`` -- is a harness error.

Helpers record what each example was asserted against; the report plugin
(``spec/report.py``) closes every example and counts one outcome for it, and
counts an example that recorded nothing as *unasserted*, which the gate
treats as a failure of the suite.
"""

import functools
import importlib.util
from pathlib import Path

#: every outcome, best first; a claim takes the worst outcome among its examples
OUTCOMES = ("passed", "refused", "diverged", "unsupported", "skipped", "harness-gap",
            "fixed", "failed", "crashed", "harness-error")
#: outcomes that fail the gate
GATE_FAILING = frozenset({"fixed", "failed", "crashed", "harness-error"})
#: outcomes that mean "Keras did something the spec does not allow" (a finding)
FINDINGS = frozenset({"failed", "crashed", "fixed"})

#: the checkout (installed editable) or the installed rnnspec/ folder (a wheel)
SPEC_ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def own_dirs():
    """The folders of rnnspec's packages, wherever they are installed from, and the
    checkout's own test folders (tests/, bench/: absent from a wheel)."""
    from rnnspec import PACKAGES
    dirs = [SPEC_ROOT / "tests", SPEC_ROOT / "bench"]
    for name in PACKAGES:
        found = importlib.util.find_spec(name)
        dirs += [Path(p).resolve() for p in ((found.submodule_search_locations or []) if found else [])]
    return tuple(dirs)


def worst(outcomes):
    """The outcome that ranks last in :data:`OUTCOMES` (``None`` for none)."""
    ranked = [o for o in outcomes if o]
    return max(ranked, key=OUTCOMES.index) if ranked else None


# --------------------------------------------------------------------------- exceptions

class DivergenceFixed(AssertionError):
    """An example inside a listed divergence matches the formulas instead of its model."""
    rnnspec_outcome = "fixed"


class KerasCrashed(AssertionError):
    """Keras raised where the claim allows no exception, or raised the wrong one."""
    rnnspec_outcome = "crashed"


def mark_subject_exception(exc):
    """Tag ``exc`` as raised by Keras inside a subject call, unless it came from our own code.

    An exception whose innermost traceback frame lies in rnnspec's own files
    (e.g. a ``TypeError`` for an argument the adapter passed wrongly, raised
    at our call site) stays untagged: a harness error.
    """
    if getattr(exc, "rnnspec_outcome", None):
        return exc
    tb, last = exc.__traceback__, None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    inner = Path(last.tb_frame.f_code.co_filename).resolve() if last is not None else None
    if inner is not None and not _ours(inner):
        try:
            exc.rnnspec_outcome = "crashed"
        except (AttributeError, TypeError):   # an exception type that takes no attributes
            pass
    return exc


def _ours(path):
    return any(path.is_relative_to(d) for d in own_dirs())


def classify_exception(exc):
    """The outcome a test that raised ``exc`` ends in."""
    group = getattr(exc, "exceptions", None)
    if group:   # Hypothesis reports several distinct failures as an ExceptionGroup
        return worst(classify_exception(e) for e in group)
    tagged = getattr(exc, "rnnspec_outcome", None)
    if tagged:
        return tagged
    if isinstance(exc, AssertionError) or type(exc).__name__ == "Failed":   # pytest.fail
        return "failed"
    return "harness-error"


# --------------------------------------------------------------------------- per example

class ExampleLog:
    """What the running example was asserted against."""

    def __init__(self):
        self.kinds = []        # ("passed", None) / ("diverged", id) / ("refused", detail) / ...

    def outcome(self):
        """``(outcome, detail)`` of the example, or ``(None, None)`` if nothing was asserted."""
        if not self.kinds:
            return None, None
        for kind in ("diverged", "refused", "unsupported", "harness-gap", "passed"):
            for k, detail in self.kinds:
                if k == kind:
                    return k, detail
        return self.kinds[0]


_current = {"log": None}


def begin_example():
    _current["log"] = ExampleLog()
    return _current["log"]


def end_example():
    log, _current["log"] = _current["log"], None
    return log


def _record(kind, detail=None):
    log = _current["log"]
    if log is not None:
        log.kinds.append((kind, detail))


def asserted_formulas():
    """The example was compared with the documented formulas and matched."""
    _record("passed")


def asserted_model(divergence_id):
    """The example matched the value model of a listed divergence (where it differs from the formulas)."""
    _record("diverged", divergence_id)


def raised_as_modelled(divergence_id):
    """The example raised what a listed raising divergence says."""
    _record("diverged", divergence_id + " (raises)")


def refused(detail):
    """Keras refused the example as documented; ``detail`` is the exception class."""
    _record("refused", detail)


def unsupported(reason):
    """The example exercises a feature this version does not have (stated as data, with the
    evidence: the signature, the docstring or a refusal)."""
    _record("unsupported", reason)


def harness_gap(reason):
    """The feature exists in this version, but rnnspec cannot observe it on this path
    (a limit of ours, not of Keras); ``reason`` says why."""
    _record("harness-gap", reason)


def claim_outcome(examples):
    """The outcome of a claim that ran to the end without an error, from its examples
    (``{"drawn", "formulas", "models", "refused", "unsupported", "harness_gap", ...}``):
    ``passed`` only where some example was compared with the formulas; never a hollow pass.

    A test that drew no example (``drawn`` 0: it records none, e.g. the reference's own
    hand-computed checks in ``tests/``) passed on its own assertions: ``passed``, as pytest says.
    """
    if not examples.get("drawn"):
        return "passed"
    if examples.get("models"):
        return "diverged"
    if examples.get("formulas"):
        return "passed"
    if examples.get("refused"):
        return "refused"
    if examples.get("harness_gap"):
        return "harness-gap"
    if examples.get("unsupported"):
        return "unsupported"
    return "skipped"


def hollow(outcome, examples):
    """Whether a claim says ``passed`` although none of its drawn examples was asserted
    against the formulas, a divergence model or a refusal rule (a report written before
    :func:`claim_outcome`, or edited by hand)."""
    asserted = int(examples.get("formulas") or 0) + int(examples.get("refused") or 0) \
        + sum((examples.get("models") or {}).values())
    return outcome == "passed" and int(examples.get("drawn") or 0) > 0 and asserted == 0
