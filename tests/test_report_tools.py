"""tools/report.py: merging and diffing conformance reports (no Keras needed).

The reports are small hand-written dicts in the format spec/report.py writes
(schema 2): per-node results go through ``rnnspec.spec.report.aggregate``, exactly as
the plugin does, so the tool is tested on what the plugin really writes.
"""

import json

import pytest

from rnnspec.spec import report as plugin
from rnnspec.tools import report as rt

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


def _res(nodeid, outcome="passed", formulas=40, reason="", models=None, title=None, observed=None,
         pool=None, unasserted=0):
    ex = {"drawn": formulas + sum((models or {}).values()) + unasserted, "formulas": formulas,
          "models": models or {}, "refused": 0, "unsupported": 0, "unasserted": unasserted}
    if outcome in ("skipped", "unsupported", "harness-gap"):
        ex = {}
    return nodeid, {"title": title or f"Title of {nodeid.split('::')[-1].split('[')[0]}", "outcome": outcome,
                    "reason": reason, "examples": ex, "observed": observed or {}, "pool": pool,
                    "duration_s": 0.1}


def _report(env, *results, profile="ci", wall=12.5, source=None):
    data = {"schema": 2, "environment": env, "profile": profile, "wall_time_s": wall,
            "claims": plugin.aggregate(dict(results)), "unmatched_divergence_entries": []}
    return rt.normalise(data, source=source or f"reports/{env['env_name']}.json")


@pytest.fixture
def k3():
    return _report(
        _env("k3-tf221"),
        _res("spec/test_eq.py::test_layer", outcome="diverged", formulas=30, models={"zero-mask": 4}),
        _res("spec/test_eq.py::test_bidi", outcome="failed", formulas=7,
             reason="AssertionError: output[0, 1]=0, but should be -0.08"),
        _res("spec/test_gru.py::test_bias[simple]", formulas=10),
        _res("spec/test_gru.py::test_bias[lstm]", formulas=12),
        _res("spec/test_gpu.py::test_tf32", outcome="skipped", reason="needs a GPU"),
        _res("tests/test_reference_hand.py::test_by_hand", formulas=1,
             observed={"exception": ["ValueError"]}),
    )


@pytest.fixture
def k2():
    return _report(
        _env("k2-tf215", tf="2.15.1", keras="2.15.0"),
        _res("spec/test_eq.py::test_layer", formulas=30),
        _res("spec/test_eq.py::test_bidi", formulas=31),
        _res("spec/test_gru.py::test_bias[simple]", formulas=5),
        _res("spec/test_gru.py::test_bias[lstm]", outcome="diverged", formulas=0, models={"gru-bias (raises)": 3}),
        _res("spec/test_old.py::test_gone", formulas=5),
    )


def _row(text, claim):
    lines = [ln for ln in text.splitlines() if f"`{claim}`" in ln and ln.startswith("| ")]
    assert len(lines) == 1, lines
    return [c.strip() for c in lines[0].strip("|").split(" | ")]


# --------------------------------------------------------------------------- claims and cells

def test_claims_aggregate_parametrizations(k3, k2):
    cs = rt.claims_of(k3)
    bias = cs["spec/test_gru.py::test_bias"]
    assert bias["nodes"] == 2 and bias["examples"]["formulas"] == 22 and bias["outcome"] == "passed"
    assert rt.claims_of(k2)["spec/test_gru.py::test_bias"]["outcome"] == "diverged"
    assert cs["spec/test_eq.py::test_bidi"]["outcome"] == "failed"
    assert cs["spec/test_eq.py::test_layer"]["examples"]["models"] == {"zero-mask": 4}


@pytest.mark.parametrize("outcomes, expected", [
    (["passed", "failed"], "failed"),
    (["diverged", "passed"], "diverged"),
    (["fixed", "diverged"], "fixed"),
    (["harness-error", "crashed"], "harness-error"),
    (["skipped", "passed"], "passed"),
    (["skipped", "skipped"], "skipped"),
])
def test_worst_outcome_wins(outcomes, expected):
    rep = _report(_env("e"), *[_res(f"spec/t.py::test_x[{i}]", outcome=o)
                               for i, o in enumerate(outcomes)])
    assert rt.claims_of(rep)["spec/t.py::test_x"]["outcome"] == expected


def test_pool_entries_fold_into_one_stable_claim_key():
    """Pool-entry parameters leave the claim key; the device stays; entries run are counted."""
    rep = _report(_env("e"), *[_res(f"spec/t.py::test_p[cpu-pool{i:02d}]", pool=["single", i]) for i in range(3)],
                  _res("spec/t.py::test_p[gpu-tf32off]", outcome="skipped", reason="no GPU"))
    cs = rt.claims_of(rep)
    assert set(cs) == {"spec/t.py::test_p"}
    claim = cs["spec/t.py::test_p"]
    assert claim["outcome"] == "passed" and claim["pool"]["run"] == [0, 1, 2]
    assert claim["variants"]["cpu"]["outcome"] == "passed"
    assert claim["variants"]["gpu-tf32off"]["outcome"] == "skipped"
    assert plugin.claim_key("spec/t.py::test_p[pool07]") == "spec/t.py::test_p"
    assert plugin.variant_of("spec/t.py::test_p[gpu-tf32off-pool07]") == "gpu-tf32off"


def test_cells(k3):
    cs = rt.claims_of(k3)
    assert rt.cell(cs["spec/test_eq.py::test_layer"]) == "diverged · 30 f + 4 m · 34/34 asserted"
    assert rt.cell(cs["spec/test_gru.py::test_bias"]) == "pass · 22 f · 22/22 asserted"
    assert rt.cell(cs["spec/test_eq.py::test_bidi"]) == "**FAILED** · 7 f · 7/7 asserted"
    assert rt.cell(cs["spec/test_gpu.py::test_tf32"]) == "skip: needs a GPU"
    assert rt.cell(None) == "—"
    blind = _report(_env("e"), _res("spec/t.py::test_b", formulas=3, unasserted=2, outcome="harness-error"))
    assert rt.cell(rt.claims_of(blind)["spec/t.py::test_b"]) == "**HARNESS ERROR** · 3 f · 3/5 asserted · **2 unasserted**"


def test_a_hollow_pass_and_a_harness_gap_show_in_their_cells():
    r = _report(_env("e"), ("spec/t.py::test_h", {"title": "t", "outcome": "passed", "reason": "", "observed": {},
                                                   "pool": None, "duration_s": 0.1,
                                                   "examples": {"drawn": 4, "formulas": 0, "models": {}, "refused": 0,
                                                                "unsupported": 4, "unasserted": 0}}),
                _res("spec/t.py::test_g", outcome="harness-gap", reason="masks drawn inside the loop"))
    cs = rt.claims_of(r)
    assert rt.cell(cs["spec/t.py::test_h"]) == "pass · 0/4 asserted · **HOLLOW PASS**"
    assert rt.cell(cs["spec/t.py::test_g"]) == "**harness gap**: masks drawn inside the loop"
    assert rt.hollow_passes(r) == ["spec/t.py::test_h"]


# --------------------------------------------------------------------------- merge

def test_merge_matrix(k3, k2):
    md = rt.merge([k3, k2], DIVERGENCES)
    # columns: Keras 2 before Keras 3, headed by env name and versions
    header = next(ln for ln in md.splitlines() if ln.startswith("| Claim |"))
    assert header.index("k2-tf215") < header.index("k3-tf221")
    assert "TF 2.15.1 · Keras 2.15.0" in header and "tensorflow · cpu" in header
    # rows: title and claim id; a cell per environment
    assert _row(md, "spec/test_eq.py::test_layer") == [
        "Title of test_layer<br>`spec/test_eq.py::test_layer`", "pass · 30 f · 30/30 asserted",
        "diverged · 30 f + 4 m · 34/34 asserted"]
    assert _row(md, "spec/test_eq.py::test_bidi")[1:] == ["pass · 31 f · 31/31 asserted", "**FAILED** · 7 f · 7/7 asserted"]
    assert _row(md, "spec/test_gru.py::test_bias")[1:] == ["diverged · 5 f + 3 m · 8/8 asserted",
                                                          "pass · 22 f · 22/22 asserted"]
    assert _row(md, "spec/test_gpu.py::test_tf32")[1:] == ["—", "skip: needs a GPU"]
    assert _row(md, "spec/test_old.py::test_gone")[1:] == ["pass · 5 f · 5/5 asserted", "—"]
    # spec claims before the suite's own tests
    assert md.index("spec/test_old.py::test_gone") < md.index("tests/test_reference_hand.py")


def test_merge_failures_environment_and_divergences(k3, k2):
    md = rt.merge([k3, k2], DIVERGENCES)
    assert ("- **k3-tf221** `spec/test_eq.py::test_bidi` (failed): "
            "`AssertionError: output[0, 1]=0, but should be -0.08`") in md
    env_section = md.split("## Environments")[1].split("##")[0]
    assert ("| k3-tf221 | supported | none (unknown) | 3.11.7 | 2.21.0 | 3.15.1 | keras | tensorflow | cpu "
            "| n/a (no GPU) | abc1234 | ci | 12.5 s |") in env_section
    div = md.split("## Known divergences")[1]
    # counts per env; n/a where the entry's `when` excludes the env
    assert "| `zero-mask` | 0 | 4 ex |" in div
    assert "| `gru-bias` | 3 ex | n/a |" in div
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
    assert "tests/test_reference_hand.py" not in md.split("## Matrix")[1].split("## Gate failures")[0]


# --------------------------------------------------------------------------- diff

def test_diff_flags_regressions(k2, k3):
    text, regressions = rt.diff(k2, k3)
    # a new failure, and a claim that passed and now diverges
    assert regressions == ["spec/test_eq.py::test_bidi", "spec/test_eq.py::test_layer"]
    assert ("| `spec/test_eq.py::test_bidi` | pass · 31 f · 31/31 asserted | **FAILED** · 7 f · 7/7 asserted "
            "| **regression** |") in text
    # diverged -> passed is a change, not a regression
    line = _row(text, "spec/test_gru.py::test_bias")
    assert line[1:3] == ["diverged · 5 f + 3 m · 8/8 asserted", "pass · 22 f · 22/22 asserted"] and "regression" not in line[-1]
    assert "- `spec/test_gpu.py::test_tf32`: skip: needs a GPU" in text.split("## Added")[1]
    assert "- `spec/test_old.py::test_gone`: pass · 5 f" in text.split("## Removed")[1]
    assert "| keras | 2.15.0 | 3.15.1 |" in text and "| python |" not in text
    assert "**2 regression(s)**" in text


def test_diff_passed_to_diverged_is_a_regression():
    a = _report(_env("a"), _res("spec/t.py::test_a"))
    b = _report(_env("a"), _res("spec/t.py::test_a", outcome="diverged", models={"x": 2}))
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


def test_refuses_a_report_of_another_schema(tmp_path, k3, capsys):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"environment": {}, "results": {"spec/t.py::test_a": {"status": "passed"}}}))
    assert rt.main(["merge", str(old)]) == 2
    assert "no schema version" in capsys.readouterr().err
    future = _dump(tmp_path, "future.json", k3)
    future.write_text(future.read_text().replace('"schema": 2', '"schema": 99'))
    assert rt.main(["diff", str(future), str(future)]) == 2
    assert "schema 99; this rnnspec reads schema 2" in capsys.readouterr().err


def test_reads_a_partial_report(tmp_path):
    """Env name falls back to the file stem; missing optional keys are tolerated."""
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"schema": 2, "claims": {"spec/t.py::test_a": {"outcome": "passed"}}}))
    rep = rt.load_report(path)
    assert rep["environment"]["env_name"] == "partial"
    assert rt.cell(rt.claims_of(rep)["spec/t.py::test_a"]) == "pass"
    assert "partial" in rt.merge([rep], {})


def test_a_when_table_can_require_a_device():
    """``when = { device = "gpu" }``: the entry applies only where the environment sees a GPU."""
    from rnnspec.spec.versions import applies
    when = {"backend": "jax", "device": "gpu"}
    assert applies(when, {"backend": "jax", "devices": ["cpu", "gpu"]})
    assert not applies(when, {"backend": "jax", "devices": ["cpu"]})
    assert not applies(when, {"backend": "torch", "devices": ["cpu", "gpu"]})
    assert applies({"backend": "jax"}, {"backend": "jax"})
