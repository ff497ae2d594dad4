"""pytest plugin: known divergences as data, and the conformance report.

Known divergences
    ``spec/data/divergences.toml`` lists, per environment, the claims where
    Keras disagrees with the formulas or its own documentation, each with a
    reason and a reproducer. An entry with a ``predicate`` covers only the
    examples that predicate recognises (``spec/divergences.py``): they are
    counted in the report, and every other example of the claim is still
    asserted. An entry without one marks whole claims ``xfail(strict=True)``.
    Either way the run turns red the day the divergence stops
    (``spec/test_known_divergences.py``, strict xfail), and any divergence
    that is not listed fails the run: that is the regression gate.

Conformance report
    Every run writes a JSON file (``--report-json PATH``, or
    ``$RNNSPEC_REPORT``, default ``reports/latest.json``) with the
    environment and, per claim, its status and the number of examples run.
    ``python -m tools.report merge`` turns several into a Markdown matrix.
"""

import fnmatch
import json
import os
import platform
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
_examples = {"count": 0, "divergences": {}}


def note_example():
    """Called once per executed example by the assertion helpers."""
    _examples["count"] += 1


def note_observation(key, value):
    """Record what Keras did (e.g. which exception it raised) in the report, per claim."""
    seen = _examples.setdefault("observed", {}).setdefault(key, [])
    if value not in seen:
        seen.append(value)


def current_claim():
    """The claim id of the test that is running ("" outside pytest)."""
    return _examples.get("claim", "")


def note_divergence(divergence_id):
    """Called once per example that hit a known divergence (and was not asserted)."""
    _examples["divergences"][divergence_id] = _examples["divergences"].get(divergence_id, 0) + 1


# --------------------------------------------------------------------------- environment

def environment():
    from spec import adapter
    return {
        "python": platform.python_version(),
        "tensorflow": adapter.tf_version(),
        "keras": adapter.KERAS_VERSION,
        "keras_package": adapter.KERAS_PACKAGE,
        "backend": adapter.BACKEND,
        "devices": adapter.devices(),
        "tf32": tf32_setting(adapter.BACKEND),
        "platform": platform.platform(),
        "commit": _commit(),
        "env_name": os.environ.get("RNNSPEC_ENV") or os.environ.get("TOX_ENV_NAME") or "local",
    }


def tf32_setting(backend):
    """Whether float32 matmuls may run in TF32 on this backend's GPU ("n/a" without one)."""
    try:
        if backend == "torch":
            import torch
            if not torch.cuda.is_available():
                return "n/a (no GPU)"
            return f"matmul={torch.backends.cuda.matmul.allow_tf32}, cudnn={torch.backends.cudnn.allow_tf32}"
        if backend == "jax":
            import jax
            if not any(d.platform == "gpu" for d in jax.devices()):
                return "n/a (no GPU)"
            return f"default_matmul_precision={jax.config.jax_default_matmul_precision}"
        import tensorflow as tf
        if not tf.config.list_physical_devices("GPU"):
            return "n/a (no GPU)"
        return f"tensor_float_32={tf.config.experimental.tensor_float_32_execution_enabled()}"
    except Exception as exc:  # report, never crash the header
        return f"unknown ({type(exc).__name__})"


def _commit():
    if os.environ.get("RNNSPEC_COMMIT"):
        return os.environ["RNNSPEC_COMMIT"]
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def report_path(config):
    return config.getoption("report_json") or os.environ.get("RNNSPEC_REPORT") or "reports/latest.json"


# --------------------------------------------------------------------------- known divergences

def _matches(version, spec):
    from spec.adapter import _matches as match_bounds, _version_tuple
    return match_bounds(_version_tuple(version or ""), spec)


def load_divergences():
    path = DATA / "divergences.toml"
    if not path.exists():
        return []
    return tomllib.loads(path.read_text()).get("divergence", [])


def divergence_applies(entry, env):
    when = entry.get("when", {})
    if "keras" in when and not _matches(env["keras"], when["keras"]):
        return False
    if "tensorflow" in when and not (env["tensorflow"] and _matches(env["tensorflow"], when["tensorflow"])):
        return False
    if "backend" in when and env["backend"] not in _as_list(when["backend"]):
        return False
    if "keras_package" in when and env["keras_package"] not in _as_list(when["keras_package"]):
        return False
    return True


def _as_list(v):
    return v if isinstance(v, list) else [v]


def _claim_of(item):
    """The claim id: the test's node id without parameters."""
    return item.nodeid.split("[")[0]


# --------------------------------------------------------------------------- plugin hooks

def pytest_addoption(parser):
    parser.addoption("--report-json", default=None,
                     help="where to write the conformance JSON (default $RNNSPEC_REPORT or reports/latest.json)")


def pytest_configure(config):
    config._rnnspec = {"results": {}, "env": None, "start": time.time()}


def pytest_collection_modifyitems(config, items):
    state = config._rnnspec
    try:
        state["env"] = environment()
    except ImportError:
        return  # no Keras installed: only the reference tests can run
    active = [d for d in load_divergences() if divergence_applies(d, state["env"])]
    state["active_divergences"] = active
    for item in items:
        claim = _claim_of(item)
        doc = (getattr(getattr(item, "function", None), "__doc__", None) or "").strip()
        item.user_properties.append(("title", doc.splitlines()[0] if doc else item.name))
        for entry in active:
            if "predicate" in entry:
                continue  # example-level: handled inside the property (spec/divergences.py)
            if any(fnmatch.fnmatch(claim, p) or fnmatch.fnmatch(item.nodeid, p) for p in entry["claims"]):
                item.add_marker(pytest.mark.xfail(strict=True, reason=f"known divergence {entry['id']}: {entry['reason']}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _examples["count"] = 0
    _examples["divergences"] = {}
    _examples["claim"] = _claim_of(item)
    _examples["observed"] = {}
    yield
    item.user_properties.append(("observed", dict(_examples["observed"])))
    item.user_properties.append(("examples", _examples["count"]))
    item.user_properties.append(("known_divergence_examples", dict(_examples["divergences"])))


def pytest_runtest_logreport(report):
    """Runs where results are gathered (the xdist controller, or the only process)."""
    rep = report
    if not (rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed")):
        return
    props = dict(rep.user_properties)
    status, reason = rep.outcome, ""
    if hasattr(rep, "wasxfail"):
        status = "diverged" if rep.outcome == "skipped" else "stale-divergence"
        reason = rep.wasxfail
    elif rep.outcome == "skipped":
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    elif rep.outcome == "failed":
        reason = _first_line(rep)
        if "XPASS(strict)" in reason or "XPASS(strict)" in str(rep.longrepr):
            status = "stale-divergence"
    _RESULTS[rep.nodeid] = {
        "claim": rep.nodeid.split("[")[0],
        "title": props.get("title", rep.nodeid),
        "status": status,
        "reason": reason,
        "examples": props.get("examples", 0),
        "known_divergence_examples": props.get("known_divergence_examples", {}),
        "observed": props.get("observed", {}),
        "duration_s": round(rep.duration, 3),
    }


_RESULTS = {}


def _first_line(rep):
    """The first informative error line (TF graph errors open with "ValueError: in user code:")."""
    text = getattr(rep, "longreprtext", "") or ""
    lines = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    lines = [line for line in lines if line and not line.endswith("in user code:")
             and not line.startswith("File ")]
    if lines:
        first = lines[0]
        if first.endswith(":") and len(lines) > 1:   # e.g. "ValueError: Exception encountered when calling ...:"
            first = f"{first} {lines[1]}"
        return first[:300]
    return text.strip().splitlines()[-1][:300] if text.strip() else ""


def pytest_sessionfinish(session, exitstatus):
    state = session.config._rnnspec
    state["results"] = dict(_RESULTS)
    if hasattr(session.config, "workerinput") or not state["results"]:
        return  # xdist workers: the controller writes the report
    try:
        state["env"] = state["env"] or environment()
    except ImportError:
        return
    claims = {r["claim"] for r in state["results"].values()}
    stale = [d["id"] for d in load_divergences()
             if divergence_applies(d, state["env"])
             and not any(fnmatch.fnmatch(c, p) for c in claims for p in d["claims"])]
    state["stale"] = stale
    path = Path(report_path(session.config))
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "environment": state["env"],
        "profile": os.environ.get("RNNSPEC_PROFILE") or session.config.getoption("hypothesis_profile", None) or "dev",
        "wall_time_s": round(time.time() - state["start"], 1),
        "results": state["results"],
        "unmatched_divergence_entries": stale,
    }
    path.write_text(json.dumps(payload, indent=1, sort_keys=True))
    state["written"] = str(path)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = config._rnnspec
    stale = state.get("stale", [])
    if stale:
        terminalreporter.write_sep("-", "known-divergence entries that match no collected claim")
        for entry_id in stale:
            terminalreporter.write_line(f"  {entry_id}")
    if state.get("written"):
        terminalreporter.write_line(f"rnnspec: conformance report written to {state['written']}")
