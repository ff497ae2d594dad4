"""``rnnspec bisect``: which Keras release changed one claim's outcome.

    rnnspec bisect --claim spec/test_x.py::test_y --good 3.8.0 --bad 3.12.4 --backend torch
                   [--example REPORT] [--timeline DIR]

A binary search over the Keras releases of ``tools/data/sweep.toml`` from
``--good`` to ``--bad``: each probe runs the claim (``pytest <claim id>``) in that
release's environment, the one ``rnnspec sweep`` builds and caches. An outcome is
the claim's outcome and the divergences its examples were asserted against
(:func:`rnnspec.tools.timeline.signature`); the first bad release is the first whose
outcome differs from ``--good``'s. A release whose environment cannot be built is
skipped (said so; the answer is then a range). With ``--example REPORT`` each probe
runs only the claim's nodes that failed in that report (its reproducers' node ids;
the profile is derandomized, so they draw the same examples).

Before probing: where a timeline (``rnnspec report timeline``, default the
checkout's ``docs/conformance/timeline/``) already has the claim in that range and
shows its outcome changing more than once, it lists those changes instead of
bisecting to one of them (``--ignore-timeline`` bisects anyway).
"""

import json
import tempfile
from pathlib import Path

from rnnspec.tools import sweep as _sweep
from rnnspec.tools import timeline as _timeline
from rnnspec.tools.report import claims_of, load_report

COMPARE = "https://github.com/keras-team/keras/compare/v{a}...v{b}"
DEFAULT_TIMELINE = _sweep.ROOT / "docs" / "conformance" / "timeline"


def compare_url(a, b):
    return COMPARE.format(a=a, b=b)


def describe(sig):
    if sig is None:
        return "not run"
    outcome, divs = sig
    return outcome + (f" ({', '.join(divs)})" if divs else "")


def failing_nodes(report_path, claim):
    """The node ids of ``claim`` that failed in the report (its reproducers); [] when none."""
    raw = json.loads(Path(report_path).read_text())
    c = (raw.get("claims") or {}).get(claim) or {}
    return [r["node"] for r in c.get("reproducers") or [] if r.get("node")]


class ClaimProbe:
    """``probe(version)`` -> the claim's signature in that release's environment
    (raises :class:`rnnspec.tools.sweep.InstallError` when it cannot be built)."""

    def __init__(self, claim, backend, nodes=None, envs=None, runner=_sweep.run_spec, timeout=None):
        self.claim, self.backend, self.nodes = claim, backend, list(nodes or [claim])
        self.envs, self.runner, self.timeout = envs or _sweep.UvEnvironments(), runner, timeout

    def __call__(self, version):
        p = _sweep.pair(version, self.backend)
        python = self.envs.python(p)
        with tempfile.TemporaryDirectory(prefix="rnnspec-bisect-") as tmp:
            report = Path(tmp) / "report.json"
            self.runner(python, p, report, args=self.nodes, timeout=self.timeout)
            if not report.exists():
                return ("no report", ())
            summary = claims_of(load_report(report)).get(self.claim)
        return _timeline.signature(summary) if summary else ("not run", ())


def bisect(releases, good, bad, probe, echo=print):
    """Binary search for the first release after ``good`` whose outcome differs from ``good``'s.

    ``releases``: every release in version order; ``probe(version)`` -> an outcome (any
    comparable value), raising :class:`~rnnspec.tools.sweep.InstallError` for an unbuildable
    release. Returns ``{"status": "found" | "same" | "untestable", "last_good", "first_bad",
    "skipped", "steps": [(release, outcome or None)]}``."""
    if good not in releases or bad not in releases:
        missing = [v for v in (good, bad) if v not in releases]
        raise LookupError(f"not in the sweep's release list: {', '.join(missing)}")
    lo, hi = releases.index(good), releases.index(bad)
    if lo >= hi:
        raise ValueError(f"--good {good} must be an earlier release than --bad {bad}")
    cands = list(releases[lo:hi + 1])
    steps, skipped = [], []

    def run(v):
        try:
            sig = probe(v)
        except _sweep.InstallError as exc:
            reason = (str(exc).strip().splitlines() or [""])[-1]
            echo(f"  {v}: not installable, skipped ({reason})")
            steps.append((v, None))
            skipped.append(v)
            return None
        steps.append((v, sig))
        return sig

    good_sig, bad_sig = run(good), run(bad)
    for v, sig in ((good, good_sig), (bad, bad_sig)):
        if sig is None:
            return {"status": "untestable", "steps": steps, "skipped": skipped, "last_good": None,
                    "first_bad": None, "detail": f"{v} could not be installed"}
    echo(f"  {good}: {describe(good_sig)}  (good)")
    echo(f"  {bad}: {describe(bad_sig)}  (bad)")
    if good_sig == bad_sig:
        return {"status": "same", "steps": steps, "skipped": skipped, "last_good": None, "first_bad": None,
                "detail": f"the same outcome in {good} and {bad}: nothing to bisect"}
    lo, hi = 0, len(cands) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        sig = run(cands[mid])
        if sig is None:
            del cands[mid]
            hi -= 1
            continue
        verdict = "good" if sig == good_sig else "bad"
        echo(f"  {cands[mid]}: {describe(sig)}  ({verdict})")
        if verdict == "good":
            lo = mid
        else:
            hi = mid
    last_good, first_bad = cands[lo], cands[hi]
    between = [v for v in skipped if releases.index(last_good) < releases.index(v) < releases.index(first_bad)]
    return {"status": "found", "steps": steps, "skipped": skipped, "last_good": last_good,
            "first_bad": first_bad, "between_untested": between,
            "outcome": dict(steps).get(first_bad)}
