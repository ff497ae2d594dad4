"""The release sweep, the behavior timeline and ``rnnspec bisect`` (tools/sweep.py,
tools/sweep_data.py, tools/timeline.py, tools/bisect_releases.py; issue #27).

No environment is built and no spec is run: the environment builder and the spec
runner are fakes (a fake ``uv`` executable where the real builder is tested), and
the reports are synthetic. No Keras, no network.
"""

import json
import os
import re
import subprocess
import sys
import tomllib
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from rnnspec import cli
from rnnspec.spec.outcomes import SPEC_ROOT
from rnnspec.tools import bisect_releases, sweep, sweep_data, timeline
from rnnspec.tools.report import normalise

DATA = sweep_data.load()
TOX = (SPEC_ROOT / "tox.ini").read_text()


def invoke(*args, **kwargs):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False, **kwargs)


# --------------------------------------------------------------------------- the data and the pairs

def test_the_release_list_is_every_keras_3_release():
    releases = sweep.release_list()
    assert len(releases) == 40 and releases[0] == "3.0.0" and releases[-1] == "3.15.1"
    assert all(re.fullmatch(r"3\.\d+\.\d+", v) for v in releases)
    assert releases == sorted(releases, key=lambda v: tuple(map(int, v.split("."))))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", DATA["read_from_pypi"])
    assert all(r.get("jax") for r in DATA["release"])


def test_every_minor_picks_the_latest_patch_of_each_minor():
    minor = sweep.release_list(">=3.0,<4", every="minor")
    assert len(minor) == 16
    assert {"3.0.5", "3.3.3", "3.9.2", "3.11.3", "3.12.4", "3.15.1"} <= set(minor)
    assert not {"3.0.4", "3.12.3", "3.15.0"} & set(minor)


def test_the_keras_specifier_filters_the_list():
    assert sweep.release_list("==3.2.1") == ["3.2.1"]
    assert sweep.release_list(">=3.14") == ["3.14.0", "3.14.1", "3.15.0", "3.15.1"]
    assert sweep.release_list(">=3.14", every="minor") == ["3.14.1", "3.15.1"]
    with pytest.raises(ValueError):
        sweep.release_list(every="weekly")


def test_jax_pairs_follow_the_rule():
    """k30-jax pins what the rule gives 3.0.5; k312-jax's jax (0.8.1) is what it gives 3.12.0.
    Where the rule and tox differ (3.9.2: 0.6.0, tox 0.5.3; 3.12.4, published after 3.15.0:
    0.10.2, tox 0.8.1), the README says so."""
    p = sweep.pair("3.0.5", "jax")
    assert p.requirements == ("keras==3.0.5", "jax[cpu]==0.4.25", "numpy<2")
    assert "k30-jax: jax[cpu]==0.4.25" in TOX and "k30-jax: numpy<2" in TOX
    assert sweep.pair("3.12.0", "jax").requirements == ("keras==3.12.0", "jax[cpu]==0.8.1")
    assert "k312-jax: jax[cpu]==0.8.1" in TOX
    assert sweep.pair("3.12.4", "jax").requirements == ("keras==3.12.4", "jax[cpu]==0.10.2")
    assert sweep.pair("3.9.2", "jax").requirements == ("keras==3.9.2", "jax[cpu]==0.6.0")
    assert sweep.pair("3.15.1", "jax").requirements == ("keras==3.15.1", "jax[cpu]==0.10.2")   # 0.11: Python 3.12
    assert dict(p.extra_env) == {"JAX_PLATFORMS": "cpu", "KERAS_BACKEND": "jax"}


def test_torch_pairs_are_the_local_cpu_wheel():
    p = sweep.pair("3.9.2", "torch")
    assert p.requirements == ("keras==3.9.2", "torch==2.13.0")
    assert p.cpu_build == "torch" and p.env_name == "sweep-torch-keras3.9.2"
    assert sweep.pair("3.0.5", "torch").requirements[-1] == "numpy<2"   # as k30-torch
    assert p.find_links in ("", "/opt/wheels") and (p.find_links == "") != os.path.isdir("/opt/wheels")


def _tox_tf_ranges():
    """``{"2.16": ">=3.0,<3.4", ...}`` from tox.ini's k3-tf2XX deps."""
    return {f"2.{m.group(1)}": m.group(2) for m in re.finditer(r"^\s+tf2(\d\d): keras(\S+)$", TOX, re.M)}


@pytest.mark.parametrize("keras, tf", [("3.0.0", "2.16"), ("3.3.3", "2.16"), ("3.4.0", "2.17"),
                                       ("3.5.0", "2.17"), ("3.8.0", "2.18"), ("3.10.0", "2.19"),
                                       ("3.12.4", "2.20"), ("3.13.0", "2.21"), ("3.15.1", "2.21")])
def test_tensorflow_pairs_each_minor_with_its_tensorflow(keras, tf):
    p = sweep.pair(keras, "tensorflow")
    assert f"tensorflow-cpu=={tf}.*" in p.requirements


def test_tensorflow_pairs_are_tox_ranges():
    ranges = _tox_tf_ranges()
    ranges["2.21"] = ">=3.13,<4"   # k3-tf221's line names its env in full
    pairs = {p["requirements"][0].split("==")[1].removesuffix(".*"): p["keras"]
             for p in DATA["backend"]["tensorflow"]["pair"]}
    assert pairs == ranges


def test_unknown_releases_and_backends_are_refused():
    with pytest.raises(LookupError, match="3.99.0"):
        sweep.pair("3.99.0", "torch")
    with pytest.raises(ValueError, match="backend"):
        sweep.pair("3.9.2", "mlx")


def _pypi(releases):
    """A PyPI JSON document: ``{version: (upload time, yanked, requires_python)}``."""
    return {"releases": {v: [{"upload_time_iso_8601": t, "yanked": y, "requires_python": rp}]
                         for v, (t, y, rp) in releases.items()}}


KERAS_JSON = _pypi({"3.0.0": ("2024-01-01T00:00:00Z", False, ">=3.9"),
                    "3.1.0rc0": ("2024-01-15T00:00:00Z", False, ">=3.9"),
                    "3.1.0": ("2024-02-01T00:00:00Z", False, ">=3.9"),
                    "3.1.1": ("2024-02-10T00:00:00Z", True, ">=3.9"),
                    "3.6.0": ("2024-08-01T00:00:00Z", False, ">=3.9"),
                    "3.0.9": ("2024-09-01T00:00:00Z", False, ">=3.9")})   # a backport, after 3.6.0
JAX_JSON = _pypi({"0.4.20": ("2023-12-01T00:00:00Z", False, ">=3.9"),
                  "0.4.25": ("2024-01-20T00:00:00Z", False, ">=3.9"),
                  "0.4.30": ("2024-07-01T00:00:00Z", False, ">=3.9"),
                  "0.4.31": ("2024-07-20T00:00:00Z", True, ">=3.9"),
                  "0.4.35": ("2024-08-15T00:00:00Z", False, ">=3.9"),
                  "0.5.0": ("2024-09-01T00:00:00Z", False, ">=3.12")})


def test_pypi_releases_leave_out_prereleases_yanked_and_other_pythons():
    keras = sweep_data.releases(KERAS_JSON)
    assert [str(v) for v, _, _ in keras] == ["3.0.0", "3.0.9", "3.1.0", "3.6.0"]
    assert keras[0][1] == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert [str(v) for v, _, _ in sweep_data.releases(JAX_JSON, python="3.11")] == \
        ["0.4.20", "0.4.25", "0.4.30", "0.4.35"]


def test_jax_is_the_newest_released_before_the_next_keras_in_time():
    """3.0.9 is uploaded last: the newest jax for this Python (0.5.0 needs 3.12), not 3.0's."""
    keras = sweep_data.releases(KERAS_JSON)
    jax = sweep_data.releases(JAX_JSON, python="3.11")
    assert sweep_data.pair_jax(keras, jax) == {"3.0.0": "0.4.25", "3.1.0": "0.4.30", "3.6.0": "0.4.35",
                                               "3.0.9": "0.4.35"}
    assert sweep_data.needs_numpy1("3.4.1") and not sweep_data.needs_numpy1("3.5.0", "0.4.30")
    assert sweep_data.needs_numpy1("3.6.0", "0.4.25")


def test_the_rendered_data_file_is_what_pair_reads(tmp_path):
    keras = sweep_data.releases(KERAS_JSON)
    jax = sweep_data.releases(JAX_JSON, python="3.11")
    data = tomllib.loads(sweep_data.render(keras, sweep_data.pair_jax(keras, jax), "3.11", "2024-09-02"))
    assert sweep.release_list(data=data) == ["3.0.0", "3.0.9", "3.1.0", "3.6.0"]
    assert sweep.pair("3.6.0", "jax", data=data).requirements == ("keras==3.6.0", "jax[cpu]==0.4.35")
    assert sweep.pair("3.1.0", "jax", data=data).requirements[-1] == "numpy<2"


# --------------------------------------------------------------------------- the sweep, faked

def _report(backend, keras, claims, spec_hash="current", env_name=None, wall=12.0):
    """A schema-2 report: ``claims`` is ``{claim: outcome or (outcome, {divergence key: n})}``."""
    out = {}
    for c, v in claims.items():
        outcome, models = (v, {}) if isinstance(v, str) else v
        formulas = 0 if outcome in ("diverged", "refused", "crashed", "unsupported") else 10
        out[c] = {"title": c, "outcome": outcome, "reasons": [], "nodes": 1,
                  "examples": {"drawn": 10, "formulas": formulas, "models": models, "refused": 0,
                               "unsupported": 0, "unasserted": 0}}
    return {"schema": 2, "profile": "sweep", "wall_time_s": wall, "claims": out,
            "environment": {"backend": backend, "keras": keras, "keras_package": "keras",
                            "env_name": env_name or f"sweep-{backend}-keras{keras}", "spec_hash": spec_hash,
                            "torch": "2.13.0+cpu" if backend == "torch" else None, "numpy": "2.4.6"}}


class FakeEnvs:
    def __init__(self, broken=()):
        self.broken, self.built = set(broken), []

    def python(self, p, log=None):
        self.built.append(p.keras)
        if p.keras in self.broken:
            raise sweep.InstallError("× No solution found when resolving dependencies:\n"
                                     f"  ╰─▶ Because keras=={p.keras} needs a Python this one is not")
        return f"/fake/{p.name}/bin/python"


class FakeRunner:
    def __init__(self, spec_hash="current", no_report=()):
        self.spec_hash, self.no_report, self.ran = spec_hash, set(no_report), []

    def __call__(self, python, p, report, timeout=None, args=("spec",)):
        self.ran.append(p.keras)
        if p.keras in self.no_report:
            return 4, "ImportError: cannot import name 'Inf' from 'numpy'"
        with open(report, "w") as fh:
            json.dump(_report(p.backend, p.keras, {"spec/test_a.py::test_x": "passed"}, self.spec_hash), fh)
        return 0, "1 passed"


def _pairs(*versions, backend="torch"):
    return [sweep.pair(v, backend) for v in versions]


def test_a_report_at_the_current_hash_is_skipped_and_a_stale_one_rerun(tmp_path):
    pairs = _pairs("3.8.0", "3.9.0", "3.9.1")
    (tmp_path / "torch-keras3.8.0.json").write_text(json.dumps(_report("torch", "3.8.0", {}, "current")))
    (tmp_path / "torch-keras3.9.0.json").write_text(json.dumps(_report("torch", "3.9.0", {}, "stale-hash")))
    runner, lines = FakeRunner(), []
    results = sweep.sweep(pairs, tmp_path, envs=FakeEnvs(), runner=runner, spec_hash="current", echo=lines.append)
    assert [r.status for r in results] == ["current", "ran", "ran"]
    assert runner.ran == ["3.9.0", "3.9.1"]
    assert sweep.recorded_hash(tmp_path / "torch-keras3.9.0.json") == "current"
    status = json.loads((tmp_path / "torch-keras3.9.1.status").read_text())
    assert status["status"] == "ran" and status["outcomes"] == {"passed": 1} and "wall_s" in status
    assert (tmp_path / "logs" / "torch-keras3.9.1.log").read_text() == "1 passed"
    # progress lines: elapsed time, n/total, what happened
    assert any(re.match(r"\[\+\d\d:\d\d:\d\d\]\s+1/3 torch keras 3.8.0: skipped: report at spec hash current", x)
               for x in lines), lines
    assert lines[-1].endswith("1 current, 2 ran; 0 s per release run")

    again = FakeRunner()
    sweep.sweep(pairs, tmp_path, envs=FakeEnvs(), runner=again, spec_hash="current", echo=lambda _: None)
    assert again.ran == []   # resumed: every report is current


def test_an_install_failure_is_recorded_not_raised(tmp_path):
    pairs = _pairs("3.0.0", "3.1.0")
    envs, runner = FakeEnvs(broken={"3.0.0"}), FakeRunner()
    results = sweep.sweep(pairs, tmp_path, envs=envs, runner=runner, spec_hash="current", echo=lambda _: None)
    assert [r.status for r in results] == ["install-failed", "ran"]
    status = json.loads((tmp_path / "torch-keras3.0.0.status").read_text())
    assert status["status"] == "install-failed" and "No solution found" in status["reason"]
    assert status["requirements"] == list(pairs[0].requirements)
    assert not (tmp_path / "torch-keras3.0.0.json").exists()
    # a second run does not try again, unless asked to
    envs2 = FakeEnvs(broken={"3.0.0"})
    r2 = sweep.sweep(pairs, tmp_path, envs=envs2, runner=FakeRunner(), spec_hash="current", echo=lambda _: None)
    assert r2[0].status == "known-install-failure" and envs2.built == []
    envs3 = FakeEnvs()
    r3 = sweep.sweep(pairs, tmp_path, envs=envs3, runner=FakeRunner(), spec_hash="current", retry_failed=True,
                     echo=lambda _: None)
    assert r3[0].status == "ran" and envs3.built == ["3.0.0"]


def test_a_run_without_a_report_is_recorded(tmp_path):
    results = sweep.sweep(_pairs("3.0.0"), tmp_path, envs=FakeEnvs(), runner=FakeRunner(no_report={"3.0.0"}),
                          spec_hash="current", echo=lambda _: None)
    assert results[0].status == "no-report"
    status = json.loads((tmp_path / "torch-keras3.0.0.status").read_text())
    assert status["exit_status"] == 4 and "cannot import name 'Inf'" in status["reason"]


def test_releases_run_n_at_a_time_and_keep_their_order(tmp_path):
    versions = sweep.release_list(">=3.9,<3.12")
    results = sweep.sweep(_pairs(*versions, backend="jax"), tmp_path, jobs=3, envs=FakeEnvs(),
                          runner=FakeRunner(), spec_hash="current", echo=lambda _: None)
    assert [r.pair.keras for r in results] == versions and {r.status for r in results} == {"ran"}
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(f"jax-keras{v}.json" for v in versions)


def test_a_run_gets_the_sweep_profile_and_a_private_keras_home(monkeypatch):
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    monkeypatch.setenv("RNNSPEC_PROFILE", "thorough")
    env = sweep.run_env(sweep.pair("3.9.2", "jax"), "/tmp/home-x")
    assert env["RNNSPEC_PROFILE"] == "sweep" and env["RNNSPEC_ENV"] == "sweep-jax-keras3.9.2"
    assert env["KERAS_BACKEND"] == "jax" and env["KERAS_HOME"] == "/tmp/home-x" and env["JAX_PLATFORMS"] == "cpu"
    assert "TF_USE_LEGACY_KERAS" not in env


FAKE_UV = """#!/bin/sh
echo "$@ UV_FIND_LINKS=$UV_FIND_LINKS" >> "{log}"
if [ "$1" = venv ]; then mkdir -p "$4/bin" && ln -s "{python}" "$4/bin/python"; exit 0; fi
if [ -n "{fail}" ]; then echo "  x No solution found when resolving dependencies" >&2; exit 1; fi
exit 0
"""


def _fake_uv(tmp_path, fail=""):
    uv, log = tmp_path / "uv", tmp_path / "uv.log"
    uv.write_text(FAKE_UV.format(log=log, python=sys.executable, fail=fail))
    uv.chmod(0o755)
    return uv, log


def test_the_uv_builder_builds_once_and_reuses(tmp_path):
    uv, log = _fake_uv(tmp_path)
    envs = sweep.UvEnvironments(tmp_path / "venvs", uv=str(uv))
    p = sweep.pair("3.9.2", "jax")
    exe = envs.python(p)
    assert exe == tmp_path / "venvs" / "py3.11" / "jax-keras3.9.2" / "bin" / "python"
    calls = log.read_text().splitlines()
    assert calls[0].startswith("venv --python 3.11 ")
    assert calls[1].startswith(f"pip install --python {exe} -e {sweep.ROOT} keras==3.9.2 jax[cpu]==0.6.0")
    envs.python(p)
    assert len(log.read_text().splitlines()) == 2   # cached


def test_the_uv_builder_passes_find_links_and_refuses_a_cuda_torch(tmp_path):
    uv, log = _fake_uv(tmp_path)
    links = tmp_path / "wheels"
    links.mkdir()
    p = sweep.Pair("torch", "3.9.2", ("keras==3.9.2", "torch==2.13.0"), "3.11", str(links), (), "torch")
    with pytest.raises(sweep.InstallError, match="not a CPU build"):
        sweep.UvEnvironments(tmp_path / "venvs", uv=str(uv)).python(p)
    assert f"UV_FIND_LINKS={links}" in log.read_text().splitlines()[1]
    assert not (tmp_path / "venvs" / "py3.11" / "torch-keras3.9.2").exists()


def test_the_uv_builder_reports_uv_s_reason(tmp_path):
    uv, _ = _fake_uv(tmp_path, fail="1")
    with pytest.raises(sweep.InstallError, match="No solution found"):
        sweep.UvEnvironments(tmp_path / "venvs", uv=str(uv)).python(sweep.pair("3.9.2", "jax"))


def test_sweep_list_prints_json_and_dry_run_builds_nothing(tmp_path):
    r = invoke("sweep", "--backend", "tensorflow", "--every", "minor", "--list")
    assert r.exit_code == 0 and json.loads(r.output) == sweep.release_list(every="minor")
    r = invoke("sweep", "--backend", "torch", "--keras", "==3.9.2", "--dry-run", "-o", tmp_path)
    assert r.exit_code == 0 and "torch-keras3.9.2: keras==3.9.2 torch==2.13.0" in r.output
    assert list(tmp_path.iterdir()) == []
    r = invoke("sweep", "--backend", "torch", "--keras", "==9.9", "-o", tmp_path)
    assert r.exit_code == 2 and "no Keras release" in r.output


# --------------------------------------------------------------------------- the profile

def test_the_sweep_profile_draws_fewer_examples_than_ci():
    from hypothesis import settings
    import rnnspec.plugin  # noqa: F401 (registers the profiles)
    sweep_p, ci = settings.get_profile("sweep"), settings.get_profile("ci")
    assert sweep_p.max_examples == 10 < ci.max_examples
    assert sweep_p.derandomize and sweep_p.database is None and sweep_p.deadline is None
    assert "sweep" in cli.PROFILES


def test_the_cli_imports_without_keras():
    code = ("import sys, rnnspec.cli, rnnspec.tools.sweep, rnnspec.tools.timeline, rnnspec.tools.bisect_releases;"
            "bad = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- the timeline

CLAIM = "spec/test_equivalence.py::test_layer_matches_reference"
OTHER = "spec/test_stateful.py::test_state_carries_across_calls"
DIV = "torch-unroll-backwards-mask-crash"


def _sweep_reports(tmp_path):
    """3.0.0 pass, 3.1.0 and 3.2.0 diverged (DIV), 3.3.0 not installable, 3.4.0 pass;
    OTHER crashes from 3.2.0 on (still in the latest)."""
    rows = {"3.0.0": ("passed", "passed"), "3.1.0": (("diverged", {f"{DIV} (raises)": 3}), "passed"),
            "3.2.0": (("diverged", {f"{DIV} (raises)": 2}), "crashed"), "3.4.0": ("passed", "crashed")}
    for v, (a, b) in rows.items():
        (tmp_path / f"torch-keras{v}.json").write_text(json.dumps(_report("torch", v, {CLAIM: a, OTHER: b})))
    (tmp_path / "torch-keras3.3.0.status").write_text(json.dumps(
        {"backend": "torch", "keras": "3.3.0", "status": "install-failed", "reason": "No solution found",
         "requirements": ["keras==3.3.0", "torch==2.13.0"]}))
    return [normalise(json.loads(p.read_text()), str(p)) for p in sorted(tmp_path.glob("*.json"))]


def test_first_bad_and_first_fixed():
    seq = [("3.0", False), ("3.1", True), ("3.2", True), ("3.3", None), ("3.4", False), ("3.5", True)]
    span = timeline.bad_runs(seq)
    assert span["first_bad"] == "3.1" and span["first_fixed"] == "3.4"
    assert span["runs"] == [["3.1", "3.4"], ["3.5", None]]
    assert span["comes_and_goes"] and span["still_in_latest"]
    assert timeline.bad_runs([("3.0", False), ("3.1", None)])["first_bad"] is None


def test_the_timeline_of_synthetic_reports(tmp_path):
    reports = _sweep_reports(tmp_path)
    divergences = {DIV: {"id": DIV, "when": {"backend": "torch"}},
                   "jax-only": {"id": "jax-only", "when": {"backend": "jax"}},
                   "old-keras": {"id": "old-keras", "when": {"keras": "<3.2"}}}
    t = timeline.build(reports, timeline.statuses_beside(tmp_path.glob("*.json")), divergences)["torch"]
    assert t["releases"] == ["3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0"]
    assert t["columns"]["3.3.0"]["status"] == "install-failed"
    assert t["spans"][DIV] == {"runs": [["3.1.0", "3.4.0"]], "first_bad": "3.1.0", "first_fixed": "3.4.0",
                               "still_in_latest": False, "comes_and_goes": False}
    assert t["spans"][OTHER]["first_bad"] == "3.2.0" and t["spans"][OTHER]["still_in_latest"]
    assert "jax-only" not in t["divergences"]   # applies to no report here
    assert t["divergences"]["old-keras"] == {"3.0.0": 0, "3.1.0": 0, "3.2.0": "n/a", "3.3.0": None, "3.4.0": "n/a"}
    assert t["divergences"][DIV]["3.1.0"] == 3
    page = timeline.render(t)
    d = f"D{list(t['divergences']).index(DIV) + 1}"
    assert f"| {d} | `{DIV}` | 3.1.0 | 3.4.0 |" in page
    assert f"| claim | `{OTHER}` | 3.2.0 | still in the latest |" in page
    row = next(line for line in page.splitlines() if line.startswith(f"| `{CLAIM}`"))
    assert row.split(" | ")[1:] == ["pass", f"diverged {d}", f"diverged {d}", "not installable", "pass |"]


def test_report_timeline_writes_a_page_per_backend(tmp_path):
    _sweep_reports(tmp_path)
    (tmp_path / "jax-keras3.9.2.json").write_text(json.dumps(_report("jax", "3.9.2", {CLAIM: "passed"})))
    out = tmp_path / "timeline"
    r = invoke("report", "timeline", str(tmp_path / "*.json"), "-o", out)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["jax.json", "jax.md", "torch.json", "torch.md"]
    assert "# Behavior timeline: torch" in (out / "torch.md").read_text()
    assert timeline.load(out, "torch")["spans"][DIV]["first_fixed"] == "3.4.0"


# --------------------------------------------------------------------------- bisect

RELEASES = sweep.release_list()


def _probe(first_bad, broken=()):
    calls = []

    def probe(v):
        calls.append(v)
        if v in broken:
            raise sweep.InstallError("No solution found")
        bad = tuple(map(int, v.split("."))) >= tuple(map(int, first_bad.split(".")))
        return ("diverged", (DIV,)) if bad else ("passed", ())
    return probe, calls


@pytest.mark.parametrize("first_bad", ["3.8.0", "3.9.1", "3.10.0", "3.12.4"])
def test_bisect_finds_the_transition(first_bad):
    probe, calls = _probe(first_bad)
    res = bisect_releases.bisect(RELEASES, "3.7.0", "3.12.4", probe, echo=lambda _: None)
    assert res["status"] == "found" and res["first_bad"] == first_bad
    assert res["last_good"] == RELEASES[RELEASES.index(first_bad) - 1]
    assert len(calls) <= 2 + 4   # both ends + log2(13 releases)


def test_bisect_skips_a_release_that_cannot_be_installed():
    probe, _ = _probe("3.10.0", broken={"3.10.0"})
    lines = []
    res = bisect_releases.bisect(RELEASES, "3.7.0", "3.12.4", probe, echo=lines.append)
    assert res["first_bad"] == "3.11.0" and res["last_good"] == "3.9.2"
    assert res["between_untested"] == ["3.10.0"]
    assert any("3.10.0: not installable, skipped" in x for x in lines)


def test_bisect_with_the_same_outcome_at_both_ends():
    probe, _ = _probe("3.14.0")
    assert bisect_releases.bisect(RELEASES, "3.7.0", "3.12.4", probe, echo=lambda _: None)["status"] == "same"
    with pytest.raises(ValueError):
        bisect_releases.bisect(RELEASES, "3.12.4", "3.7.0", probe)


def test_rnnspec_bisect_prints_the_steps_and_the_compare_range(tmp_path, monkeypatch):
    probe, _ = _probe("3.10.0")
    monkeypatch.setattr(bisect_releases, "ClaimProbe", lambda *a, **k: probe)
    r = invoke("bisect", "--claim", CLAIM, "--good", "3.8.0", "--bad", "3.12.4", "--backend", "torch",
               "--timeline", _empty_timeline(tmp_path))
    assert r.exit_code == 0, r.output
    assert "3.8.0: passed  (good)" in r.output and f"3.12.4: diverged ({DIV})  (bad)" in r.output
    assert "first bad release: 3.10.0" in r.output and "last good: 3.9.2" in r.output
    assert "https://github.com/keras-team/keras/compare/v3.9.2...v3.10.0" in r.output


def _empty_timeline(tmp_path):
    (tmp_path / "torch.json").write_text(json.dumps({"releases": [], "claims": {}}))
    return tmp_path


def test_rnnspec_bisect_lists_several_changes_from_the_timeline_instead(tmp_path, monkeypatch):
    reports = _sweep_reports(tmp_path)   # CLAIM: pass, diverged, diverged, -, pass
    timeline.write(timeline.build(reports, divergences={}), tmp_path / "tl")

    def no_probe(*a, **k):
        raise AssertionError("probed although the timeline shows two changes")
    monkeypatch.setattr(bisect_releases, "ClaimProbe", no_probe)
    r = invoke("bisect", "--claim", CLAIM, "--good", "3.0.0", "--bad", "3.4.0", "--backend", "torch",
               "--timeline", tmp_path / "tl")
    assert r.exit_code == 0, r.output
    assert "changing 2 times between 3.0.0 and 3.4.0" in r.output
    assert "compare/v3.0.0...v3.1.0" in r.output and "compare/v3.2.0...v3.4.0" in r.output


def test_bisect_runs_only_the_failing_nodes_of_an_example_report(tmp_path):
    data = _report("torch", "3.12.4", {CLAIM: "failed"})
    data["claims"][CLAIM]["reproducers"] = [{"node": CLAIM + "[pool07]", "reason": "x", "code": "..."}]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    assert bisect_releases.failing_nodes(path, CLAIM) == [CLAIM + "[pool07]"]
    seen = {}

    def runner(python, p, report, args=(), timeout=None):
        seen["args"] = args
        with open(report, "w") as fh:
            json.dump(_report("torch", p.keras, {CLAIM: ("diverged", {f"{DIV} (raises)": 1})}), fh)
        return 0, ""
    probe = bisect_releases.ClaimProbe(CLAIM, "torch", nodes=[CLAIM + "[pool07]"], envs=FakeEnvs(), runner=runner)
    assert probe("3.12.4") == ("diverged", (DIV,))
    assert seen["args"] == [CLAIM + "[pool07]"]


# --------------------------------------------------------------------------- the CI template

SWEEP_WORKFLOW = SPEC_ROOT / "docs" / "ci" / "sweep.yml"


def test_the_sweep_workflow_validates_against_the_github_workflow_schema():
    pytest.importorskip("check_jsonschema")
    out = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                          "vendor.github-workflows", str(SWEEP_WORKFLOW)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_sweep_workflow_s_matrix_is_the_release_list():
    pytest.importorskip("ruamel.yaml")
    from rnnspec.tools.ci_local import load_workflow
    wf = load_workflow(SWEEP_WORKFLOW)
    listing = "\n".join(s.get("run", "") for s in wf["jobs"]["releases"]["steps"])
    assert "rnnspec sweep --list" in listing and ">> \"$GITHUB_OUTPUT\"" in listing
    assert wf["jobs"]["sweep"]["strategy"]["matrix"]["keras"] == "${{ fromJSON(needs.releases.outputs.releases) }}"
    run = "\n".join(s.get("run", "") for s in wf["jobs"]["sweep"]["steps"])
    assert "rnnspec sweep" in run and '"==$RNNSPEC_RELEASE"' in run
    assert "rnnspec report timeline" in "\n".join(s.get("run", "") for s in wf["jobs"]["timeline"]["steps"])
    assert wf["on"]["workflow_dispatch"]["inputs"]["backend"]["options"] == list(sweep.BACKENDS)


def test_without_uv_the_sweep_says_how_to_get_it(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_uv(name, *args, **kwargs):
        if name == "uv":
            raise ImportError("no uv here")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_uv)
    monkeypatch.setattr(sweep.shutil, "which", lambda name: None)
    with pytest.raises(sweep.InstallError, match=r"rnnspec\[sweep\]"):
        sweep.UvEnvironments()
