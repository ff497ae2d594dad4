"""tools/report.py: merging and diffing conformance reports (no Keras needed).

The reports are small hand-written dicts in the format spec/report.py writes.
"""

import json

import pytest

from tools import report as rt

DIVERGENCES = {
    "zero-mask": {
        "id": "zero-mask", "claims": ["spec/test_eq.py::*"], "when": {"backend": "tensorflow"},
        "predicate": "is_zero_mask", "reason": "Zeroes masked steps\nin input order.",
    },
    "gru-bias": {
        "id": "gru-bias", "claims": ["spec/test_gru.py::test_bias"], "when": {"keras": "<3"},
        "reason": "Keras 2 GRU bias layout.",
    },
}


def _env(name, tf="2.21.0", keras="3.15.1", backend="tensorflow", package="keras"):
    return {"env_name": name, "python": "3.11.7", "tensorflow": tf, "keras": keras,
            "keras_package": package, "backend": backend, "devices": ["cpu"],
            "tf32": "n/a (no GPU)", "platform": "Linux", "commit": "abc1234"}


def _res(nodeid, status="passed", examples=40, reason="", known=None, title=None, observed=None):
    r = {"claim": nodeid.split("[")[0], "title": title or f"Title of {nodeid.split('::')[-1]}",
         "status": status, "reason": reason, "examples": examples,
         "known_divergence_examples": known or {}, "duration_s": 0.1}
    if observed is not None:
        r["observed"] = observed
    return nodeid, r


def _report(env, *results, profile="ci", wall=12.5, source=None):
    data = {"environment": env, "profile": profile, "wall_time_s": wall,
            "results": dict(results), "unmatched_divergence_entries": []}
    return rt.normalise(data, source=source or f"reports/{env['env_name']}.json")


@pytest.fixture
def k3():
    return _report(
        _env("k3-tf221"),
        _res("spec/test_eq.py::test_layer", examples=30, known={"zero-mask": 4}),
        _res("spec/test_eq.py::test_bidi", status="failed", examples=7,
             reason="AssertionError: output[0, 1]=0, but should be -0.08"),
        _res("spec/test_gru.py::test_bias[simple]", examples=10),
        _res("spec/test_gru.py::test_bias[lstm]", examples=12),
        _res("spec/test_gpu.py::test_tf32", status="skipped", examples=0,
             reason="Skipped: needs a GPU"),
        _res("tests/test_reference_hand.py::test_by_hand", examples=0,
             observed={"exception": ["ValueError"]}),
    )


@pytest.fixture
def k2():
    return _report(
        _env("k2-tf215", tf="2.15.1", keras="2.15.0"),
        _res("spec/test_eq.py::test_layer", examples=30),
        _res("spec/test_eq.py::test_bidi", examples=31),
        _res("spec/test_gru.py::test_bias[simple]", status="skipped", examples=0,
             reason="known divergence gru-bias: Keras 2 GRU bias layout."),
        _res("spec/test_gru.py::test_bias[lstm]", status="diverged", examples=0,
             reason="known divergence gru-bias: Keras 2 GRU bias layout."),
        _res("spec/test_old.py::test_gone", examples=5),
    )


def _row(text, claim):
    lines = [ln for ln in text.splitlines() if f"`{claim}`" in ln and ln.startswith("| ")]
    assert len(lines) == 1, lines
    return [c.strip() for c in lines[0].strip("|").split(" | ")]


# --------------------------------------------------------------------------- claims and cells

def test_claims_aggregate_parametrizations(k3, k2):
    cs = rt.claims_of(k3)
    bias = cs["spec/test_gru.py::test_bias"]
    assert bias["nodes"] == 2 and bias["examples"] == 22 and bias["status"] == "passed"
    assert rt.claims_of(k2)["spec/test_gru.py::test_bias"]["status"] == "diverged"
    assert cs["spec/test_eq.py::test_bidi"]["status"] == "failed"
    assert cs["spec/test_eq.py::test_layer"]["known"] == {"zero-mask": 4}


@pytest.mark.parametrize("statuses, expected", [
    (["passed", "failed"], "failed"),
    (["diverged", "passed"], "diverged"),
    (["stale-divergence", "diverged"], "stale-divergence"),
    (["skipped", "passed"], "passed"),
    (["skipped", "skipped"], "skipped"),
])
def test_worst_status_wins(statuses, expected):
    rep = _report(_env("e"), *[_res(f"spec/t.py::test_x[{i}]", status=s)
                               for i, s in enumerate(statuses)])
    assert rt.claims_of(rep)["spec/t.py::test_x"]["status"] == expected


def test_cells(k3):
    cs = rt.claims_of(k3)
    assert rt.cell(cs["spec/test_eq.py::test_layer"]) == "pass (30), 4 known"
    assert rt.cell(cs["spec/test_gru.py::test_bias"]) == "pass (22)"
    assert rt.cell(cs["spec/test_eq.py::test_bidi"]) == "**FAIL**"
    assert rt.cell(cs["spec/test_gpu.py::test_tf32"]) == "skip: needs a GPU"
    assert rt.cell(cs["tests/test_reference_hand.py::test_by_hand"]) == "pass"
    assert rt.cell(None) == "—"


# --------------------------------------------------------------------------- merge

def test_merge_matrix(k3, k2):
    md = rt.merge([k3, k2], DIVERGENCES)
    # columns: Keras 2 before Keras 3, headed by env name and versions
    header = next(ln for ln in md.splitlines() if ln.startswith("| Claim |"))
    assert header.index("k2-tf215") < header.index("k3-tf221")
    assert "TF 2.15.1 · Keras 2.15.0" in header and "tensorflow · cpu" in header
    # rows: title and claim id; a cell per environment
    assert _row(md, "spec/test_eq.py::test_layer") == [
        "Title of test_layer<br>`spec/test_eq.py::test_layer`", "pass (30)", "pass (30), 4 known"]
    assert _row(md, "spec/test_eq.py::test_bidi")[1:] == ["pass (31)", "**FAIL**"]
    assert _row(md, "spec/test_gru.py::test_bias")[1:] == ["diverged 1/2", "pass (22)"]
    assert _row(md, "spec/test_gpu.py::test_tf32")[1:] == ["—", "skip: needs a GPU"]
    assert _row(md, "spec/test_old.py::test_gone")[1:] == ["pass (5)", "—"]
    # spec claims before the suite's own tests
    assert md.index("spec/test_old.py::test_gone") < md.index("tests/test_reference_hand.py")


def test_merge_failures_environment_and_divergences(k3, k2):
    md = rt.merge([k3, k2], DIVERGENCES)
    assert ("- **k3-tf221** `spec/test_eq.py::test_bidi`: "
            "`AssertionError: output[0, 1]=0, but should be -0.08`") in md
    env_section = md.split("## Environments")[1].split("##")[0]
    assert "| k3-tf221 | 3.11.7 | 2.21.0 | 3.15.1 | keras | tensorflow | cpu | n/a (no GPU) | abc1234 | ci | 12.5 s |" in env_section
    div = md.split("## Known divergences")[1]
    # counts per env; n/a where the entry's `when` excludes the env
    assert "| `zero-mask` | 0 | 4 ex |" in div
    assert "| `gru-bias` | 1 claim(s) diverged | n/a |" in div
    assert "Zeroes masked steps in input order." in div
    assert "- k3-tf221: `spec/test_eq.py::test_layer` 4" in div
    assert "## Observed behaviour" in md and "exception: k3-tf221: ValueError" in md


def test_merge_escapes_pipes_and_dedupes_env_names(k3):
    a = _report(_env("local"), _res("spec/t.py::test_a", title="max |diff| <= tol"),
                source="reports/a.json")
    b = _report(_env("local"), _res("spec/t.py::test_a"), source="reports/b.json")
    md = rt.merge([a, b], {})
    assert r"max \|diff\| <= tol" in md
    assert "local (a)" in md and "local (b)" in md


def test_merge_claim_filter(k3):
    md = rt.merge([k3], DIVERGENCES, claim_prefixes=["spec/"])
    assert "tests/test_reference_hand.py" not in md.split("## Matrix")[1].split("## Failures")[0]


# --------------------------------------------------------------------------- diff

def test_diff_flags_regressions(k2, k3):
    text, regressions = rt.diff(k2, k3)
    assert regressions == ["spec/test_eq.py::test_bidi"]
    assert "| `spec/test_eq.py::test_bidi` | pass (31) | **FAIL** | **regression** |" in text
    # diverged -> passed is a change, not a regression
    line = _row(text, "spec/test_gru.py::test_bias")
    assert line[1:3] == ["diverged 1/2", "pass (22)"] and "regression" not in line[-1]
    assert "- `spec/test_gpu.py::test_tf32`: skip: needs a GPU" in text.split("## Added")[1]
    assert "- `spec/test_old.py::test_gone`: pass (5)" in text.split("## Removed")[1]
    assert "| keras | 2.15.0 | 3.15.1 |" in text and "| python |" not in text
    assert "**1 regression(s)**" in text


def test_diff_passed_to_diverged_is_a_regression():
    a = _report(_env("a"), _res("spec/t.py::test_a"))
    b = _report(_env("a"), _res("spec/t.py::test_a", status="diverged",
                                reason="known divergence x: y"))
    assert rt.diff(a, b)[1] == ["spec/t.py::test_a"]
    assert rt.diff(b, a)[1] == []


def test_diff_identical(k3):
    text, regressions = rt.diff(k3, k3)
    assert regressions == [] and "Identical." in text and "**0 regression(s)**." in text


# --------------------------------------------------------------------------- CLI

def _dump(tmp_path, name, rep):
    data = {k: v for k, v in rep.items() if k != "_source"}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_cli_merge_expands_globs(tmp_path, k2, k3, capsys):
    _dump(tmp_path, "k2-tf215.json", k2)
    _dump(tmp_path, "k3-tf221.json", k3)
    out = tmp_path / "docs" / "matrix.md"
    assert rt.main(["merge", str(tmp_path / "*.json"), "-o", str(out)]) == 0
    md = out.read_text()
    assert "k2-tf215" in md and "k3-tf221" in md
    assert rt.main(["merge", str(tmp_path)]) == 0  # a directory works too
    assert "k2-tf215" in capsys.readouterr().out
    assert rt.main(["merge", str(tmp_path / "nothing-*.json")]) == 2
    # --exclude drops matched files by name, not files named explicitly
    assert rt.main(["merge", str(tmp_path / "*.json"), "--exclude", "k2-*"]) == 0
    assert "k2-tf215" not in capsys.readouterr().out
    assert rt.main(["merge", str(tmp_path / "k2-tf215.json"), "--exclude", "k2-*"]) == 0
    assert "k2-tf215" in capsys.readouterr().out


def test_cli_diff_exit_status(tmp_path, k2, k3):
    old, new = _dump(tmp_path, "old.json", k2), _dump(tmp_path, "new.json", k3)
    assert rt.main(["diff", str(old), str(new), "-o", str(tmp_path / "d.md")]) == 1
    assert rt.main(["diff", str(old), str(old), "-o", str(tmp_path / "d.md")]) == 0
    (tmp_path / "bad.json").write_text("{}")
    assert rt.main(["diff", str(tmp_path / "bad.json"), str(old)]) == 2


def test_reads_a_report_spec_report_would_write(tmp_path):
    """Env name falls back to the file stem; missing optional keys are tolerated."""
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"results": {"spec/t.py::test_a": {"status": "passed"}}}))
    rep = rt.load_report(path)
    assert rep["environment"]["env_name"] == "partial"
    assert rt.cell(rt.claims_of(rep)["spec/t.py::test_a"]) == "pass"
    assert "partial" in rt.merge([rep], {})
