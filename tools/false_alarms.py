"""Run the clean spec (no fault) under many Hypothesis seeds and count spurious failures.

    python -m rnnspec.tools.false_alarms --seeds 20 [--spec-args "spec/test_equivalence.py ..."] [--json PATH]

Each seed is one pytest run with ``--hypothesis-seed=N`` and the ``dev``
profile (random, not derandomized), so every seed explores different
configurations, weights and inputs. Without an injected fault every run must
pass: a failure is either a new finding (a divergence in Keras) or a false
alarm (a tolerance too tight, a flaky claim). The target is zero.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

from rnnspec.spec.outcomes import GATE_FAILING

DEFAULT_SPEC = "spec/test_equivalence.py spec/test_stateful.py spec/test_dropout.py spec/test_composition.py"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--spec-args", default=DEFAULT_SPEC)
    parser.add_argument("--profile", default="dev")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    env = dict(os.environ, RNNSPEC_PROFILE=args.profile)
    runs, start = [], time.time()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            report = os.path.join(tmp, "report.json")
            t0 = time.time()
            proc = subprocess.run([sys.executable, "-m", "pytest", *shlex.split(args.spec_args), "-q",
                                   "-p", "no:cacheprovider", f"--hypothesis-seed={seed}",
                                   "--report-json", report], env=env, capture_output=True, text=True)
            failed = []
            if os.path.exists(report):
                claims = json.load(open(report))["claims"]
                failed = [{"nodeid": k, "outcome": v["outcome"], "reason": (v["reasons"] or [""])[0]}
                          for k, v in claims.items() if v["outcome"] in GATE_FAILING]
                examples = sum((v.get("examples") or {}).get("drawn", 0) for v in claims.values())
            else:
                examples = 0
            runs.append({"seed": seed, "exit_code": proc.returncode, "failed": failed,
                         "examples": examples, "wall_s": round(time.time() - t0, 1)})
            line = "clean" if proc.returncode == 0 else f"FAILED {[f['nodeid'] for f in failed] or proc.stdout[-300:]}"
            print(f"seed {seed}: {line} ({examples} examples, {runs[-1]['wall_s']} s)", flush=True)
    from rnnspec.spec import adapter
    summary = {"backend": adapter.BACKEND, "keras": adapter.KERAS_VERSION, "tensorflow": adapter.tf_version(),
               "profile": args.profile, "spec_args": args.spec_args, "seeds": args.seeds,
               "spurious_or_new_failures": sum(1 for r in runs if r["exit_code"] != 0),
               "examples": sum(r["examples"] for r in runs), "wall_time_s": round(time.time() - start, 1),
               "runs": runs}
    print(f"{summary['backend']}: {summary['seeds']} seeds, {summary['examples']} examples, "
          f"{summary['spurious_or_new_failures']} failing runs, {summary['wall_time_s']} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(summary, fh, indent=1)
    return 1 if summary["spurious_or_new_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
