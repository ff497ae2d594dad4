"""pytest plugin: one outcome per example and per claim, and the conformance report.

Every example ends in exactly one outcome of :mod:`rnnspec.spec.outcomes` (passed,
diverged, refused, unsupported; or failed, crashed, fixed, harness error,
which fail the run). The plugin closes each example: it wraps the body that
Hypothesis calls once per drawn example (``test.hypothesis.inner_test``), and
counts an example whose body returned without asserting anything as
*unasserted* -- which fails the run too: a drawn example that is not
asserted is a blind spot. A test without Hypothesis is one example.

Known divergences (``spec/data/divergences.toml``) are models, not skips:
see ``spec/divergences.py``.

Conformance report (schema :data:`SCHEMA`)
    Every run writes a JSON file (``--report-json PATH``, or
    ``$RNNSPEC_REPORT``, default ``reports/latest.json``) with the
    environment and, per claim, its outcome and its examples: drawn,
    asserted against the formulas, asserted against each divergence model,
    refused, unasserted. Claims are keyed by the test id without its
    parameters other than the device (``...::test_layer_matches_reference[cpu]``),
    so keys stay stable when the graph-shape pool or another parametrization
    changes; users commit baselines keyed by them. The report also gives,
    per graph-shape pool (``spec/pool.py``), the entries run and the pairs
    and triples of values actually executed. ``python -m rnnspec.tools.report``
    merges and diffs reports, and refuses a schema it does not know.
"""

import json
import os
import platform
import re
import subprocess
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from rnnspec.spec import columns, outcomes, versions

SCHEMA = 2
DATA = Path(__file__).parent / "data"
_state = {"claim": "", "observed": {}, "arguments": {}, "inventory": None}


def note_observation(key, value):
    """Record what Keras did (e.g. which exception it raised) in the report, per claim."""
    seen = _state["observed"].setdefault(key, [])
    if value not in seen:
        seen.append(value)


def note_argument(cls_name, arg, key):
    """Record that the running claim passed ``arg`` of ``cls_name`` with a value whose key is ``key``
    (``spec/arguments.py``); a claim keeps at most two distinct keys per argument."""
    seen = _state["arguments"].setdefault(f"{cls_name}.{arg}", [])
    if key not in seen and len(seen) < 2:
        seen.append(key)


def note_inventory(documented):
    """Record the documented arguments of the installed Keras (``spec/test_contract.py``)."""
    _state["inventory"] = [list(d) for d in documented]


def current_claim():
    """The claim id of the test that is running ("" outside pytest)."""
    return _state["claim"]


# --------------------------------------------------------------------------- environment

def environment():
    from rnnspec.spec import adapter
    return {
        "python": platform.python_version(),
        "rnnspec": _library_version("rnnspec"),   # the rnnspec that wrote the report
        "tensorflow": adapter.tf_version(),
        # the non-TF backend's library (None when not installed)
        "numpy": _library_version("numpy"),
        "jax": _library_version("jax"),
        "torch": _library_version("torch"),
        "keras": adapter.KERAS_VERSION,
        "keras_package": adapter.KERAS_PACKAGE,
        "backend": adapter.BACKEND,
        "devices": adapter.devices(),
        "tf32": tf32_setting(adapter.BACKEND),
        "platform": platform.platform(),
        "commit": _commit(),
        # what decides the outcomes (spec/, reference/, their data): a column whose hash
        # differs from the spec's is stale (rnnspec.spec.columns)
        "spec_hash": columns.spec_hash(),
        "env_name": os.environ.get("RNNSPEC_ENV") or os.environ.get("TOX_ENV_NAME") or "local",
    }


def _library_version(name):
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


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

def load_divergences():
    path = DATA / "divergences.toml"
    if not path.exists():
        return []
    return tomllib.loads(path.read_text()).get("divergence", [])


def divergence_applies(entry, env):
    """Whether a data entry (divergence, refusal rule, ...) applies to the environment ``env``."""
    return versions.applies(entry.get("when"), env)


# --------------------------------------------------------------------------- claim keys

_POOL_PARAM = re.compile(r"-?pool\d+")


def spec_nodeid(item):
    """A claim's node id as in a checkout (``spec/test_x.py::...``), whatever pytest's rootdir:
    run from an installed wheel (``pytest --pyargs rnnspec.spec``) pytest's own id may read
    ``.../rnnspec/spec/test_x.py::...``, ``test_x.py::...`` or ``::...``. Baselines and
    the claims of known divergences are keyed by the checkout's form."""
    if not is_claim(item):
        return item.nodeid
    return f"spec/{Path(str(item.path)).name}::{item.nodeid.partition('::')[2]}"


def claim_of(nodeid):
    """The claim id: the test's node id without parameters."""
    return nodeid.split("[")[0]


def claim_key(nodeid):
    """The report key: the node id without the pool-entry parameter (``[cpu-pool07]`` -> ``[cpu]``)."""
    key = _POOL_PARAM.sub("", nodeid)
    return key.replace("[-", "[").replace("[]", "")


def _pool_entry(item):
    params = getattr(getattr(item, "callspec", None), "params", {}) or {}
    for value in params.values():
        if hasattr(value, "pool_name") and hasattr(value, "index"):
            return value
    return None


# --------------------------------------------------------------------------- plugin hooks

def pytest_addoption(parser):
    parser.addoption("--report-json", default=None,
                     help="where to write the conformance JSON (default $RNNSPEC_REPORT or reports/latest.json)")


def pytest_configure(config):
    config._rnnspec = {"env": None, "start": time.time()}


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.user_properties.append(("nodeid", spec_nodeid(item)))
        doc = (getattr(getattr(item, "function", None), "__doc__", None) or "").strip()
        item.user_properties.append(("title", doc.splitlines()[0] if doc else item.name))
        entry = _pool_entry(item)
        if entry is not None:
            item.user_properties.append(("pool", (entry.pool_name, entry.index)))


class _Examples:
    """Per-test tally of example outcomes."""

    def __init__(self):
        self.drawn = 0
        self.counts = Counter()       # passed / refused / unsupported / harness-gap / unasserted
        self.models = Counter()       # divergence id -> examples asserted against its model
        self.reasons = {}             # unsupported / harness-gap -> the reasons recorded, in order

    def close(self, log):
        self.drawn += 1
        outcome, detail = log.outcome() if log is not None else (None, None)
        if outcome is None:
            self.counts["unasserted"] += 1
        elif outcome == "diverged":
            self.models[detail] += 1
        else:
            self.counts[outcome] += 1
            if outcome in ("unsupported", "harness-gap") and detail:
                seen = self.reasons.setdefault(outcome, [])
                if detail not in seen:
                    seen.append(detail)

    def as_dict(self):
        return {"drawn": self.drawn, "formulas": self.counts["passed"], "models": dict(self.models),
                "refused": self.counts["refused"], "unsupported": self.counts["unsupported"],
                "harness_gap": self.counts["harness-gap"], "unasserted": self.counts["unasserted"]}


def _counting(inner, tally):
    def body(*args, **kwargs):
        outcomes.begin_example()
        try:
            result = inner(*args, **kwargs)
        except BaseException:
            outcomes.end_example()   # a failing example: the test's outcome says what happened
            raise
        tally.close(outcomes.end_example())
        return result
    return body


SPEC_DIR = Path(__file__).resolve().parent


def is_claim(item):
    """Whether ``item`` is a claim of the spec (``spec/test_*.py``), whose examples must all be asserted."""
    return Path(str(item.path)).resolve().parent == SPEC_DIR


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if not is_claim(item):
        yield
        return
    tally = _Examples()
    _state["claim"] = claim_of(spec_nodeid(item))
    _state["observed"] = {}
    _state["arguments"] = {}
    _state["inventory"] = None
    hyp = getattr(getattr(item, "obj", None), "hypothesis", None)
    inner = getattr(hyp, "inner_test", None)
    if inner is not None:
        hyp.inner_test = _counting(inner, tally)
    else:
        outcomes.begin_example()
    try:
        outcome = yield
    finally:
        if inner is not None:
            hyp.inner_test = inner
    if inner is None:
        log = outcomes.end_example()
        if outcome.excinfo is None:
            tally.close(log)
    item.user_properties.append(("observed", dict(_state["observed"])))
    item.user_properties.append(("arguments", dict(_state["arguments"])))
    if _state["inventory"] is not None:
        item.user_properties.append(("inventory", _state["inventory"]))
    item.user_properties.append(("examples", tally.as_dict()))
    item.user_properties.append(("example_reasons", tally.reasons))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    out = yield
    rep = out.get_result()
    if call.excinfo is not None and rep.failed and not hasattr(rep, "wasxfail"):
        rep.user_properties.append(("outcome", outcomes.classify_exception(call.excinfo.value)))
    if call.when == "call" and rep.passed and is_claim(item):
        ex = dict(item.user_properties).get("examples") or {}
        if ex.get("unasserted"):
            # a blind spot is a defect of the suite: fail the test, as a harness error
            rep.outcome = "failed"
            rep.longrepr = (f"{ex['unasserted']} of {ex['drawn']} drawn example(s) were not asserted "
                            f"against the formulas, a divergence model or a refusal rule")
            rep.user_properties.append(("outcome", "harness-error"))


_RESULTS = {}


def pytest_runtest_logreport(report):
    """Runs where results are gathered (the xdist controller, or the only process)."""
    rep = report
    if not (rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed")):
        return
    props = dict(rep.user_properties)
    reason = ""
    if rep.outcome == "skipped":
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        reason = reason.removeprefix("Skipped: ")
        outcome = "unsupported" if reason.startswith("unsupported:") else "skipped"
    elif rep.outcome == "failed":
        outcome = props.get("outcome") or ("harness-error" if rep.when == "setup" else "failed")
        reason = _first_line(rep)
    else:
        # passed only where an example was compared with the formulas (no hollow pass)
        outcome = outcomes.claim_outcome(props.get("examples") or {})
        reasons = (props.get("example_reasons") or {}).get(outcome) or []
        reason = "; ".join(reasons) if reasons else \
            "no example was drawn" if outcome == "skipped" else ""
    _RESULTS[props.get("nodeid", rep.nodeid)] = {
        "title": props.get("title", rep.nodeid),
        "outcome": outcome,
        "reason": reason,
        "examples": props.get("examples") or {},
        "observed": props.get("observed", {}),
        "arguments": props.get("arguments", {}),
        "inventory": props.get("inventory"),
        "pool": props.get("pool"),
        "duration_s": round(rep.duration, 3),
        "reproducer": _reproducer(rep) if rep.outcome == "failed" else "",
    }


def _reproducer(rep):
    """The "Reproducer (numpy + keras):" snippet of a failure message ("" when it has none):
    ``rnnspec repro CLAIM --report R.json`` prints it back."""
    import textwrap
    text = getattr(rep, "longreprtext", "") or ""
    lines = [line[1:] for line in text.splitlines() if line == "E" or line.startswith("E ")]
    for i, line in enumerate(lines):
        if "Reproducer (numpy + keras):" in line:
            body = []
            for rest in lines[i + 1:]:
                if rest.strip().startswith(("Falsifying example", "You can reproduce")):
                    break
                body.append(rest)
            return textwrap.dedent("\n".join(body)).strip() + "\n"
    return ""


def _first_line(rep):
    """The first informative error line (TF graph errors open with "ValueError: in user code:")."""
    text = getattr(rep, "longreprtext", "") or ""
    lines = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    lines = [line for line in lines if line and not line.endswith("in user code:")
             and not line.startswith("File ") and not set(line) <= set("+-| ")]
    if lines:
        first = lines[0]
        if first.endswith(":") and len(lines) > 1:   # e.g. "ValueError: Exception encountered when calling ...:"
            first = f"{first} {lines[1]}"
        return first[:300]
    return text.strip().splitlines()[-1][:300] if text.strip() else ""


# --------------------------------------------------------------------------- aggregation

#: the example counts of a claim (besides ``models``, per divergence id)
EXAMPLE_COUNTS = ("drawn", "formulas", "refused", "unsupported", "harness_gap", "unasserted")


def _add_examples(total, ex):
    for k in EXAMPLE_COUNTS:
        total[k] = total.get(k, 0) + int(ex.get(k, 0) or 0)
    models = total.setdefault("models", {})
    for div_id, n in (ex.get("models") or {}).items():
        models[div_id] = models.get(div_id, 0) + n


def variant_of(nodeid):
    """The parameters of a node without the pool entry (``[cpu-pool07]`` -> ``cpu``; ``""`` for none)."""
    key = claim_key(nodeid)
    return key[len(claim_of(nodeid)):].strip("[]")


def _asserted(ex):
    """Examples that ended in an outcome for this entry (the pool counts an entry as run)."""
    return sum(int(ex.get(k, 0) or 0) for k in ("formulas", "refused", "unsupported")) \
        + sum((ex.get("models") or {}).values())


def aggregate(results):
    """``{claim id: claim}`` from per-node results.

    The key is the test id without parameters, stable when the pool or a
    parametrization changes. A claim holds its ``variants`` (the parameters
    other than the pool entry, e.g. the device) with their own outcome, and
    the worst outcome among the variants that ran (a skipped GPU variant
    does not make a passing CPU claim "skipped"); examples are summed; for a
    pooled claim, ``pool.run`` lists the entries run in every variant that ran.
    """
    claims = {}
    for nodeid, r in sorted(results.items()):
        c = claims.setdefault(claim_of(nodeid), {
            "title": r["title"], "outcome": None, "reasons": [], "nodes": 0, "variants": {},
            "examples": {"models": {}}, "observed": {}, "arguments": {}, "duration_s": 0.0})
        c["nodes"] += 1
        v = c["variants"].setdefault(variant_of(nodeid), {"outcome": None, "reasons": [], "examples": {"models": {}}})
        v["outcome"] = outcomes.worst([v["outcome"], r["outcome"]])
        for target in (c, v):
            if r["reason"] and r["reason"] not in target["reasons"]:
                target["reasons"].append(r["reason"])
            _add_examples(target["examples"], r["examples"])
        if r.get("reproducer"):
            c.setdefault("reproducers", []).append({"node": nodeid, "reason": r["reason"], "code": r["reproducer"]})
        for k, values in r["observed"].items():
            seen = c["observed"].setdefault(k, [])
            seen += [x for x in values if x not in seen]
        for k, values in (r.get("arguments") or {}).items():
            seen = c["arguments"].setdefault(k, [])
            seen += [x for x in values if x not in seen and len(seen) < 2]
        c["duration_s"] = round(c["duration_s"] + r["duration_s"], 3)
        if r.get("pool"):
            name, index = r["pool"]
            pool = v.setdefault("pool", {"name": name, "run": []})
            if _asserted(r["examples"]) and index not in pool["run"]:
                pool["run"].append(index)
    for c in claims.values():
        ran = {k: v for k, v in c["variants"].items() if v["outcome"] not in ("skipped", "unsupported")}
        c["outcome"] = outcomes.worst(v["outcome"] for v in (ran or c["variants"]).values())
        pools = [v["pool"] for v in ran.values() if "pool" in v]
        for v in c["variants"].values():
            if "pool" in v:
                v["pool"]["run"].sort()
        if pools:
            common = set(pools[0]["run"]).intersection(*(p["run"] for p in pools[1:]))
            c["pool"] = {"name": pools[0]["name"], "run": sorted(common)}
        if list(c["variants"]) == [""]:
            del c["variants"]   # an unparametrized claim
    return claims


def pool_coverage(claims):
    """Per pooled claim: entries run / total, and the pairs and triples of values executed / covered."""
    from rnnspec.spec.pool import POOLS, coverage, named_pool
    out = {}
    for key, c in claims.items():
        if "pool" not in c:
            continue
        shapes = named_pool(c["pool"]["name"])
        cov = coverage(shapes, c["pool"]["run"], POOLS[c["pool"]["name"]].get("triples", True))
        c["pool"].update(entries=len(shapes), pairs=cov["pairs"], triples=cov["triples"])
        out[key] = {"pool": c["pool"]["name"], "entries": len(shapes), "run": len(c["pool"]["run"]),
                    "pairs": cov["pairs"], "triples": cov["triples"]}
    return out


def argument_coverage(results, claims, env):
    """Argument coverage (``spec/arguments.py``) when spec/test_contract.py ran and read the
    inventory; it adds the claim :data:`~rnnspec.spec.arguments.EXERCISED_CLAIM` to ``claims``."""
    documented = next((r["inventory"] for r in results.values() if r.get("inventory")), None)
    if documented is None:
        return {}
    from rnnspec.spec import arguments
    cov = arguments.coverage([tuple(d) for d in documented], claims, env)
    missing = [f"{r['class']}.{r['argument']}" for r in cov["rows"] if r["status"] == "unexercised"]
    from hypothesis import settings
    drawn = settings().max_examples
    if drawn < arguments.MIN_EXAMPLES_TO_JUDGE:
        cov["judged"] = False
        claims[arguments.EXERCISED_CLAIM] = _exercised_claim(
            "skipped", f"the profile draws {drawn} examples per claim; argument coverage is judged in profiles "
                       f"that draw at least {arguments.MIN_EXAMPLES_TO_JUDGE} (ci, thorough, nightly)"
                       + (f"; here unexercised: {', '.join(missing)}" if missing else ""), drawn=0)
        return cov
    cov["judged"] = True
    claims[arguments.EXERCISED_CLAIM] = _exercised_claim(
        "failed" if missing else "passed",
        f"never exercised with two values by the claims mapped to them: {', '.join(missing)}" if missing else "",
        drawn=1)
    return cov


def _exercised_claim(outcome, reason, drawn):
    """The report entry of :data:`~rnnspec.spec.arguments.EXERCISED_CLAIM`, which no test function holds."""
    return {
        "title": "Every mapped argument is passed by its claims with at least two different values.",
        "outcome": outcome, "reasons": [reason] if reason else [],
        "nodes": 1, "variants": {}, "observed": {}, "arguments": {}, "duration_s": 0.0,
        "examples": {"drawn": drawn, "formulas": int(outcome == "passed"), "models": {}, "refused": 0,
                     "unsupported": 0, "unasserted": 0},
    }


def totals(claims):
    t = {"models": {}}
    for c in claims.values():
        _add_examples(t, c["examples"])
    t["claims_by_outcome"] = dict(Counter(c["outcome"] for c in claims.values()))
    return t


def pytest_sessionfinish(session, exitstatus):
    state = session.config._rnnspec
    if hasattr(session.config, "workerinput") or not _RESULTS:
        return  # xdist workers: the controller writes the report
    try:
        state["env"] = state["env"] or environment()
    except ImportError:
        return  # no Keras installed: only the reference tests ran
    claims = aggregate(_RESULTS)
    ids = set(claims)
    import fnmatch
    stale = [d["id"] for d in load_divergences()
             if divergence_applies(d, state["env"])
             and not any(fnmatch.fnmatch(c, p) for c in ids for p in d["claims"])]
    state["stale"] = stale
    state["claims"] = claims
    pools = pool_coverage(claims) if any("pool" in c for c in claims.values()) else {}
    arguments = argument_coverage(_RESULTS, claims, state["env"])
    if arguments and arguments.get("judged") and arguments["counts"].get("unexercised") \
            and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    path = Path(report_path(session.config))
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "schema": SCHEMA,
        "environment": state["env"],
        "profile": os.environ.get("RNNSPEC_PROFILE") or session.config.getoption("hypothesis_profile", None) or "dev",
        "wall_time_s": round(time.time() - state["start"], 1),
        "claims": claims,
        "pools": pools,
        "arguments": arguments,
        "totals": totals(claims),
        "unmatched_divergence_entries": stale,
    }
    path.write_text(json.dumps(payload, indent=1, sort_keys=True))
    state["written"] = str(path)
    state["totals"] = payload["totals"]
    state["pools"] = pools
    state["arguments"] = arguments


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = config._rnnspec
    tr = terminalreporter
    claims = state.get("claims") or {}
    if claims and any(k.startswith("spec/") for k in claims):
        t = state["totals"]
        tr.write_sep("-", "rnnspec outcomes")
        by = t["claims_by_outcome"]
        tr.write_line("claims: " + ", ".join(f"{by[o]} {o}" for o in outcomes.OUTCOMES if by.get(o)))
        tr.write_line(f"examples: {t['drawn']} drawn; {t['formulas']} asserted against the formulas, "
                      f"{sum(t['models'].values())} against divergence models, {t['refused']} refused as "
                      f"documented, {t['unsupported']} unsupported, {t['harness_gap']} in a harness gap; "
                      f"{t['unasserted']} not asserted")
        gaps = [(k, c) for k, c in claims.items() if c["outcome"] == "harness-gap"]
        for k, c in gaps:
            tr.write_line(f"  harness gap: {k}: {(c['reasons'] or [''])[0][:200]}")
        for key, p in sorted((state.get("pools") or {}).items()):
            tr.write_line(f"pool {p['pool']}: {p['run']}/{p['entries']} entries run, pairs "
                          f"{p['pairs'][0]}/{p['pairs'][1]}, triples {p['triples'][0]}/{p['triples'][1]} "
                          f"[{key.split('::')[-1]}]")
        cov = state.get("arguments")
        if cov:
            tr.write_line(f"arguments: {cov['mapped']}/{cov['documented']} documented arguments mapped, "
                          f"{cov['exercised']}/{cov['in_scope']} in scope exercised with two values "
                          f"({', '.join(f'{n} {s}' for s, n in sorted(cov['counts'].items()))})")
        bad = [(k, c) for k, c in claims.items() if c["outcome"] in outcomes.GATE_FAILING]
        for k, c in bad:
            tr.write_line(f"  {c['outcome'].upper()}: {k}: {(c['reasons'] or [''])[0][:200]}")
    stale = state.get("stale", [])
    if stale:
        tr.write_sep("-", "known-divergence entries that match no collected claim")
        for entry_id in stale:
            tr.write_line(f"  {entry_id}")
    if state.get("written"):
        tr.write_line(f"rnnspec: conformance report written to {state['written']}")
