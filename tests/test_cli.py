"""The ``rnnspec`` command (rnnspec/cli.py): exit codes, the gate, repro, the upgrade note.

Runs in-process with click's CliRunner, on the committed conformance reports
(docs/conformance/reports/) and copies of them with a failure or a divergence
injected. No Keras is needed, except where a test says so.
"""

import json
import shutil

import pytest
from click.testing import CliRunner

from rnnspec import cli
from rnnspec.spec.columns import spec_hash
from rnnspec.spec.outcomes import SPEC_ROOT

REPORTS = SPEC_ROOT / "docs" / "conformance" / "reports"
K3 = REPORTS / "k3-tf221.json"
K2 = REPORTS / "k2-tf215.json"
CLAIM = "spec/test_structure.py::test_count_params_is_the_formula"


def invoke(*args, **kwargs):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False, **kwargs)


def _copy(tmp_path, src, name, edit=None):
    """A copy of a committed report at this rnnspec's spec hash (the gate tests test the gate,
    not the matrix's freshness: tests/test_columns.py does), edited by ``edit``."""
    data = json.loads(src.read_text())
    data["environment"]["spec_hash"] = spec_hash()
    if edit:
        edit(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _inject_failure(data):
    c = data["claims"][CLAIM]
    c["outcome"] = "failed"
    c["reasons"] = ["AssertionError: count_params()=17920, but should be 17921"]
    c["reproducers"] = [{"node": CLAIM, "reason": c["reasons"][0],
                         "code": "import numpy as np\nimport keras\nlayer = keras.layers.SimpleRNN(128)\n"}]


def _inject_divergence(data):
    data["claims"][CLAIM]["examples"]["models"] = {"torch-unroll-backwards-mask-crash (raises)": 3}


# --------------------------------------------------------------------------- bad input: exit 2

def test_missing_report_is_exit_2(tmp_path):
    r = invoke("gate", "--baseline", tmp_path / "nope.json", K3)
    assert r.exit_code == 2
    assert "no such report" in r.output and "nope.json" in r.output


def test_corrupt_report_is_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": 2, "claims": {')
    r = invoke("report", "diff", bad, K3)
    assert r.exit_code == 2
    assert "bad.json" in r.output and "not a JSON conformance report" in r.output


def test_report_of_another_rnnspec_version_is_exit_2(tmp_path):
    old = _copy(tmp_path, K3, "old.json", lambda d: d.update(schema=1))
    r = invoke("gate", "--baseline", old, K3)
    assert r.exit_code == 2
    assert "schema 1" in r.output and "this rnnspec reads schema 2" in r.output


def test_unknown_profile_is_exit_2(monkeypatch):
    monkeypatch.setattr(cli, "keras_installed", lambda: "keras")
    r = invoke("run", "--profile", "sloppy")
    assert r.exit_code == 2 and "sloppy" in r.output
    monkeypatch.setenv("RNNSPEC_PROFILE", "sloppy")
    r = invoke("run")
    assert r.exit_code == 2 and "unknown profile 'sloppy'" in r.output


def test_no_keras_is_exit_2_and_says_what_to_install(monkeypatch):
    monkeypatch.setattr(cli, "keras_installed", lambda: None)
    r = invoke("run", "--profile", "ci")
    assert r.exit_code == 2
    assert "no Keras is installed" in r.output and "pip install 'rnnspec[tf]'" in r.output


def test_unknown_repro_id_is_exit_2():
    r = invoke("repro", "no-such-divergence")
    assert r.exit_code == 2 and "Known ids:" in r.output


# --------------------------------------------------------------------------- the gate

def test_gate_passes_on_the_baseline(tmp_path):
    r = invoke("gate", "--baseline", K3, _copy(tmp_path, K3, "k3-tf221.json"))
    assert r.exit_code == 0, r.output
    assert ("rnnspec gate PASSED: 0 new failure(s), 0 new divergence(s), 0 stale column(s), "
            "0 hollow pass(es), 0 fixed.") in r.output


def test_gate_fails_on_a_stale_column(tmp_path):
    """A column run by another spec (its spec hash is not this rnnspec's) fails, whatever the baseline."""
    cur = _copy(tmp_path, K3, "k3-tf221.json", lambda d: d["environment"].update(spec_hash="0123456789ab"))
    r = invoke("gate", "--baseline", K3, cur)
    assert r.exit_code == 1, r.output
    assert "STALE          spec hash 0123456789ab" in r.output and "1 stale column(s)" in r.output
    nightly = _copy(tmp_path, K3, "nightly-torch.json", lambda d: d["environment"].update(
        spec_hash="0123456789ab", env_name="nightly-torch"))
    r = invoke("gate", "--baseline", K3, nightly)
    assert r.exit_code == 0 and "never gating" in r.output, r.output


def _hollow(data):
    c = data["claims"][CLAIM]
    c["outcome"] = "passed"
    n = c["examples"]["drawn"]
    c["examples"].update(formulas=0, refused=0, models={}, unsupported=n)


def test_gate_fails_on_a_hollow_pass(tmp_path):
    """A claim that says passed with none of its drawn examples asserted fails, even if the
    baseline has it too."""
    base = _copy(tmp_path, K3, "base.json", _hollow)
    cur = _copy(tmp_path, K3, "k3-tf221.json", _hollow)
    r = invoke("gate", "--baseline", base, cur)
    assert r.exit_code == 1, r.output
    assert f"HOLLOW PASS    {CLAIM}" in r.output and "1 hollow pass(es)" in r.output


def test_gate_fails_on_a_new_failure_and_says_how_to_reproduce(tmp_path):
    cur = _copy(tmp_path, K3, "k3-tf221.json", _inject_failure)
    r = invoke("gate", "--baseline", K3, cur)
    assert r.exit_code == 1, r.output
    assert f"NEW FAILED" in r.output and CLAIM in r.output
    assert "17920" in r.output
    assert f"rnnspec repro '{CLAIM}' --report {cur}" in r.output
    assert ("rnnspec gate FAILED: 1 new failure(s), 0 new divergence(s), 0 stale column(s), "
            "0 hollow pass(es), 0 fixed.") in r.output


def test_gate_fails_on_a_new_divergence(tmp_path):
    cur = _copy(tmp_path, K3, "k3-tf221.json", _inject_divergence)
    r = invoke("gate", "--baseline", K3, cur)
    assert r.exit_code == 1, r.output
    assert "NEW DIVERGENCE torch-unroll-backwards-mask-crash" in r.output


def test_gate_lists_fixed_ones_and_passes(tmp_path):
    base = _copy(tmp_path, K3, "base.json", _inject_failure)
    r = invoke("gate", "--baseline", base, _copy(tmp_path, K3, "k3-tf221.json"))
    assert r.exit_code == 0, r.output
    assert f"FIXED          {CLAIM}: failed → passed" in r.output
    assert "1 fixed" in r.output


def test_gate_pairs_directories_by_environment(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "cur").mkdir()
    for src in (K2, K3):
        shutil.copy(src, tmp_path / "base" / src.name)
    _copy(tmp_path / "cur", K3, "k3-tf221.json", _inject_failure)
    _copy(tmp_path / "cur", K2, "k2-tf215.json")
    r = invoke("gate", "--baseline", tmp_path / "base", tmp_path / "cur")
    assert r.exit_code == 1
    assert "[ok  ] k2-tf215" in r.output and "[FAIL] k3-tf221" in r.output


def test_gate_annotates_on_github(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    cur = _copy(tmp_path, K3, "k3-tf221.json", _inject_failure)
    r = invoke("gate", "--baseline", K3, cur)
    assert "::error title=rnnspec k3-tf221: new failed::" in r.output


# --------------------------------------------------------------------------- repro

def test_repro_of_a_listed_divergence_is_a_runnable_snippet():
    r = invoke("repro", "unroll-backwards-zero-output-mask")
    assert r.exit_code == 0
    code = r.output
    assert "import keras" in code and "keras.layers.SimpleRNN(1, use_bias=False" in code
    assert "go_backwards=True" in code and "mask = np.array([[True, False]])" in code
    compile(code, "<repro>", "exec")   # valid Python


@pytest.mark.parametrize("ident", ["implementation-1-input-dropout-crash", "stateful-batch-one-broadcast",
                                   "zero-timesteps-first-step-index-tf", "keras2-hard-sigmoid-redefined",
                                   "config-losses: implementation"])
def test_repro_of_every_kind_of_finding(ident):
    r = invoke("repro", ident)
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"# {ident} (")
    compile(r.output, "<repro>", "exec")


def test_repro_of_a_failing_claim_of_a_report(tmp_path):
    cur = _copy(tmp_path, K3, "k3-tf221.json", _inject_failure)
    r = invoke("repro", "test_count_params_is_the_formula", "--report", cur)
    assert r.exit_code == 0, r.output
    assert "failed in k3-tf221" in r.output and "layer = keras.layers.SimpleRNN(128)" in r.output
    r = invoke("repro", "test_count_params_is_the_formula", "--report", K3)
    assert r.exit_code == 2 and "is not failing" in r.output


# --------------------------------------------------------------------------- the upgrade note

def test_diff_is_an_upgrade_note():
    r = invoke("report", "diff", K2, K3)
    assert r.exit_code == 0, r.output
    note = r.output
    assert note.startswith("# Upgrade note: k2-tf215 → k3-tf221")
    # a definition that changed, first, with what it means for a model
    conv = note.split("## Conventions that differ")[1].split("##")[0]
    first = [line for line in conv.splitlines() if line.startswith("- ")][0]
    assert "`hard_sigmoid`**: `keras2` → `keras3`" in first and "different outputs" in first
    assert "`return_state_container`**: `list` → `tuple`" in conv
    # divergences appearing and disappearing
    div = note.split("## Known divergences and findings")[1].split("## Claims")[0]
    assert "**appears** (divergence) `implementation-1-input-dropout-crash`" in div
    assert "**disappears** (divergence) `keras2-unroll-zero-output-last-output-crash`" in div
    # claim status changes, and saved files from the compatibility matrix
    assert "`spec/test_dropout.py::test_training_applies_dropout`: pass" in note
    files = note.split("## Files saved under OLD, loaded under NEW")[1]
    assert "`weights:h5`: hard_sigmoid: loads but computes other outputs" in files


def test_diff_without_a_compat_cell(tmp_path):
    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps({"cells": {}}))
    r = invoke("report", "diff", K2, K3, "--compat", cells)
    assert r.exit_code == 0
    assert "No compatibility matrix here" in r.output or "has no cell" in r.output


def test_merge_through_the_command(tmp_path):
    out = tmp_path / "m.md"
    r = invoke("report", "merge", K2, K3, "-o", out)
    assert r.exit_code == 0
    assert "k2-tf215" in out.read_text() and "k3-tf221" in out.read_text()


def test_the_report_keeps_the_reproducer_a_failure_printed():
    from types import SimpleNamespace

    from rnnspec.spec import report as plugin
    text = "\n".join([
        "    def test_layer():",
        ">       assert_matches_reference(case)",
        "E       AssertionError: output[0, 0, 1]=0, but should be 0.3810186",
        "E         config: simple_rnn(units=1, features=1)",
        "E       ",
        "E       Reproducer (numpy + keras):",
        "E           import numpy as np",
        "E           import keras",
        "E           layer = keras.layers.SimpleRNN(1, use_bias=False)",
        "E",
        "E           out = layer(x)",
        "E       Falsifying example: test_layer(data=...)",
    ])
    code = plugin._reproducer(SimpleNamespace(longreprtext=text))
    assert code == ("import numpy as np\nimport keras\nlayer = keras.layers.SimpleRNN(1, use_bias=False)\n"
                    "\nout = layer(x)\n")
    assert plugin._reproducer(SimpleNamespace(longreprtext="E   ValueError: no snippet")) == ""
    claims = plugin.aggregate({"spec/test_x.py::test_layer[cpu]": {
        "title": "t", "outcome": "failed", "reason": "AssertionError: output", "observed": {}, "pool": None,
        "duration_s": 0.1, "reproducer": code,
        "examples": {"drawn": 3, "formulas": 2, "models": {}, "refused": 0, "unsupported": 0, "unasserted": 0}}})
    c = claims["spec/test_x.py::test_layer"]
    assert c["examples"]["formulas"] == 2 and c["reproducers"][0]["code"] == code


def test_gate_notes_reports_of_two_rnnspec_versions(tmp_path):
    base = _copy(tmp_path, K3, "base.json", lambda d: d["environment"].update(rnnspec="0.1.0"))
    cur = _copy(tmp_path, K3, "cur.json", lambda d: d["environment"].update(rnnspec="0.2.0"))
    r = invoke("gate", "--baseline", base, cur)
    assert r.exit_code == 0 and "written by rnnspec 0.1.0 and 0.2.0" in r.output


def test_gate_with_an_empty_baseline_folder_gates_every_environment_as_new(tmp_path):
    (tmp_path / "baseline").mkdir()
    r = invoke("gate", "--baseline", tmp_path / "baseline", _copy(tmp_path, K3, "k3-tf221.json"))
    assert r.exit_code == 0, r.output
    assert "holds no report yet" in r.output and "(no baseline for this environment: a new one)" in r.output
    cur = _copy(tmp_path, K3, "k3-tf221.json", _inject_failure)
    assert invoke("gate", "--baseline", tmp_path / "baseline", cur).exit_code == 1
    assert invoke("gate", "--baseline", tmp_path / "missing", K3).exit_code == 2
