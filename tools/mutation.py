"""Mutation testing: does the suite catch each fault of the catalogue?

    python -m rnnspec.tools.mutation --all
    python -m rnnspec.tools.mutation --faults lstm_gate_order_if,gru_update_convention --jobs 2
    python -m rnnspec.tools.mutation --all --spec-args "spec/test_equivalence.py"

Runs the spec suite (``pytest spec``, profile ``ci``, ``-x``) once with no
fault -- that run must pass -- and once per fault in a subprocess with
``-p rnnspec.faults.plugin`` and ``RNNSPEC_FAULT=<name>``. A fault is *caught* when
its run fails a claim; the first failed test id and its first assertion line
(from the conformance report, ``--report-json``) say which claim and how.
Prints a table, writes JSON (``docs/mutation-results.json`` unless ``--out``),
and exits non-zero if any fault escapes, a run errors, or the clean run fails.

The clean run runs without ``-x`` so that it lists every claim that fails
without a fault. If any do, the fault runs deselect them (a fault "caught"
by a claim that fails anyway proves nothing) and the exit status is non-zero.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rnnspec.spec.outcomes import FINDINGS  # (standard library only)

#: the checkout (rnnspec installed editable): the suite's paths (``spec``) and docs/ are relative to it
ROOT = Path(__file__).resolve().parent.parent

DEFAULT_OUT = ROOT / "docs" / "mutation-results.json"


def _catalogue():
    from rnnspec.faults.catalogue import CATALOGUE
    return CATALOGUE


def keras_major(python):
    """The Keras major version that ``python`` imports (without importing it here)."""
    code = "from rnnspec.spec import adapter; print(adapter.KERAS_MAJOR, adapter.KERAS_VERSION)"
    out = subprocess.run([python, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"cannot import rnnspec.spec.adapter with {python}:\n{out.stderr[-2000:]}")
    major, version = out.stdout.split()[-2:]
    return int(major), version


# Claims that catch most faults quickly run first: a fault is then attributed to
# the most basic claim it breaks, and its run stops within seconds (-x). The
# model.predict-based composition claims are ~10x slower per example.
FIRST = ("test_equivalence.py", "test_structure.py")


def ordered(spec_args):
    """Expand a directory argument (``spec``) into its test files, the fast direct claims first."""
    out = []
    for arg in spec_args:
        path = ROOT / arg
        if not arg.startswith("-") and "::" not in arg and path.is_dir():
            files = sorted(p.name for p in path.glob("test_*.py"))
            files = [f for f in FIRST if f in files] + [f for f in files if f not in FIRST]
            out += [str(Path(arg) / f) for f in files]
        else:
            out.append(arg)
    return out


def run_suite(python, spec_args, *, fault=None, profile="ci", stop_first=True, deselect=(),
              timeout=1800, extra_env=None):
    """One pytest run; returns a result dict (status caught/escaped/passed/failed/error)."""
    with tempfile.TemporaryDirectory(prefix="rnnspec-mut-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [python, "-m", "pytest", *spec_args, "-p", "rnnspec.faults.plugin",
               "-p", "no:cacheprovider", "--report-json", str(report)]
        if stop_first:
            cmd.append("-x")
        for nodeid in deselect:
            cmd += ["--deselect", nodeid]
        env = dict(os.environ, RNNSPEC_PROFILE=profile, TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("RNNSPEC_FAULT", None)
        if fault:
            env["RNNSPEC_FAULT"] = fault
        env.update(extra_env or {})
        start = time.time()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout)
            code, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            code, output = None, f"timed out after {timeout}s\n{exc.stdout or ''}"
        wall = round(time.time() - start, 1)
        claims = json.loads(report.read_text())["claims"] if report.exists() else {}

    # a fault is caught by a finding (failed, crashed, fixed); a harness error is ours, not a catch
    failed = [(claim, c) for claim, c in claims.items() if c["outcome"] in FINDINGS]
    harness = [(claim, c) for claim, c in claims.items() if c["outcome"] == "harness-error"]
    res = {"fault": fault, "exit_code": code, "wall_s": wall,
           "claims_run": len(claims),
           "examples": sum((c.get("examples") or {}).get("drawn", 0) for c in claims.values()),
           "failed": [{"claim": n, "outcome": c["outcome"], "reason": (c["reasons"] or [""])[0]}
                      for n, c in failed + harness]}
    if fault and "rnnspec: injected fault " + fault not in output:
        res.update(status="error", detail="the plugin did not report the fault as injected")
    elif code == 1 and failed:
        reason = _reason((failed[0][1]["reasons"] or [""])[0], output)
        res.update(status="caught" if fault else "failed", claim=failed[0][0], outcome=failed[0][1]["outcome"],
                   reason=reason, by_assertion=failed[0][1]["outcome"] in ("failed", "fixed"))
    elif code == 1 and harness:
        res.update(status="error", claim=harness[0][0],
                   detail=f"harness error, not a catch: {(harness[0][1]['reasons'] or [''])[0]}")
    elif code == 0:
        res.update(status="escaped" if fault else "passed")
    else:
        res.update(status="error")
    if res["status"] in ("error", "failed"):
        res["output_tail"] = output[-4000:]
    return res


_EXC_LINE = re.compile(r"^[E|\s]*((?:\w+\.)*\w*(?:Error|Exception|Failed)\b.*\S)")


def _reason(reported, output):
    """The first assertion line: the report's, or (for a Hypothesis exception group,
    whose first ``E`` line is a box border) the first exception line of the output."""
    if re.search(r"[A-Za-z]{3}", reported or ""):
        return reported
    for line in output.splitlines():
        m = _EXC_LINE.match(line)
        if m:
            return m.group(1)[:300]
    return reported


def _short(text, n):
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[:n - 1] + "…"


def table(rows):
    lines = [f"{'fault':40} {'result':8} {'time':>7}  caught by / note"]
    lines.append("-" * 118)
    for r in rows:
        if r["status"] == "caught":
            crash = "" if r.get("by_assertion", True) else "[not an assertion: check the fault] "
            note = crash + f"{r['claim'].split('::')[-1]} ({r['claim'].split('::')[0]}): {_short(r['reason'], 200)}"
        elif r["status"] == "escaped":
            note = f"ESCAPED; expected catcher: {r.get('expected', '?')}"
        elif r["status"] == "unsupported":
            note = r.get("detail", "")
        else:
            note = _short(r.get("detail") or r.get("output_tail", "")[-300:], 200)
        lines.append(f"{r['fault']:40} {r['status']:8} {r['wall_s']:6.1f}s  {note}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m rnnspec.tools.mutation", description=__doc__.split("\n\n")[0])
    sel = ap.add_mutually_exclusive_group(required=True)
    sel.add_argument("--all", action="store_true", help="every fault in the catalogue")
    sel.add_argument("--faults", help="comma-separated fault names")
    ap.add_argument("--jobs", "-j", type=int, default=1, help="parallel pytest runs (default 1)")
    ap.add_argument("--spec-args", default="spec",
                    help="pytest arguments selecting the suite (default 'spec'), e.g. "
                         "'spec/test_equivalence.py spec/test_stateful.py'")
    ap.add_argument("--profile", default="ci", help="RNNSPEC_PROFILE for every run (default ci)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON results (default {DEFAULT_OUT.relative_to(ROOT)})")
    ap.add_argument("--python", default=sys.executable, help="interpreter whose Keras is tested")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per pytest run")
    ap.add_argument("--keep-order", action="store_true",
                    help="run directories in pytest's order (default: spec/test_equivalence.py and "
                         "spec/test_structure.py first, the rest alphabetically)")
    ap.add_argument("--skip-clean", action="store_true", help="do not run the suite without a fault")
    args = ap.parse_args(argv)

    catalogue = _catalogue()
    known = {f.name: f for f in catalogue}
    if args.all:
        chosen = list(catalogue)
    else:
        wanted = [n.strip() for n in args.faults.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in known]
        if unknown:
            ap.error(f"unknown fault(s) {unknown}; known: {', '.join(known)}")
        chosen = [known[n] for n in wanted]
    spec_args = shlex.split(args.spec_args)
    if not args.keep_order:
        spec_args = ordered(spec_args)
    major, version = keras_major(args.python)
    print(f"rnnspec mutation: Keras {version} via {args.python}; suite: pytest {' '.join(spec_args)} "
          f"-x (profile {args.profile}); {len(chosen)} fault(s), {args.jobs} job(s)", flush=True)

    start = time.time()
    clean = None
    deselect = []
    if not args.skip_clean:
        clean = run_suite(args.python, spec_args, profile=args.profile, stop_first=False,
                          timeout=args.timeout)
        deselect = [f["claim"] for f in clean["failed"]]   # pytest deselects by node-id prefix
        print(f"clean run: {clean['status']} ({clean['claims_run']} claims, {clean['wall_s']}s)", flush=True)
        for f in clean["failed"]:
            print(f"  FAILS WITHOUT A FAULT ({f['outcome']}): {f['claim']}\n    {f['reason']}", flush=True)
        if clean["status"] == "error":
            print(clean.get("output_tail", "")[-3000:], flush=True)

    def one(f):
        if not f.supported(major):
            return {"fault": f.name, "status": "unsupported", "wall_s": 0.0,
                    "detail": f"implemented for Keras {f.majors}, not {major}"}
        r = run_suite(args.python, spec_args, fault=f.name, profile=args.profile,
                      deselect=deselect, timeout=args.timeout)
        print(f"  {f.name}: {r['status']} ({r['wall_s']}s)", flush=True)
        return r

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(one, chosen))
    for f, r in zip(chosen, rows):
        r.update(imitates=f.imitates, majors=list(f.majors), expected=f.expected, region=f.region)

    applicable = [r for r in rows if r["status"] != "unsupported"]
    caught = [r for r in applicable if r["status"] == "caught"]
    escaped = [r for r in applicable if r["status"] == "escaped"]
    errors = [r for r in applicable if r["status"] == "error"]
    print()
    print(table(rows))
    print()
    print(f"caught {len(caught)}/{len(applicable)}; escaped: {', '.join(r['fault'] for r in escaped) or 'none'}"
          + (f"; errors: {', '.join(r['fault'] for r in errors)}" if errors else "")
          + (f"; clean run: {clean['status']}" if clean else "; clean run skipped")
          + (f" ({len(deselect)} clean-failing test(s) deselected in fault runs)" if deselect else "")
          + f"; total {time.time() - start:.0f}s")

    env = None
    try:
        env = json.loads(subprocess.run(
            [args.python, "-c", "import json; from rnnspec.spec.report import environment; print(json.dumps(environment()))"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")).stdout.strip().splitlines()[-1])
    except Exception:
        pass
    payload = {"environment": env, "keras": version, "profile": args.profile, "spec_args": spec_args,
               "clean": clean, "deselected_in_fault_runs": deselect,
               "summary": {"caught": len(caught), "applicable": len(applicable), "total": len(rows),
                           "escaped": [r["fault"] for r in escaped], "errors": [r["fault"] for r in errors]},
               "faults": rows, "wall_time_s": round(time.time() - start, 1)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1))
    print(f"results written to {out}")
    ok = not escaped and not errors and (clean is None or clean["status"] == "passed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
