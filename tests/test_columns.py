"""The columns of the matrix (rnnspec.spec.columns): three classes defined once, a spec hash
per report, and the committed matrix at one hash with no hollow pass. No Keras needed."""

import configparser
import itertools
import json
import re
from types import SimpleNamespace

import pytest

from rnnspec.spec import columns, outcomes
from rnnspec.spec import report as plugin
from rnnspec.spec.outcomes import SPEC_ROOT
from rnnspec.tools import report as rt

TOX = SPEC_ROOT / "tox.ini"
REPORTS = SPEC_ROOT / "docs" / "conformance" / "reports"


def _expand(spec):
    """tox's brace expansion of one env-list item: ``k3-{jax,torch}`` -> k3-jax, k3-torch."""
    parts = re.split(r"(\{[^}]*\})", spec.strip())
    choices = [p[1:-1].split(",") if p.startswith("{") else [p] for p in parts]
    return ["".join(c).strip() for c in itertools.product(*choices)]


def _tox_columns():
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(TOX)
    env_list = [e for line in ini["tox"]["env_list"].split("\n") if line.strip() for e in _expand(line)]
    labels = {}
    for line in ini["tox"]["labels"].split("\n"):
        if "=" in line and not line.strip().startswith("#"):
            name, _, value = line.partition("=")
            labels[name.strip()] = [v.strip() for v in value.split(",") if v.strip()]
    return env_list, labels


def test_supported_columns_are_env_list_and_the_jax_and_torch_labels():
    env_list, labels = _tox_columns()
    expected = list(dict.fromkeys(env_list + labels["jax"] + labels["torch"]))
    assert sorted(columns.supported_columns()) == sorted(expected), (
        "spec/data/columns.toml `supported` must be tox's env_list plus its jax and torch labels")


@pytest.mark.parametrize("name, klass", [
    ("k3-tf221", "supported"), ("k30-jax", "supported"), ("gpu-torch", "device"),
    ("nightly-torch", "never-gating"), ("sweep-torch-3.4.1", "never-gating"), ("my-ci-env", "supported")])
def test_column_classes(name, klass):
    assert columns.column_class(name) == klass


def test_the_spec_hash_follows_content_not_noise(tmp_path):
    spec, ref = tmp_path / "spec", tmp_path / "reference"
    (spec / "data" / "golden").mkdir(parents=True)
    ref.mkdir()
    (spec / "test_x.py").write_text("x = 1\n")
    (spec / "data" / "d.toml").write_text("a = 1\n")
    (spec / "data" / "golden" / "m.keras").write_bytes(b"\x00\x01")
    (ref / "cells.py").write_text("def step(): pass\n")
    roots = {"spec": spec, "reference": ref}
    h = columns.hash_of(roots)
    assert re.fullmatch(r"[0-9a-f]{12}", h)
    (spec / "__pycache__").mkdir()
    (spec / "__pycache__" / "test_x.cpython-311.pyc").write_bytes(b"junk")
    (spec / "notes.txt").write_text("not shipped\n")
    assert columns.hash_of(roots) == h
    for path, text in ((spec / "data" / "d.toml", "a = 2\n"), (ref / "cells.py", "def step(): return 1\n")):
        old = path.read_text()
        path.write_text(text)
        assert columns.hash_of(roots) != h, path
        path.write_text(old)
    assert columns.hash_of(roots) == h
    (spec / "data" / "golden" / "m.keras").write_bytes(b"\x00\x02")
    assert columns.hash_of(roots) != h


def test_the_installed_spec_has_one_hash():
    assert columns.spec_hash() == columns.spec_hash() and len(columns.spec_hash()) == 12


# --------------------------------------------------------------------------- no hollow pass

@pytest.mark.parametrize("examples, outcome", [
    ({"drawn": 20, "formulas": 0, "unsupported": 20}, "unsupported"),
    ({"drawn": 20, "formulas": 0, "harness_gap": 20}, "harness-gap"),
    ({"drawn": 20, "formulas": 0, "unsupported": 5, "harness_gap": 15}, "harness-gap"),
    ({"drawn": 20, "formulas": 1, "unsupported": 19}, "passed"),
    ({"drawn": 20, "formulas": 3, "models": {"d": 2}}, "diverged"),
    ({"drawn": 4, "refused": 4}, "refused"),
    # a test that records no example (the reference's hand checks in tests/) passed on its own asserts
    ({"drawn": 0}, "passed"),
    ({}, "passed"),
])
def test_a_claim_passes_only_where_an_example_was_compared_with_the_formulas(examples, outcome):
    assert outcomes.claim_outcome(examples) == outcome


def test_the_plugin_reports_a_claim_whose_examples_were_all_unsupported_as_unsupported():
    node = "spec/test_x.py::test_hollow[cpu]"
    ex = {"drawn": 20, "formulas": 0, "models": {}, "refused": 0, "unsupported": 20, "harness_gap": 0,
          "unasserted": 0}
    rep = SimpleNamespace(when="call", outcome="passed", nodeid=node, duration=0.1, longrepr=None,
                          user_properties=[("nodeid", node), ("title", "t"), ("examples", ex),
                                           ("example_reasons", {"unsupported": ["Keras 2.15's lstm has no `seed`"]})])
    plugin.pytest_runtest_logreport(rep)
    r = plugin._RESULTS.pop(node)
    assert r["outcome"] == "unsupported" and r["reason"] == "Keras 2.15's lstm has no `seed`"


def test_harness_gap_is_listed_and_does_not_fail_the_gate():
    assert "harness-gap" in outcomes.OUTCOMES and "harness-gap" not in outcomes.GATE_FAILING
    assert outcomes.hollow("passed", {"drawn": 3, "formulas": 0, "unsupported": 3})
    assert not outcomes.hollow("passed", {"drawn": 3, "formulas": 1, "unsupported": 2})
    assert not outcomes.hollow("unsupported", {"drawn": 3, "unsupported": 3})


# --------------------------------------------------------------------------- the committed matrix

def _committed():
    return [rt.load_report(p) for p in sorted(REPORTS.glob("*.json"))]


def test_the_committed_matrix_holds_every_supported_column():
    names = {r["environment"]["env_name"] for r in _committed()}
    assert set(columns.supported_columns()) <= names, sorted(set(columns.supported_columns()) - names)


def test_the_committed_supported_columns_are_at_this_spec_hash():
    """The matrix is one commit: every supported column was rerun at the spec it is committed
    with (rerun the matrix after changing spec/ or reference/: README "Columns")."""
    stale = rt.stale_columns([r for r in _committed()
                              if columns.column_class(r["environment"]["env_name"]) == columns.SUPPORTED])
    assert not stale, f"stale columns (spec hash is not {columns.spec_hash()}): {stale}"


def test_no_committed_column_has_a_hollow_pass():
    hollow = {r["environment"]["env_name"]: rt.hollow_passes(r) for r in _committed()}
    assert not {k: v for k, v in hollow.items() if v}


def test_merge_marks_a_stale_column_and_lists_harness_gaps(tmp_path):
    data = json.loads((REPORTS / "k3-tf221.json").read_text())
    data["environment"]["spec_hash"] = "000000000000"
    claim = next(iter(data["claims"]))
    data["claims"][claim].update(outcome="harness-gap", reasons=["masks drawn inside the loop"])
    text = rt.merge([rt.normalise(data, "k3-tf221.json")], {}, reference_hash="abcdefabcdef")
    assert "**k3-tf221** is STALE: spec hash `000000000000`, not `abcdefabcdef`" in text
    assert "masks drawn inside the loop" in text.split("## Harness gaps")[1]
