"""The GitHub Actions workflow users copy (docs/ci/github-actions.yml) and its local twin.

- The workflow validates against GitHub's published workflow JSON schema, the
  copy that check-jsonschema ships (``--builtin-schema vendor.github-workflows``:
  no network).
- docs/ci/run-local.sh is generated from the workflow's own ``run:`` steps
  (``python -m rnnspec.tools.ci_local``); it must equal a fresh generation, so
  the two cannot drift apart, and it must be valid bash.
- Exercised (slow: builds the wheel and installs it): the script's gate job runs
  here on committed reports, in a temporary "user repository" holding the wheel
  and a baseline, and passes; with a failure injected into a report it fails.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnnspec.spec.outcomes import SPEC_ROOT
from rnnspec.tools import ci_local

WORKFLOW = SPEC_ROOT / "docs" / "ci" / "github-actions.yml"
SCRIPT = SPEC_ROOT / "docs" / "ci" / "run-local.sh"
REPORTS = SPEC_ROOT / "docs" / "conformance" / "reports"


def test_workflow_validates_against_the_github_workflow_schema():
    out = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                          "vendor.github-workflows", str(WORKFLOW)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok -- validation done" in out.stdout


def test_the_schema_check_would_catch_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    out = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                          "vendor.github-workflows", str(broken)], capture_output=True, text=True)
    assert out.returncode != 0


def test_the_local_script_is_generated_from_the_workflow():
    fresh = ci_local.generate(ci_local.load_workflow(WORKFLOW), source="docs/ci/github-actions.yml")
    assert SCRIPT.read_text() == fresh, (
        "docs/ci/run-local.sh differs from the workflow: regenerate it with "
        "python -m rnnspec.tools.ci_local docs/ci/github-actions.yml -o docs/ci/run-local.sh")
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_every_run_step_of_the_workflow_is_in_the_script():
    wf = ci_local.load_workflow(WORKFLOW)
    text = SCRIPT.read_text()
    for job in wf["jobs"].values():
        for step in job["steps"]:
            if "run" in step:
                assert step["run"].rstrip() in text


def test_a_run_step_with_an_expression_is_refused():
    wf = ci_local.load_workflow(WORKFLOW)
    wf["jobs"]["gate"]["steps"].append({"run": "echo ${{ matrix.name }}"})
    with pytest.raises(ValueError, match="pass the value through env"):
        ci_local.generate(wf)


@pytest.mark.slow
def test_the_gate_job_runs_locally(tmp_path):
    """The script's gate job, in a user repository holding the wheel and a baseline."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(SPEC_ROOT)],
                   check=True, capture_output=True)
    wheel = next(dist.glob("rnnspec-*.whl"))
    repo = tmp_path / "user-repo"
    (repo / ".rnnspec" / "baseline").mkdir(parents=True)
    shutil.copy(wheel, repo / ".rnnspec" / wheel.name)
    shutil.copy(REPORTS / "k3-tf221.json", repo / ".rnnspec" / "baseline" / "k3-tf221.json")
    workdir = tmp_path / "work"
    art = workdir / "artifacts" / "rnnspec-report-k3-tf221"
    art.mkdir(parents=True)
    shutil.copy(REPORTS / "k3-tf221.json", art / "k3-tf221.json")
    env = dict(os.environ, WORKDIR=str(workdir), RNNSPEC_WHEEL=f".rnnspec/{wheel.name}",
               RNNSPEC_PYTHON=sys.executable)
    env.pop("GITHUB_STEP_SUMMARY", None)
    run = lambda: subprocess.run(["bash", str(SCRIPT), "no-matrix-row"], cwd=repo, env=env,
                                 capture_output=True, text=True)
    out = run()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "rnnspec gate PASSED" in out.stdout and (repo / "rnnspec-matrix.md").is_file()

    data = json.loads((art / "k3-tf221.json").read_text())
    claim = data["claims"]["spec/test_structure.py::test_count_params_is_the_formula"]
    claim["outcome"], claim["reasons"] = "failed", ["AssertionError: injected"]
    (art / "k3-tf221.json").write_text(json.dumps(data))
    shutil.rmtree(repo / "rnnspec-reports")
    out = run()
    assert out.returncode == 1, out.stdout + out.stderr
    assert "NEW FAILED" in out.stdout and "rnnspec gate FAILED: 1 new failure(s)" in out.stdout
