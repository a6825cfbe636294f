#!/usr/bin/env bash
# What `make bench-serve` measures simcse serve against: infinity-emb (torch engine, CPU), and
# the clients that must work against simcse serve unchanged (`openai`, huggingface_hub's
# InferenceClient for TEI), in .venv-serve. infinity-emb 0.0.77 needs numpy<2, transformers 4
# (it calls batch_encode_plus), huggingface_hub<1 (HfFolder) and click<8.2 (typer), which the
# reference stack has moved past, so these go in their own environment; torch comes from .venv
# (scripts/setup.sh --reference) through a .pth file rather than a second 4 GB install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=.venv-serve
[ -x .venv/bin/python ] || { echo "setup_bench_serve: run scripts/setup.sh --reference first" >&2; exit 1; }
if [ -x "$VENV/bin/infinity_emb" ] && "$VENV/bin/python" -c "import openai, infinity_emb" 2>/dev/null; then
  exit 0
fi
.venv/bin/python -m venv --clear "$VENV"
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
reference=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$reference" > "$site/simcse-reference.pth"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "infinity-emb[server]==0.0.77" "openai==1.109.1" "numpy<2" \
  "transformers==4.57.1" "sentence-transformers==5.1.2" "huggingface_hub==0.36.2" "click==8.1.8"
"$VENV/bin/python" -c "import openai, infinity_emb, torch; print('infinity-emb', infinity_emb.__version__, 'torch', torch.__version__, 'openai', openai.__version__)"
