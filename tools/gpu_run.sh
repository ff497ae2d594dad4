#!/usr/bin/env bash
# One command for the GPU machine (../shared/gpu/README.md): the equivalence,
# kernel and known-divergence chapters with Keras 3 on torch and on JAX, each
# on the CPU and the GPU (TF32 off and default), writing conformance JSON.
#
# Here, once:   ../shared/gpu/fetch-wheels.sh        (Keras wheels into .whl/)
# There:        bash tools/gpu_run.sh                (device tool: carry [".whl"])
# Then:         python -m tools.report merge reports/*.json docs/conformance/gpu-*.json -o docs/conformance/matrix.md
#
# Each backend gets at most $RNNSPEC_GPU_SECONDS (default 200) seconds, so the
# whole run fits a 15-minute lease with room for one rerun.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-reports}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
export RNNSPEC_PROFILE="${RNNSPEC_PROFILE:-ci}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | tee "$out/gpu-device.txt"
status=0
for backend in torch jax; do
  KERAS_BACKEND=$backend RNNSPEC_ENV="gpu-$backend" timeout "${RNNSPEC_GPU_SECONDS:-200}" \
    python3 -m pytest spec/test_equivalence.py spec/test_kernels.py spec/test_known_divergences.py \
      -q -rs -p no:cacheprovider --report-json "$out/gpu-$backend.json" 2>&1 | tee "$out/gpu-$backend.log"
  rc=${PIPESTATUS[0]}
  echo "rnnspec gpu run: backend $backend exit $rc"
  [ "$rc" -eq 0 ] || status=$rc
done
exit $status
