"""The ``rnnspec`` command (entry point ``rnnspec = rnnspec.cli:main``).

    rnnspec run [--profile ci|dev|thorough|nightly|sweep] [--report OUT.json] [-- PYTEST ARGS]
    rnnspec report merge REPORTS... [-o matrix.md]
    rnnspec report diff OLD.json NEW.json [-o note.md]     # an upgrade note
    rnnspec report guide REPORTS... [-o DIR]               # the behavior guide (static HTML)
    rnnspec report timeline REPORTS... [-o DIR]            # per backend: claims x Keras releases
    rnnspec gate --baseline BASE CURRENT...                 # exit 1 on a new failure or divergence
    rnnspec repro ID [--report R.json]                      # print a reproducer
    rnnspec sweep --backend B [--keras SPEC] [--every patch|minor] [--jobs N] [-o DIR]
    rnnspec bisect --claim ID --good A --bad B --backend B  # which release changed a claim

Exit status: 0 fine; 1 the spec failed / the gate failed; 2 bad input (a
missing or corrupt report, a report of another rnnspec version, an unknown
profile, no Keras installed), with a message saying what to do.
"""

import importlib.util
import os
import subprocess
import sys

import click

from rnnspec import __version__

PROFILES = ("ci", "dev", "thorough", "nightly", "debug", "sweep")


class BadInput(click.ClickException):
    """Bad input: the message on stderr, exit status 2."""
    exit_code = 2

    def format_message(self):
        return self.message


def _load(args, exclude=()):
    from rnnspec.tools.report import load_reports
    try:
        return load_reports(args, exclude)
    except (OSError, ValueError) as exc:
        raise BadInput(str(exc)) from None


def _write(text, output):
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w") as fh:
            fh.write(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rnnspec")
def main():
    """rnnspec: an executable specification of Keras recurrent layers.

    Run it against the Keras installed here, compare reports across versions,
    gate upgrades in CI, and read the behavior guide.
    """


# --------------------------------------------------------------------------- run

def keras_installed():
    """The name of the importable Keras package, or None."""
    name = "tf_keras" if os.environ.get("TF_USE_LEGACY_KERAS") == "1" else "keras"
    return name if importlib.util.find_spec(name) is not None else None


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--profile", type=click.Choice(PROFILES), default=None,
              help="Hypothesis profile: ci (40 examples, deterministic), dev (15), thorough (600), "
                   "nightly (600 + example database), sweep (10, deterministic; the release sweep). "
                   "Default: $RNNSPEC_PROFILE, else ci.")
@click.option("--report", "report", default="rnnspec-report.json", show_default=True,
              help="where to write the conformance report (JSON, schema 2)")
@click.option("--env-name", default=None,
              help="the environment's name in the report (what `rnnspec gate` pairs reports by); "
                   "default $RNNSPEC_ENV, else 'local'")
@click.option("-n", "--workers", default="0", show_default=True,
              help="pytest-xdist workers (a number or 'auto')")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def run(profile, report, env_name, workers, pytest_args):
    """Run the spec against the Keras installed in this Python.

    Prints the header (versions, backend, devices, profile), pytest's progress,
    the outcomes, and writes the report. Arguments after `--` go to pytest,
    e.g. `rnnspec run -- -k structure -x`. Exit status: pytest's (0: every
    claim passed, diverged as listed, refused as documented or was skipped).
    """
    env_profile = os.environ.get("RNNSPEC_PROFILE")
    if profile is None:
        if env_profile and env_profile not in PROFILES:
            raise BadInput(f"unknown profile {env_profile!r} in $RNNSPEC_PROFILE; "
                           f"choose one of {', '.join(PROFILES)}")
        profile = env_profile or "ci"
    if keras_installed() is None:
        raise BadInput("no Keras is installed in this Python "
                       f"({sys.executable}): install rnnspec with the extra of the Keras to test, "
                       "e.g. pip install 'rnnspec[tf]' (TensorFlow + Keras 3), [jax], [torch], "
                       "or [keras2] (TensorFlow 2.12-2.15, tf.keras)")
    env = dict(os.environ, RNNSPEC_PROFILE=profile)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if env_name:
        env["RNNSPEC_ENV"] = env_name
    cmd = [sys.executable, "-m", "pytest", "--pyargs", "rnnspec.spec", "-p", "no:cacheprovider",
           "--report-json", report]
    if str(workers) != "0":
        cmd += ["-n", str(workers)]
    cmd += list(pytest_args)
    click.echo(f"rnnspec {__version__}: {' '.join(cmd[1:])}", err=True)
    rc = subprocess.call(cmd, env=env)
    if rc in (3, 4):   # pytest: internal error / usage error
        sys.exit(2)
    sys.exit(rc)


# --------------------------------------------------------------------------- report

@main.group()
def report():
    """Merge, compare and render conformance reports."""


@report.command()
@click.argument("reports", nargs=-1, required=True)
@click.option("-o", "--output", help="write here instead of stdout")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="leave out matched files with this name pattern, e.g. latest.json")
@click.option("--claims", multiple=True, metavar="PREFIX", help="only claims whose id starts with PREFIX")
def merge(reports, output, exclude, claims):
    """A Markdown matrix of REPORTS (files, directories, glob patterns): a row per claim, a column per environment."""
    from rnnspec.tools import report as tool
    loaded = _load(reports, exclude)
    _write(tool.merge(loaded, tool.load_divergence_entries(), claims), output)


@report.command()
@click.argument("old")
@click.argument("new")
@click.option("-o", "--output", help="write here instead of stdout")
@click.option("--compat", "compat", type=click.Path(dir_okay=False), default=None,
              help="the compatibility matrix (cells.json); default: the checkout's docs/compat/cells.json")
def diff(old, new, output, compat):
    """An upgrade note for moving from the Keras of OLD to that of NEW.

    Conventions that differ, known divergences that appear or disappear,
    claims whose status changed, and (where the compatibility matrix has both
    environments) whether files saved under OLD load under NEW.
    """
    from rnnspec.tools import upgrade
    (a,), (b,) = _load([old]), _load([new])
    try:
        cells = upgrade.load_compat_cells(compat) if compat else None
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if compat and cells is None:
        raise BadInput(f"no such compatibility matrix: {compat}")
    _write(upgrade.upgrade_note(a, b, compat=cells), output)


@report.command()
@click.argument("reports", nargs=-1, required=True)
@click.option("-o", "--output", default="rnnspec-guide", show_default=True, help="the site's folder")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="leave out matched files with this name pattern")
def guide(reports, output, exclude):
    """Render the behavior guide (static HTML) from REPORTS, the chapters and spec/data/."""
    from rnnspec import guide as site
    loaded = _load(reports, exclude)
    pages = site.render(loaded, output)
    click.echo(f"wrote {len(pages)} pages to {output}/ (open {os.path.join(output, 'index.html')})", err=True)


@report.command()
@click.argument("reports", nargs=-1, required=True)
@click.option("-o", "--output", default="rnnspec-timeline", show_default=True,
              help="the folder for <backend>.md and <backend>.json (the project's: docs/conformance/timeline)")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="leave out matched files with this name pattern")
def timeline(reports, output, exclude):
    """Per backend, a row per claim and per divergence, a column per Keras release, from REPORTS
    (e.g. reports/sweep/*.json; the sweep's *.status files beside them mark releases that could
    not be installed), with each divergence's and finding's first bad and first fixed release."""
    from rnnspec.tools import report as tool
    from rnnspec.tools import timeline as tl
    loaded = _load(reports, exclude)
    statuses = tl.statuses_beside(tool.expand_paths(reports, exclude))
    written = tl.write(tl.build(loaded, statuses), output)
    for path in written:
        click.echo(f"wrote {path}", err=True)


# --------------------------------------------------------------------------- gate

@main.command()
@click.option("--baseline", "baseline", multiple=True, required=True,
              help="the baseline report(s): a file, a directory of reports or a glob (repeatable)")
@click.argument("current", nargs=-1, required=True)
def gate(baseline, current):
    """Fail (exit 1) on a new failure or a new divergence in CURRENT against the baseline,
    on a stale CURRENT column (run by another spec) and on a hollow pass.

    Reports are paired by environment name. Fixed claims and divergences are
    listed; they do not fail the gate. Never-gating columns (nightly-*, sweep-*)
    are reported only.
    """
    from rnnspec.tools import upgrade
    empty = [b for b in baseline if os.path.isdir(b) and not any(n.endswith(".json") for n in os.listdir(b))]
    if empty and len(empty) == len(baseline):
        # a first run: the baseline folder exists and holds no report yet (docs/ci/README.md, step 3)
        click.echo(f"rnnspec gate: the baseline {', '.join(empty)} holds no report yet: every environment "
                   "is gated as a new one (commit this run's reports there to set the baseline)")
        base = []
    else:
        base = _load(baseline)
    cur = _load(current)
    try:
        text, status = upgrade.gate(base, cur, annotate=os.environ.get("GITHUB_ACTIONS") == "true")
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    click.echo(text, nl=False)
    sys.exit(status)


# --------------------------------------------------------------------------- repro

@main.command()
@click.argument("ident", metavar="ID")
@click.option("--report", "report_path", default=None,
              help="a report: ID may then be one of its failing claims (or part of its id)")
def repro(ident, report_path):
    """Print the reproducer of a listed divergence or finding, or of a failing claim of a report."""
    from rnnspec.tools.repro import repro as find
    loaded = _load([report_path])[0] if report_path else None
    try:
        click.echo(find(ident, loaded), nl=False)
    except LookupError as exc:
        raise BadInput(str(exc.args[0])) from None


# --------------------------------------------------------------------------- sweep

@main.command()
@click.option("--backend", required=True, type=click.Choice(("torch", "jax", "tensorflow")))
@click.option("--keras", "keras_spec", default=">=3.0,<4", show_default=True,
              help="which Keras releases (a PEP 440 specifier over tools/data/sweep.toml's list)")
@click.option("--every", type=click.Choice(("patch", "minor")), default="patch", show_default=True,
              help="every release, or the latest patch of each minor")
@click.option("-j", "--jobs", default=1, show_default=True, help="releases run at a time")
@click.option("-o", "--output", default="reports/sweep", show_default=True,
              help="the folder for <backend>-keras<version>.json, .status and logs/")
@click.option("--venvs", default=None, help="where the environments are built and kept "
              "(default ~/.cache/rnnspec/sweep-venvs)")
@click.option("--python", "python", default=None, help="the environments' Python (default: the data file's, 3.11)")
@click.option("--timeout", default=7200, show_default=True, help="seconds per release's spec run")
@click.option("--retry-failed", is_flag=True, help="try again the releases whose environment could not be built")
@click.option("--list", "list_only", is_flag=True, help="print the releases as a JSON list and exit "
              "(a CI matrix: docs/ci/sweep.yml)")
@click.option("--dry-run", is_flag=True, help="print each release's pair and whether it would run; build nothing")
def sweep(backend, keras_spec, every, jobs, output, venvs, python, timeout, retry_failed, list_only, dry_run):
    """Run the spec against every Keras release (one uv environment each, profile `sweep`).

    Resumable: a release whose report exists at the current spec hash is skipped. A release
    that cannot be installed is recorded in its .status file with uv's reason.
    """
    import json
    from rnnspec.tools import sweep as tool
    try:
        versions = tool.release_list(keras_spec, every)
        pairs = [tool.pair(v, backend, python=python) for v in versions]
    except (ValueError, LookupError) as exc:
        raise BadInput(str(exc)) from None
    if list_only:
        click.echo(json.dumps(versions))
        return
    if not pairs:
        raise BadInput(f"no Keras release in the sweep's list matches {keras_spec!r}")
    if not tool.is_checkout():
        raise BadInput(f"rnnspec sweep installs the rnnspec checkout into every environment, and "
                       f"{tool.ROOT} is not one: run it from a checkout installed with pip install -e .")
    if dry_run:
        spec_hash = tool.checkout_hash()
        for p in pairs:
            current = tool.recorded_hash(tool.report_path(output, p)) == spec_hash
            click.echo(f"{p.name}: {' '.join(p.requirements)} (python {p.python}"
                       + (f", find-links {p.find_links}" if p.find_links else "") + ")"
                       + (": report current, skipped" if current else ""))
        return
    try:
        envs = tool.UvEnvironments(venvs) if venvs else tool.UvEnvironments()
    except tool.InstallError as exc:
        raise BadInput(str(exc)) from None
    tool.sweep(pairs, output, jobs=jobs, envs=envs, retry_failed=retry_failed, timeout=timeout,
               echo=lambda line: click.echo(line, err=True))


# --------------------------------------------------------------------------- bisect

@main.command()
@click.option("--claim", required=True, help="the claim id, e.g. spec/test_equivalence.py::test_layer_matches_reference")
@click.option("--good", required=True, help="a Keras release with the old outcome")
@click.option("--bad", required=True, help="a later Keras release with the new outcome")
@click.option("--backend", required=True, type=click.Choice(("torch", "jax", "tensorflow")))
@click.option("--example", "example", default=None,
              help="a report in which the claim failed: run only its failing nodes")
@click.option("--timeline", "timeline_dir", default=None,
              help="a timeline folder (rnnspec report timeline); default the checkout's docs/conformance/timeline")
@click.option("--ignore-timeline", is_flag=True, help="bisect even where the timeline shows several changes")
@click.option("--venvs", default=None, help="the sweep's environments (default ~/.cache/rnnspec/sweep-venvs)")
@click.option("--timeout", default=3600, show_default=True, help="seconds per probe")
def bisect(claim, good, bad, backend, example, timeline_dir, ignore_timeline, venvs, timeout):
    """Find the first Keras release between GOOD and BAD where CLAIM's outcome changed.

    Prints the outcome at each step, the first bad release and the upstream compare range.
    Exit status: 0 found (or the timeline's changes listed), 1 the same outcome at both ends or
    an end that cannot be installed, 2 bad input.
    """
    from rnnspec.tools import bisect_releases as tool
    from rnnspec.tools import sweep as sw
    from rnnspec.tools import timeline as tl
    releases = sw.release_list(">=0")
    for v in (good, bad):
        if v not in releases:
            raise BadInput(f"Keras {v} is not in the sweep's release list (tools/data/sweep.toml)")
    folder = timeline_dir or tool.DEFAULT_TIMELINE
    t = tl.load(folder, backend)
    if timeline_dir and t is None:
        raise BadInput(f"no timeline for {backend} in {timeline_dir} (expected {backend}.json)")
    if t is not None and not ignore_timeline:
        found = tl.changes(t, claim, good, bad)
        if len(found) > 1:
            click.echo(f"the timeline ({folder}/{backend}.json) shows {claim} changing {len(found)} times "
                       f"between {good} and {bad}; one bisection would report only one of them:")
            for a, sa, b, sb in found:
                click.echo(f"  {a}: {tool.describe(sa)} -> {b}: {tool.describe(sb)}   {tool.compare_url(a, b)}")
            click.echo("narrow --good/--bad to one change, or pass --ignore-timeline")
            return
    if not sw.is_checkout():
        raise BadInput(f"rnnspec bisect installs the rnnspec checkout into each release's environment, "
                       f"and {sw.ROOT} is not one: run it from a checkout installed with pip install -e .")
    nodes = None
    if example:
        _load([example])   # a readable report of this schema, or exit 2
        nodes = tool.failing_nodes(example, claim)
        if not nodes:
            click.echo(f"{example} lists no failing node of {claim}: running the whole claim", err=True)
    try:
        envs = sw.UvEnvironments(venvs) if venvs else sw.UvEnvironments()
    except sw.InstallError as exc:
        raise BadInput(str(exc)) from None
    probe = tool.ClaimProbe(claim, backend, nodes=nodes, envs=envs, timeout=timeout)
    click.echo(f"bisecting {claim} on {backend} between {good} (good) and {bad} (bad)")
    try:
        res = tool.bisect(releases, good, bad, probe, echo=click.echo)
    except (LookupError, ValueError) as exc:
        raise BadInput(str(exc)) from None
    if res["status"] != "found":
        click.echo(res["detail"])
        sys.exit(1)
    click.echo(f"first bad release: {res['first_bad']} ({tool.describe(res['outcome'])}); "
               f"last good: {res['last_good']}")
    if res["between_untested"]:
        click.echo(f"not installable in between: {', '.join(res['between_untested'])}: the change is in "
                   f"one of the releases after {res['last_good']} up to {res['first_bad']}")
    click.echo(f"upstream: {tool.compare_url(res['last_good'], res['first_bad'])}")


if __name__ == "__main__":
    main()
