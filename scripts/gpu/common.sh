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
# The binary travels xz-compressed (scripts/gpu/stage.sh); it is unpacked once per machine.
SIMCSE=$WORK/simcse
if [ -f .gpu/simcse.xz ]; then xz -dc .gpu/simcse.xz > "$SIMCSE" && chmod +x "$SIMCSE"; fi
[ -x "$SIMCSE" ] || { echo "no simcse binary: run scripts/gpu/stage.sh and carry .gpu/simcse.xz" >&2; exit 1; }
# DEVICE, CONFIG, STEPS and PY may be overridden for a dry run of a script on the CPU machine.
DEVICE=${DEVICE:-cuda}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
