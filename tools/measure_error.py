"""Measure how far float32 Keras is from the float64 reference, to derive tolerances.

    python -m rnnspec.tools.measure_error [--cases 3000] [--seed 0] [--tier tiny|wide|saturating] [--path xla]
                                  [--pool NAME] [--device cpu|gpu] [--tf32 off|default]
                                  [--dtype float64|float16|bfloat16|mixed_float16|mixed_bfloat16]

Draws cases the way the equivalence properties do (graph shapes from a
random-filled covering pool, or the wide tier's pool; the tier's weights,
inputs in [-1, 1], every mask kind, initial states), leaves out the examples
inside a listed divergence (counted), and prints the
distribution of max |keras - reference| per case, overall and per kind. It
also prints how much a 1e-3 error in the recurrent activation moves the
reference output (the smallest fault the tolerance must still see).
The numbers behind spec/data/tolerances.toml come from this script.

``--dtype`` measures a layer built with that dtype or policy (``dtype=``) the
way spec/test_dtypes.py runs it: single layers, no mask, the eager call, and
the reference computed from the weights, inputs and initial states rounded to
the compute dtype (spec/runners.py rounded_to).
"""

import argparse
import json
import sys

import numpy as np


def _mask(rng, kind, b, t):
    if kind == "none":
        return None
    if kind == "holes":
        return rng.random((b, t)) < 0.6
    lengths = rng.integers(1, t + 1, size=(b, 1))
    steps = np.arange(t)[None, :]
    if kind == "right_padded":
        return steps < lengths
    if kind == "left_padded":
        return steps >= t - lengths
    m = steps < lengths
    m[rng.integers(0, b)] = False
    return m


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool-size", type=int, default=300)
    parser.add_argument("--json", help="write the summary here")
    parser.add_argument("--tier", default="tiny", choices=("tiny", "wide", "saturating"),
                        help="the size/value tier (spec/tiers.py) to draw from")
    parser.add_argument("--path", default=None,
                        help="compiled path (spec/runners.py COMPILED_PATHS), default the backend's first")
    parser.add_argument("--pool", default=None,
                        help="draw graph shapes from this named pool (spec/pool.py POOLS, e.g. fused-kernel,fused-kernel-bidirectional) "
                             "instead of the tier's")
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"),
                        help="where Keras runs (spec/devices.py); gpu needs a visible GPU")
    parser.add_argument("--tf32", default="off", choices=("off", "default"),
                        help="on a GPU: TF32 forced off, or the framework's default (spec/adapter.py tf32_policy)")
    parser.add_argument("--dtype", default="float32",
                        choices=("float32", "float64", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16"),
                        help="the layers' dtype or mixed precision policy (spec/test_dtypes.py)")
    args = parser.parse_args(argv)

    from rnnspec.reference import activations
    from rnnspec.spec import adapter
    from rnnspec.spec.assertions import describe, tolerance
    from rnnspec.spec.cases import Case, random_weights, reference_outputs
    from rnnspec.spec.divergences import divergence_for
    from rnnspec.spec.pool import covering_pool, named_pool
    from rnnspec.spec.runners import kernel_of, run_case
    from rnnspec.spec.tiers import TIERS, gate_preactivations

    tier = TIERS[args.tier]
    rng = np.random.default_rng(args.seed)
    if args.pool:
        pools = [named_pool(name) for name in args.pool.split(",")]
    elif args.dtype != "float32":
        pools = [covering_pool(False, size=args.pool_size, seed=args.seed)]
    elif tier.pool == "single":
        pools = [covering_pool(False, size=args.pool_size, seed=args.seed),
                 covering_pool(True, size=args.pool_size, seed=args.seed)]
    else:
        pools = [named_pool(tier.pool)] * 2
    hs = adapter.conventions()["hard_sigmoid"]
    errors, per_kind, fault_effect, skipped, ratios, worst, crashes = [], {}, [], 0, [], [], []
    from rnnspec.spec.devices import TF32_TABLE_KEY
    if args.device not in adapter.devices():
        parser.error(f"--device {args.device}: not visible to the {adapter.BACKEND} backend "
                     f"(devices: {adapter.devices()})")
    try:
        atol, rtol = tolerance(dtype=args.dtype, tier=args.tier, device=args.device, tf32=TF32_TABLE_KEY[args.tf32])
    except LookupError:   # a dtype without a row yet: ratios against 1e-3 each, to be rescaled
        atol, rtol = 1e-3, 1e-3
    kernels = {}
    saturated = []
    for i in range(args.cases):
        shape = pools[i % len(pools)][rng.integers(len(pools[i % len(pools)]))]
        c = shape.config
        b, t, f = shape.batch, shape.timesteps, shape.features
        weights = random_weights(c, f, rng, **tier.weight_scales())
        x = rng.uniform(-1, 1, (b, t, f)).astype(np.float32).astype(np.float64)
        init = ([rng.uniform(-0.5, 0.5, (b, c.units)).astype(np.float32).astype(np.float64)
                 for _ in range(c.n_states)] if shape.initial_state else None)
        case = Case(c, f, weights, x, mask=_mask(rng, shape.mask, b, t) if args.dtype == "float32" else None,
                    initial_state=init)
        if args.dtype != "float32":
            from rnnspec.spec.runners import rounded_to
            case = rounded_to(case, args.dtype)
        if divergence_for(case, claim="tools/measure_error") is not None:
            skipped += 1
            continue
        expected = reference_outputs(case, hs)
        if c.kind != "simple_rnn":
            gates, _ = gate_preactivations(case, hs)
            saturated.append(float(np.mean(np.abs(gates) >= 3)) if gates.size else 0.0)
        try:
            if args.dtype != "float32":
                from rnnspec.spec.runners import run_in_dtype
                actual, kernel = run_in_dtype(case, args.dtype)[0], "eager"
            else:
                with adapter.tf32_policy(args.tf32):
                    actual = run_case(case, compiled=args.path or True, device=args.device)
                kernel = kernel_of(case, compiled=args.path or True, device=args.device)
        except Exception as exc:  # a crash is a finding: list it, do not stop measuring
            crashes.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]} [{describe(case)}]")
            continue
        err = max(float(np.max(np.abs(a - e))) if e.size else 0.0 for a, e in zip(actual, expected))
        ratio = max(float(np.max(np.abs(a - e) / (atol + rtol * np.abs(e)))) if e.size else 0.0
                    for a, e in zip(actual, expected))
        ratios.append(ratio)
        if ratio > 0.25:
            worst.append((ratio, err, float(max(np.max(np.abs(e)) if e.size else 0 for e in expected)),
                          describe(case)))
        errors.append(err)
        per_kind.setdefault(c.kind, []).append(err)
        kernels.setdefault(f"{c.kind}/{kernel}", []).append(err)
        # a 1e-3 error in the recurrent activation: how far does it move the formulas?
        original = activations._PLAIN["sigmoid"]
        activations._PLAIN["sigmoid"] = lambda v: original(v) + 1e-3
        try:
            faulty = reference_outputs(case, hs)
        finally:
            activations._PLAIN["sigmoid"] = original
        if c.kind != "simple_rnn" and c.recurrent_activation == "sigmoid":
            fault_effect.append(max(float(np.max(np.abs(a - e))) if e.size else 0.0
                                    for a, e in zip(faulty, expected)))
        if (i + 1) % 500 == 0:
            print(f"  {i + 1}/{args.cases} cases", file=sys.stderr, flush=True)

    def summary(values):
        v = np.array(values)
        return {"n": int(v.size), "median": float(np.median(v)), "p99": float(np.quantile(v, 0.99)),
                "max": float(v.max())}

    out = {"backend": adapter.BACKEND, "keras": adapter.KERAS_VERSION, "tensorflow": adapter.tf_version(),
           "dtype": args.dtype, "tier": args.tier, "pool": args.pool or tier.pool, "path": args.path or "default",
           "device": args.device, "tf32": args.tf32, "device_name": adapter.device_description(args.device),
           "cases": args.cases, "seed": args.seed, "skipped_known_divergence": skipped,
           "gate_preactivations_at_least_3": summary(saturated) if saturated else None,
           "crashes": crashes[:20], "n_crashes": len(crashes),
           "error": summary(errors),
           "tolerance": {"atol": atol, "rtol": rtol},
           "error_over_tolerance": summary(ratios),
           "cases_over_quarter_tolerance": [
               {"ratio": r, "abs_error": e, "max_abs_output": m, "case": d} for r, e, m, d in sorted(worst)[::-1][:10]], "per_kind": {k: summary(v) for k, v in sorted(per_kind.items())},
           "per_kind_and_kernel": {k: summary(v) for k, v in sorted(kernels.items())},
           "fault_1e-3_sigmoid_effect": summary(fault_effect) if fault_effect else None,
           "fault_cases_above_2e-5": (int(np.sum(np.array(fault_effect) > 2e-5)) if fault_effect else None)}
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
