"""Measure how far Keras's float32 gradients are from the float64 reference gradients.

    python -m rnnspec.tools.measure_grad_error [--cases 600] [--seed 0] [--path eager|tf.function|xla|jax.jit]
                                        [--atol 1e-4 --rtol 1e-4] [--json out.json]

Draws cases as tools/measure_error.py does (graph shapes from random-filled
covering pools, single layers and Bidirectional, every mask kind, initial
states; tiny tier), and coefficients uniform in [-1, 1] for every returned
value; computes dL/d(weights, x, initial states) with
``rnnspec.spec.runners.run_gradients`` and with ``rnnspec.spec.cases.reference_gradients``,
and prints, per case, the largest |keras - reference| over every gradient
entry, and the largest ratio |keras - reference| / (atol + rtol*|reference|)
at the candidate tolerance. Cases inside a listed divergence are left out
(counted). It also prints how far a 1% error in the recurrent activation's
*derivative* moves the reference gradients (a gradient-only fault the
tolerance must still see). The gradient row of spec/data/tolerances.toml
comes from this script.
"""

import argparse
import json
import sys

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool-size", type=int, default=120)
    parser.add_argument("--path", default=None, help="compiled path (spec/runners.py COMPILED_PATHS) or 'eager'")
    parser.add_argument("--atol", type=float, default=None, help="candidate tolerance (default: the table's gradient row)")
    parser.add_argument("--rtol", type=float, default=None)
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args(argv)

    from rnnspec.reference import activations
    from rnnspec.spec import adapter
    from rnnspec.spec.assertions import describe, tolerance
    from rnnspec.spec.cases import Case, gradient_names, random_weights, reference_gradients, reference_outputs
    from rnnspec.spec.divergences import divergence_for
    from rnnspec.spec.pool import covering_pool
    from rnnspec.spec.runners import run_gradients
    from rnnspec.tools.measure_error import _mask

    if args.atol is None or args.rtol is None:
        atol, rtol = tolerance(quantity="gradient")
    else:
        atol, rtol = args.atol, args.rtol
    compiled = False if args.path == "eager" else (args.path or True)
    rng = np.random.default_rng(args.seed)
    pools = [covering_pool(False, size=args.pool_size, seed=args.seed),
             covering_pool(True, size=args.pool_size, seed=args.seed)]
    hs = adapter.conventions()["hard_sigmoid"]
    errors, ratios, per_name, worst, crashes, fault_effect, skipped = [], [], {}, [], [], [], 0
    for i in range(args.cases):
        shape = pools[i % 2][rng.integers(len(pools[i % 2]))]
        c = shape.config
        b, t, f = shape.batch, shape.timesteps, shape.features
        weights = random_weights(c, f, rng)
        x = rng.uniform(-1, 1, (b, t, f)).astype(np.float32).astype(np.float64)
        init = ([rng.uniform(-0.5, 0.5, (b, c.units)).astype(np.float32).astype(np.float64)
                 for _ in range(c.n_states)] if shape.initial_state else None)
        case = Case(c, f, weights, x, mask=_mask(rng, shape.mask, b, t), initial_state=init)
        if divergence_for(case, claim="tools/measure_grad_error") is not None:
            skipped += 1
            continue
        coefs = [rng.uniform(-1, 1, np.shape(o)).astype(np.float32).astype(np.float64)
                 for o in reference_outputs(case, hs)]
        expected = reference_gradients(case, hs, coefs)
        try:
            actual = run_gradients(case, coefs, compiled=compiled)
        except Exception as exc:  # a crash is a finding: list it, do not stop measuring
            crashes.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]} [{describe(case)}]")
            continue
        err, ratio, where = 0.0, 0.0, ""
        for (name, e), a in zip(expected, actual):
            d = np.abs(np.asarray(a) - e)
            if not d.size:
                continue
            r = float(np.max(d / (atol + rtol * np.abs(e))))
            per_name.setdefault(name.replace("forward ", "").replace("backward ", ""), []).append(float(d.max()))
            if r > ratio:
                ratio, where = r, name
            err = max(err, float(d.max()))
        errors.append(err)
        ratios.append(ratio)
        worst.append((ratio, err, where, describe(case)))
        if c.kind != "simple_rnn" and c.recurrent_activation == "sigmoid":
            right = activations._DERIVATIVES["sigmoid"]
            activations._DERIVATIVES["sigmoid"] = lambda v: 1.01 * right(v)
            try:
                faulty = reference_gradients(case, hs, coefs)
            finally:
                activations._DERIVATIVES["sigmoid"] = right
            fault_effect.append(max(float(np.max(np.abs(a - e) / (atol + rtol * np.abs(e)))) if np.size(e) else 0.0
                                    for (_, a), (_, e) in zip(faulty, expected)))
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{args.cases} cases", file=sys.stderr, flush=True)

    def summary(values):
        v = np.array(values)
        return {"n": int(v.size), "median": float(np.median(v)), "p99": float(np.quantile(v, 0.99)),
                "max": float(v.max())} if v.size else None

    out = {"backend": adapter.BACKEND, "keras": adapter.KERAS_VERSION, "tensorflow": adapter.tf_version(),
           "quantity": "gradient", "path": args.path or "default", "cases": args.cases, "seed": args.seed,
           "skipped_known_divergence": skipped, "crashes": crashes[:20], "n_crashes": len(crashes),
           "abs_error": summary(errors), "tolerance": {"atol": atol, "rtol": rtol},
           "error_over_tolerance": summary(ratios),
           "worst_cases": [{"ratio": r, "abs_error": e, "gradient": w, "case": d}
                           for r, e, w, d in sorted(worst, key=lambda z: z[0])[::-1][:8]],
           "per_gradient_abs_error": {k: summary(v) for k, v in sorted(per_name.items())},
           "fault_sigmoid_derivative_1pct_over_tolerance": summary(fault_effect),
           "fault_cases_detected": int(np.sum(np.array(fault_effect) > 1)) if fault_effect else None}
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
