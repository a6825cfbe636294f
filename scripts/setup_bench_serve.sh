#!/usr/bin/env bash
# The Python servers `make bench-serve` measures simcse serve against: infinity-emb (torch engine,
# CPU) and the `openai` client, in .venv-serve. They need numpy<2, so they get their own
# environment; torch, transformers and sentence-transformers come from .venv (the reference stack,
# scripts/setup.sh --reference) through a .pth file rather than a second 4 GB install.
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
"$VENV/bin/pip" install --quiet --disable-pip-version-check "infinity-emb[server]==0.0.77" "openai==1.109.1" "numpy<2"
"$VENV/bin/python" -c "import openai, infinity_emb, torch; print('infinity-emb', infinity_emb.__version__, 'torch', torch.__version__, 'openai', openai.__version__)"
