"""The argument map, the inventory's docstring reading and the coverage rule (no Keras needed)."""

import fnmatch
import inspect
from pathlib import Path

import pytest

from rnnspec.spec import arguments, inventory

SPEC = Path(arguments.__file__).resolve().parent


def _claim_ids():
    return arguments.spec_claim_ids()


def test_every_entry_names_claims_or_a_reason():
    for entry in arguments.load_map():
        has_claims = bool(entry.get("claims"))
        has_reason = bool(str(entry.get("out_of_scope", "")).strip())
        assert has_claims != has_reason, f"{entry['name']} {entry['classes']}: give claims or out_of_scope"
        assert set(entry) <= {"name", "classes", "claims", "out_of_scope", "when", "where"}, entry


def test_every_claim_pattern_matches_a_claim_of_the_spec():
    """A pattern that matches nothing (a typo, a renamed claim) would leave its argument never run."""
    ids = _claim_ids()
    for entry in arguments.load_map():
        for pattern in entry.get("claims", []):
            assert any(fnmatch.fnmatchcase(i, pattern) for i in ids), \
                f"arguments.toml: {entry['name']} {entry['classes']}: {pattern!r} matches no claim in spec/"


def test_every_class_pattern_names_a_class_of_the_api():
    for entry in arguments.load_map():
        for pattern in entry["classes"]:
            assert any(fnmatch.fnmatchcase(c, pattern) for c in inventory.CLASSES), entry


def test_entry_for_follows_when_and_where():
    entries = [
        {"name": "inputs", "classes": ["LSTM"], "claims": ["spec/test_a.py::*"], "when": {"keras": "<3"}},
        {"name": "inputs", "classes": ["LSTM"], "out_of_scope": "renamed", "when": {"keras": ">=3"}},
        {"name": "*", "classes": ["*Cell"], "out_of_scope": "call", "where": "call"},
    ]
    assert arguments.entry_for("LSTM", "inputs", "call", {"keras": "2.15.0"}, entries) is entries[0]
    assert arguments.entry_for("LSTM", "inputs", "call", {"keras": "3.15.1"}, entries) is entries[1]
    assert arguments.entry_for("LSTMCell", "states", "call", None, entries) is entries[2]
    assert arguments.entry_for("LSTMCell", "units", "init", None, entries) is None


def _claims(**by_claim):
    return {k.replace("__", "::"): {"outcome": "passed", "arguments": v} for k, v in by_claim.items()}


def test_coverage_needs_two_values_from_the_mapped_claims(monkeypatch):
    monkeypatch.setattr(arguments, "spec_claim_ids",
                        lambda: ("spec/test_a.py::test_one", "spec/test_a.py::test_two", "spec/test_b.py::test_y"))
    entries = [{"name": "units", "classes": ["LSTM"], "claims": ["spec/test_a.py::*"]},
               {"name": "seed", "classes": ["LSTM"], "claims": ["spec/test_b.py::*"]},
               {"name": "weights", "classes": ["LSTM"], "out_of_scope": "why"}]
    documented = [("LSTM", "units", "init"), ("LSTM", "seed", "init"), ("LSTM", "weights", "init"),
                  ("LSTM", "dtype", "init")]
    claims = {
        "spec/test_a.py::test_one": {"outcome": "passed", "arguments": {"LSTM.units": ["1"]}},
        "spec/test_a.py::test_two": {"outcome": "passed", "arguments": {"LSTM.units": ["2"]}},
        # a claim outside the map passing two values does not count
        "spec/test_c.py::test_x": {"outcome": "passed", "arguments": {"LSTM.seed": ["1", "2"]}},
    }
    cov = arguments.coverage(documented, claims, None, entries)
    status = {r["argument"]: r["status"] for r in cov["rows"]}
    assert status == {"units": "exercised", "seed": "not-run", "weights": "out-of-scope", "dtype": "unmapped"}
    claims["spec/test_b.py::test_y"] = {"outcome": "passed", "arguments": {"LSTM.seed": ["1"]}}
    cov = arguments.coverage(documented, claims, None, entries)
    assert {r["argument"]: r["status"] for r in cov["rows"]}["seed"] == "unexercised"
    assert (cov["documented"], cov["mapped"], cov["in_scope"], cov["exercised"]) == (4, 3, 3, 1)
    # a skipped claim ran and exercised nothing
    claims["spec/test_b.py::test_y"]["outcome"] = "skipped"
    cov = arguments.coverage(documented, claims, None, entries)
    assert {r["argument"]: r["status"] for r in cov["rows"]}["seed"] == "unexercised"
    # a partial run (test_two not run): units is judged only if exercised anyway
    del claims["spec/test_a.py::test_two"]
    cov = arguments.coverage(documented, claims, None, entries)
    assert {r["argument"]: r["status"] for r in cov["rows"]}["units"] == "not-run"


def test_value_keys_tell_values_apart():
    import numpy as np
    key = arguments.value_key
    assert key(1) != key(2) and key("tanh") != key("relu") and key(None) != key(False)
    assert key(np.zeros((2, 3))) == key(np.zeros((2, 3)))
    assert key(np.zeros((2, 3))) != key(np.ones((2, 3)))
    assert key([np.zeros(2), None]) != key([np.ones(2), None])


KERAS2_STYLE = '''Long Short-Term Memory layer.

Args:
  units: Positive integer, dimensionality of the output space.
  stateful: Boolean (default `False`). If True, the last state for each
  sample at index i in a batch will be used as initial state for the sample
  of index i in the following batch.
  unroll: Boolean (default `False`).

Call arguments:
  inputs: A 3D tensor with shape `[batch, timesteps, feature]`.
  mask: Binary tensor of shape `[batch, timesteps]`: whether
    a given timestep should be masked (optional).
'''

PROSE_CALL = '''Bidirectional wrapper.

Args:
  layer: `keras.layers.RNN` instance. It could also be a layer that:
    1. Be a sequence-processing layer (accepts 3D+ inputs).
    - When `return_sequences` is true: zeros.
  merge_mode: One of {'sum', 'mul', 'concat', 'ave', None}.

Call arguments:
  The call arguments for this layer are the same as those of the wrapped RNN
    layer.
'''


def _doc_class(doc):
    return type("Documented", (), {"__doc__": doc})


def test_docstring_continuations_at_item_indentation_are_read_as_continuations():
    found, prose = inventory.documented_arguments(_doc_class(KERAS2_STYLE))
    assert list(found) == ["units", "stateful", "unroll", "inputs", "mask"]
    assert found["stateful"][0] == "init" and "following batch" in found["stateful"][1]
    assert found["mask"][0] == "call" and "masked" in found["mask"][1]
    assert prose == {}


def test_a_section_without_items_is_prose_and_nested_colons_stay_in_the_description():
    found, prose = inventory.documented_arguments(_doc_class(PROSE_CALL))
    assert list(found) == ["layer", "merge_mode"]
    assert "sequence-processing" in found["layer"][1]
    assert prose["call"].startswith("The call arguments for this layer are the same")


def test_signature_arguments_skip_self_and_varargs():
    def f(self, units, *args, activation="tanh", **kwargs):
        pass
    assert inventory.signature_arguments(f) == ["units", "activation"]
    assert inspect.signature(f)  # the inventory reads signatures, nothing more


@pytest.mark.parametrize("sources,where,agree", [
    (["config", "docstring", "signature"], "init", True),
    (["docstring", "signature"], "call", True),
    (["config", "signature"], "init", False),
    (["docstring"], "call", False),
])
def test_single_source_lists_what_the_sources_disagree_on(sources, where, agree):
    inv = {"LSTM": {"arguments": {"x": {"where": where, "sources": sources}}, "prose": {}}}
    assert (inventory.single_source(inv) == []) == agree


def test_the_report_adds_the_exercised_claim_and_fails_it_when_an_argument_is_unexercised(monkeypatch):
    from rnnspec.spec import report
    monkeypatch.setattr(arguments, "spec_claim_ids", lambda: ("spec/test_a.py::test_one",))
    monkeypatch.setattr(arguments, "MIN_EXAMPLES_TO_JUDGE", 0)   # judged whatever the profile
    entries = [{"name": "units", "classes": ["LSTM"], "claims": ["spec/test_a.py::*"]}]
    monkeypatch.setattr(arguments, "load_map", lambda path=None: entries)
    results = {"spec/test_contract.py::test_every_documented_argument_is_mapped":
               {"inventory": [["LSTM", "units", "init"]]}}
    claims = {"spec/test_a.py::test_one": {"outcome": "passed", "arguments": {"LSTM.units": ["4"]}}}
    cov = report.argument_coverage(results, claims, {"keras": "3.15.1"})
    assert cov["counts"] == {"unexercised": 1}
    assert claims[arguments.EXERCISED_CLAIM]["outcome"] == "failed"
    assert "LSTM.units" in claims[arguments.EXERCISED_CLAIM]["reasons"][0]
    claims = {"spec/test_a.py::test_one": {"outcome": "passed", "arguments": {"LSTM.units": ["4", "8"]}}}
    cov = report.argument_coverage(results, claims, {"keras": "3.15.1"})
    assert cov["exercised"] == 1 and claims[arguments.EXERCISED_CLAIM]["outcome"] == "passed"
    # without the contract chapter's inventory there is no coverage, and no claim
    claims = {}
    assert report.argument_coverage({}, claims, {}) == {} and claims == {}


def test_a_profile_with_few_examples_reports_coverage_without_judging_it(monkeypatch):
    from rnnspec.spec import report
    entries = [{"name": "units", "classes": ["LSTM"], "claims": ["spec/test_a.py::*"]}]
    monkeypatch.setattr(arguments, "load_map", lambda path=None: entries)
    monkeypatch.setattr(arguments, "spec_claim_ids", lambda: ("spec/test_a.py::test_one",))
    monkeypatch.setattr(arguments, "MIN_EXAMPLES_TO_JUDGE", 10**6)
    results = {"x": {"inventory": [["LSTM", "units", "init"]]}}
    claims = {"spec/test_a.py::test_one": {"outcome": "passed", "arguments": {"LSTM.units": ["4"]}}}
    cov = report.argument_coverage(results, claims, {"keras": "3.15.1"})
    assert cov["judged"] is False and cov["counts"] == {"unexercised": 1}
    assert claims[arguments.EXERCISED_CLAIM]["outcome"] == "skipped"
    assert "LSTM.units" in claims[arguments.EXERCISED_CLAIM]["reasons"][0]
