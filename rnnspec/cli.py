"""The ``rnnspec`` command (entry point ``rnnspec = rnnspec.cli:main``).

    rnnspec run [--profile ci|dev|thorough|nightly|sweep] [--report OUT.json] [-- PYTEST ARGS]
    rnnspec report merge REPORTS... [-o matrix.md]
    rnnspec report diff OLD.json NEW.json [-o note.md]     # an upgrade note
    rnnspec report guide REPORTS... [-o DIR]               # the behavior guide (static HTML)
    rnnspec gate --baseline BASE CURRENT...                 # exit 1 on a new failure or divergence
    rnnspec repro ID [--report R.json]                      # print a reproducer

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


if __name__ == "__main__":
    main()
