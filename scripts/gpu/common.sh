# Sourced by the GPU scripts: where things are on the GPU machine (../shared/gpu/README.md).
# Leaves the repository root as the working directory; results go to $OUT (returned by the
# device tool when it is under the run's $OUT).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-/tmp/simcse-gpu-out}
mkdir -p "$OUT"
PY=/opt/torch/.venv/bin/python
SITE=/opt/torch/.venv/lib/python3.12/site-packages
SIMCSE=${SIMCSE:-.gpu/simcse}
export LD_LIBRARY_PATH="$SITE/torch/lib:$SITE/nvidia/cu13/lib:$SITE/nvidia/cudnn/lib:${LD_LIBRARY_PATH:-}"
[ -x "$SIMCSE" ] || { echo "no $SIMCSE: run scripts/gpu/stage.sh and carry .gpu/simcse" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
