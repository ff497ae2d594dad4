"""The release sweep: the spec against every Keras release, one environment each.

    rnnspec sweep --backend torch|jax|tensorflow [--keras ">=3.0,<4"] [--every patch|minor]
                  [--jobs N] [-o reports/sweep/] [--list] [--dry-run]

For each Keras release that ``tools/data/sweep.toml`` lists (and ``--keras`` admits;
``--every minor``: the latest patch of each minor) it

1. builds a virtual environment with uv (``uv venv``, ``uv pip install`` with
   ``UV_FIND_LINKS`` set: uv reads no pip configuration) holding this checkout
   (editable) and the release's pair (:func:`pair`): Keras, the backend, NumPy 1
   where needed. Environments are cached (``--venvs``) and reused while their
   requirements are unchanged; ``rnnspec bisect`` reuses them too;
2. runs ``python -m pytest spec --report-json <out>/<backend>-keras<version>.json``
   there with ``RNNSPEC_PROFILE=sweep``, ``RNNSPEC_ENV=sweep-<backend>-keras<version>``
   (a never-gating column, spec/data/columns.toml), ``KERAS_BACKEND`` and a private
   ``KERAS_HOME``;
3. writes ``<out>/<backend>-keras<version>.status`` (JSON, not ``*.json``, so report
   globs leave it out): ``ran`` (wall time, exit status), ``install-failed`` (uv's
   reason) or ``no-report`` (pytest wrote none: the tail of its output), and the
   pytest output to ``<out>/logs/``.

Resumable: a release whose report exists at the current spec hash
(``environment.spec_hash``) is skipped, and so is one whose status says its
environment could not be built with the same requirements (``--retry-failed``
tries again). N releases run at a time (``--jobs``). Building and running are
injectable (:func:`sweep`'s ``envs`` and ``runner``): tests fake them.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from rnnspec.spec import columns
from rnnspec.spec.versions import in_bounds
from rnnspec.tools import sweep_data

#: the checkout (rnnspec installed editable): installed into every environment, its spec/ run
ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("torch", "jax", "tensorflow")
DEFAULT_VENVS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnnspec" / "sweep-venvs"
#: the environment variables that would change what a run measures, cleared in every run
_CLEARED = ("TF_USE_LEGACY_KERAS", "RNNSPEC_FAULT", "RNNSPEC_PROFILE", "RNNSPEC_ENV", "VIRTUAL_ENV",
            "PYTHONPATH", "KERAS_BACKEND", "KERAS_HOME")


# --------------------------------------------------------------------------- releases and pairs

@dataclass(frozen=True)
class Pair:
    """One release's environment: what to install and how to run it."""
    backend: str
    keras: str
    requirements: tuple
    python: str
    find_links: str = ""
    extra_env: tuple = ()
    cpu_build: str = ""      # a distribution whose installed version must be a +cpu build

    @property
    def name(self):
        return f"{self.backend}-keras{self.keras}"

    @property
    def env_name(self):
        return f"sweep-{self.name}"


def release_list(spec=">=3.0,<4", every="patch", data=None):
    """The Keras releases of the data file that ``spec`` (a PEP 440 specifier) admits, in
    version order; ``every="minor"``: only the latest patch of each minor."""
    data = data or sweep_data.load()
    wanted = SpecifierSet(spec or "")
    found = sorted((Version(r["keras"]) for r in data["release"]), key=lambda v: v)
    found = [v for v in found if wanted.contains(v)]
    if every == "minor":
        latest = {}
        for v in found:
            latest[(v.major, v.minor)] = v
        found = sorted(latest.values())
    elif every != "patch":
        raise ValueError(f"--every {every!r}: choose patch or minor")
    return [str(v) for v in found]


def pair(version, backend, data=None, python=None):
    """The :class:`Pair` of Keras ``version`` on ``backend`` (rules: tools/data/sweep.toml)."""
    data = data or sweep_data.load()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    row = next((r for r in data["release"] if r["keras"] == version), None)
    if row is None:
        raise LookupError(f"Keras {version} is not in the sweep's release list ({sweep_data.DATA})")
    conf = data.get("backend", {}).get(backend, {})
    reqs = [f"keras=={version}"]
    if backend == "torch":
        reqs += conf["requirements"]
    elif backend == "jax":
        if not row.get("jax"):
            raise LookupError(f"no jax is paired with Keras {version} in {sweep_data.DATA}")
        reqs.append(f"jax[cpu]=={row['jax']}")
    else:
        tf = next((p for p in conf.get("pair", []) if in_bounds(version, p["keras"])), None)
        if tf is None:
            raise LookupError(f"no TensorFlow is paired with Keras {version} in {sweep_data.DATA}")
        reqs += tf["requirements"]
    if row.get("numpy"):
        reqs.append(f"numpy{row['numpy']}")
    extra = dict(conf.get("extra_env") or {}, KERAS_BACKEND=backend)
    links = conf.get("find_links", "")
    return Pair(backend, version, tuple(reqs), python or data.get("python", "3.11"),
                links if links and Path(links).is_dir() else "", tuple(sorted(extra.items())),
                conf.get("cpu_build", ""))


def report_path(out, p):
    return Path(out) / f"{p.name}.json"


def status_path(out, p):
    return Path(out) / f"{p.name}.status"


def is_checkout(root=ROOT):
    """Whether ``root`` is an rnnspec checkout (the sweep installs it into every environment)."""
    return (Path(root) / "pyproject.toml").is_file() and (Path(root) / "spec").is_dir()


def checkout_hash(root=ROOT):
    """The spec hash of the checkout the environments install (what their reports will record)."""
    return columns.hash_of({prefix: Path(root) / prefix for prefix in columns.SPEC_PACKAGES})


def read_status(path):
    """The JSON object at ``path`` (a status file or a report); None when absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _spec_hash_of(report):
    return (report.get("environment") or {}).get("spec_hash") if report else None


def recorded_hash(path):
    """``environment.spec_hash`` of the report at ``path``; None when absent or unreadable."""
    return _spec_hash_of(read_status(path))


# --------------------------------------------------------------------------- environments

class InstallError(Exception):
    """An environment could not be built; ``args[0]`` says why (uv's own words)."""


def _tail(text, lines=15):
    return "\n".join((text or "").strip().splitlines()[-lines:])


def find_uv():
    """The uv executable: the one the ``uv`` package installed (``pip install 'rnnspec[sweep]'``),
    else ``uv`` on PATH. Raises :class:`InstallError` when there is none."""
    try:
        from uv import find_uv_bin
        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if not found:
        raise InstallError("the sweep builds its environments with uv, and none is installed: "
                           "pip install 'rnnspec[sweep]' (or uv itself)")
    return found


class UvEnvironments:
    """Builds (and caches) one uv virtual environment per :class:`Pair` under ``cache``."""

    def __init__(self, cache=DEFAULT_VENVS, root=ROOT, uv=None, timeout=3600):
        self.cache, self.root, self.timeout = Path(cache), Path(root), timeout
        self.uv = uv or find_uv()

    def path(self, p):
        return self.cache / f"py{p.python}" / p.name

    def _marker(self, p):
        return {"requirements": list(p.requirements), "python": p.python, "root": str(self.root),
                "find_links": p.find_links}

    def python(self, p, log=None):
        """The Python of ``p``'s environment, built if it is missing or was built for other
        requirements. Raises :class:`InstallError` with the reason."""
        venv = self.path(p)
        marker, exe = venv / "rnnspec-sweep.json", venv / "bin" / "python"
        if exe.exists() and read_status(marker) == self._marker(p):
            return exe
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        for k in ("VIRTUAL_ENV", "UV_PYTHON"):
            env.pop(k, None)
        if p.find_links:
            # comma-separated (uv's UV_FIND_LINKS); a list already set in the environment is kept
            env["UV_FIND_LINKS"] = ",".join(filter(None, (os.environ.get("UV_FIND_LINKS"), p.find_links)))
        steps = ([self.uv, "venv", "--python", p.python, str(venv)],
                 [self.uv, "pip", "install", "--python", str(exe), "-e", str(self.root), *p.requirements])
        for cmd in steps:
            if log:
                log(" ".join(cmd))
            try:
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=self.timeout)
            except FileNotFoundError:
                raise InstallError(f"{self.uv} not found: install uv (pip install uv)") from None
            except subprocess.TimeoutExpired:
                raise InstallError(f"`{' '.join(cmd[:3])}` timed out after {self.timeout} s") from None
            if proc.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise InstallError(_tail(proc.stderr or proc.stdout))
        if p.cpu_build:
            self._check_cpu_build(p, exe, venv)
        marker.write_text(json.dumps(self._marker(p)))
        return exe

    def _check_cpu_build(self, p, exe, venv):
        code = f"import importlib.metadata as m; print(m.version({p.cpu_build!r}))"
        proc = subprocess.run([str(exe), "-c", code], capture_output=True, text=True)
        version = proc.stdout.strip()
        if proc.returncode != 0 or not version.endswith("+cpu"):
            shutil.rmtree(venv, ignore_errors=True)
            raise InstallError(f"{p.cpu_build} {version or '(not importable)'} is not a CPU build: give uv a CPU "
                               "wheel (UV_FIND_LINKS=/opt/wheels here, or UV_EXTRA_INDEX_URL="
                               "https://download.pytorch.org/whl/cpu)")


# --------------------------------------------------------------------------- running

def run_env(p, keras_home):
    """The environment variables of a run of ``p``."""
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update(dict(p.extra_env), RNNSPEC_PROFILE="sweep", RNNSPEC_ENV=p.env_name,
               KERAS_BACKEND=p.backend, KERAS_HOME=str(keras_home))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def run_spec(python, p, report, *, args=("spec",), timeout=None, cwd=ROOT):
    """``python -m pytest ARGS --report-json REPORT`` in the checkout; ``(exit status, output)``
    (exit status None: timed out)."""
    with tempfile.TemporaryDirectory(prefix="rnnspec-sweep-") as home:
        cmd = [str(python), "-m", "pytest", *args, "-q", "-p", "no:cacheprovider",
               "--report-json", str(Path(report).resolve())]
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=run_env(p, home), capture_output=True, text=True,
                                  timeout=timeout)
            return proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return None, f"{out}\ntimed out after {timeout} s"


# --------------------------------------------------------------------------- the sweep

@dataclass
class Result:
    pair: Pair
    status: str          # current (skipped), ran, install-failed, no-report, known-install-failure
    wall_s: float = 0.0
    detail: str = ""
    outcomes: dict = field(default_factory=dict)


def _outcomes(report):
    return dict(Counter(c.get("outcome") for c in ((report or {}).get("claims") or {}).values()))


def _write_status(out, p, status, spec_hash, **fields):
    data = {"backend": p.backend, "keras": p.keras, "env_name": p.env_name, "status": status,
            "requirements": list(p.requirements), "python": p.python, "spec_hash": spec_hash,
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
    status_path(out, p).write_text(json.dumps(data, indent=1) + "\n")


def _one(p, out, envs, runner, spec_hash, retry_failed, timeout, log):
    report = report_path(out, p)
    if report.exists() and recorded_hash(report) == spec_hash:
        return Result(p, "current", detail=f"report at spec hash {spec_hash}")
    old = read_status(status_path(out, p))
    if (not retry_failed and old and old.get("status") == "install-failed"
            and old.get("requirements") == list(p.requirements) and old.get("python") == p.python):
        return Result(p, "known-install-failure", detail=old.get("reason", ""))
    start = time.monotonic()
    try:
        python = envs.python(p, log=log)
    except InstallError as exc:
        wall = round(time.monotonic() - start, 1)
        _write_status(out, p, "install-failed", spec_hash, reason=str(exc), wall_s=wall)
        return Result(p, "install-failed", wall, str(exc))
    built = round(time.monotonic() - start, 1)
    report.unlink(missing_ok=True)
    code, output = runner(python, p, report, timeout=timeout)
    wall = round(time.monotonic() - start, 1)
    (Path(out) / "logs").mkdir(exist_ok=True)
    (Path(out) / "logs" / f"{p.name}.log").write_text(output or "")
    if not report.exists():
        detail = _tail(output, 20)
        _write_status(out, p, "no-report", spec_hash, exit_status=code, reason=detail, wall_s=wall,
                      env_s=built)
        return Result(p, "no-report", wall, detail)
    written = read_status(report)   # the report, read once (None: unreadable)
    outcomes = _outcomes(written)
    _write_status(out, p, "ran", _spec_hash_of(written), exit_status=code, wall_s=wall, env_s=built,
                  outcomes=outcomes)
    return Result(p, "ran", wall, f"exit {code}", outcomes)


def _clock(seconds):
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def describe(r):
    if r.status == "ran":
        shown = ", ".join(f"{n} {o}" for o, n in sorted(r.outcomes.items()))
        return f"ran in {r.wall_s:.0f} s ({r.detail}; {shown})"
    if r.status == "current":
        return f"skipped: {r.detail}"
    if r.status == "known-install-failure":
        return "skipped: could not be installed before (--retry-failed tries again): " + \
               (r.detail.splitlines() or [""])[-1]
    return f"{r.status.upper()} after {r.wall_s:.0f} s: " + (r.detail.splitlines() or [""])[-1]


def sweep(pairs, out, *, jobs=1, envs=None, runner=run_spec, spec_hash=None, retry_failed=False,
          timeout=None, echo=print):
    """Run every :class:`Pair` of ``pairs`` (``jobs`` at a time); one :class:`Result` each, in order.
    ``envs``: an object with ``python(pair, log=)`` (default :class:`UvEnvironments`);
    ``runner(python, pair, report, timeout=)`` -> ``(exit status, output)`` (default :func:`run_spec`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    envs = envs or UvEnvironments()
    spec_hash = spec_hash or checkout_hash()
    lock, done, start = threading.Lock(), [0], time.monotonic()
    total = len(pairs)

    def say(line):
        with lock:
            echo(f"[+{_clock(time.monotonic() - start)}] {line}")

    def job(p):
        r = _one(p, out, envs, runner, spec_hash, retry_failed, timeout,
                 log=lambda cmd: say(f"{p.name}: {cmd}"))
        with lock:
            done[0] += 1
            n = done[0]
        say(f"{n:>3}/{total} {p.backend} keras {p.keras}: {describe(r)}")
        return r

    say(f"sweep: {total} releases on {pairs[0].backend if pairs else '?'}, {jobs} at a time, "
        f"spec hash {spec_hash}, reports in {out}/")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(job, pairs))
    counts = Counter(r.status for r in results)
    ran = [r.wall_s for r in results if r.status == "ran"]
    say("sweep done: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + (f"; {sum(ran) / len(ran):.0f} s per release run" if ran else ""))
    return results
