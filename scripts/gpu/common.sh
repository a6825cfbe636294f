# Sourced by the GPU scripts: where things are on the GPU machine (../shared/gpu/README.md).
# Leaves the repository root as the working directory; results go to $OUT (returned by the
# device tool when it is under the run's $OUT).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-/tmp/simcse-gpu-out}
WORK=/tmp/simcse-gpu
mkdir -p "$OUT" "$WORK"
PY=${PY:-/opt/torch/.venv/bin/python}
SITE=/opt/torch/.venv/lib/python3.12/site-packages
export LD_LIBRARY_PATH="$SITE/torch/lib:$SITE/nvidia/cu13/lib:$SITE/nvidia/cudnn/lib:${LD_LIBRARY_PATH:-}"
# The binaries travel xz-compressed (scripts/gpu/stage.sh); they are unpacked once per machine.
# simcse-bench runs the simcse beside it (or $SIMCSE).
for bin in simcse simcse-bench; do
  if [ -f .gpu/$bin.xz ]; then xz -dc .gpu/$bin.xz > "$WORK/$bin" && chmod +x "$WORK/$bin"; fi
  [ -x "$WORK/$bin" ] || { echo "no $bin binary: run scripts/gpu/stage.sh and carry .gpu/$bin.xz" >&2; exit 1; }
done
SIMCSE=$WORK/simcse
SIMCSE_BENCH=$WORK/simcse-bench
export SIMCSE
# DEVICE, CONFIG, STEPS and PY may be overridden for a dry run of a script on the CPU machine.
DEVICE=${DEVICE:-cuda}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
