#!/usr/bin/env bash
# The slim build (`make slim`: no libtorch) against the default build, on the bundled
# all-MiniLM-L6-v2: it links no libtorch, its library crates depend on no tch, and convert,
# export, encode (ONNX Runtime and tract), eval and search write byte-identical outputs to the
# default build's (whose outputs the workspace tests hold against PyTorch and transformers);
# `train` and `export --verify` say they are not in this build. Run by scripts/test.sh after
# `make slim`; prints one line per check and exits non-zero at the first that fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FULL=${FULL:-target/release/simcse}
SLIM=${SLIM:-target/slim/simcse}
MODEL=assets/all-MiniLM-L6-v2
STSB=${SIMCSE_SENTEVAL_DIR:-../shared/data/senteval}
work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
checks=0

fail() { echo "slim: FAILED  $*" >&2; exit 1; }
ok() { echo "slim: ok      $*"; checks=$((checks + 1)); }
[ -x "$FULL" ] || fail "$FULL not built (cargo build --release)"
[ -x "$SLIM" ] || fail "$SLIM not built (make slim)"

# Linking: the default build links libtorch, the slim one does not.
ldd "$FULL" | grep -q libtorch || fail "the default build links no libtorch: this check would prove nothing"
if ldd "$SLIM" | grep -E 'libtorch|libc10'; then fail "the slim build links libtorch"; fi
ok "ldd: libtorch in the default build, none in the slim build"

# Dependencies: no crate but the trainer (and the benchmarks) depends on tch.
if cargo tree --offline -e normal -p simcse-core -p simcse-models -p simcse-convert -p simcse-export -p simcse-runtime --features simcse-runtime/ort,simcse-runtime/tract | grep -E '^.*(tch|torch-sys) v'; then
  fail "a library crate depends on tch"
fi
if cargo tree --offline -e normal -p simcse --no-default-features --features ort,tract | grep -E '(tch|torch-sys) v'; then
  fail "the slim simcse depends on tch"
fi
ok "cargo tree: core, models, convert, export, runtime and the slim simcse depend on no tch"

"$SLIM" env > "$work/env.txt"
grep -q '^features   -train +ort +tract$' "$work/env.txt" || fail "slim env: $(cat "$work/env.txt")"
grep -q '^libtorch   not in this build' "$work/env.txt" || fail "slim env says nothing of libtorch"
"$FULL" env | grep -q '^features   +train +ort +tract$' || fail "full env features"
ok "env: the features of each build"

# The same commands in both builds.
head -n 300 assets/corpus/en.txt > "$work/sentences.txt"
for build in full slim; do
  bin=$FULL
  [ "$build" = slim ] && bin=$SLIM
  out=$work/$build
  mkdir -p "$out"
  "$bin" convert --quiet "$MODEL" "$out/model" > /dev/null
  "$bin" export "$out/model" --normalize -o "$out/model.onnx" > /dev/null
  for backend in ort tract; do
    "$bin" encode "$out/model" --onnx "$out/model.onnx" --backend "$backend" --input "$work/sentences.txt" \
      --output "$out/$backend.npy" --quiet > /dev/null 2>&1
  done
  "$bin" eval "$out/model" --task-set na --tasks STSBenchmark --mode dev --senteval-dir "$STSB" \
    --output "$out/eval.json" --quiet > /dev/null 2>&1
  "$bin" search "$out/model" --corpus "$work/sentences.txt" --query "A man is playing a guitar." \
    --query "Two dogs run in the snow." --top-k 5 --threshold 0 --output "$out/hits.jsonl" > /dev/null 2>&1
done
for file in model/model.safetensors model/config.json model.onnx ort.npy tract.npy hits.jsonl; do
  cmp -s "$work/full/$file" "$work/slim/$file" || fail "$file differs between the builds"
done
# These name their own paths and times: equal once those are.
same_text() { sed -e "s#$work/$1#WORK#g" -e '/"unix_time"/d' "$work/$1/$2"; }
for file in model/simcse.json eval.json; do
  [ "$(same_text full "$file")" = "$(same_text slim "$file")" ] || fail "$file differs between the builds"
done
spearman=$(python3 -c 'import json,sys; print(round(100 * json.load(open(sys.argv[1]))["tasks"][0]["subsets"][0]["spearman"], 2))' "$work/slim/eval.json")
ok "convert, export, encode (ort, tract), eval, search: the same outputs (STS-B dev Spearman $spearman in both)"

# simcse serve: the slim build answers /embed with what the default build answers.
embed_over_http() {  # BINARY MODEL_DIR OUT: starts simcse serve on a free port, POSTs /embed, SIGTERMs it
  local log=$work/serve-$(basename "$3").log
  "$1" serve "$2" --port 0 --onnx "$2/../model.onnx" 2> "$log" &
  local pid=$! port=
  for _ in $(seq 600); do
    port=$(sed -n 's#.*listening on http://[^ ]*:\([0-9]*\) .*#\1#p' "$log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2> /dev/null || fail "simcse serve exited: $(cat "$log")"
    sleep 0.1
  done
  [ -n "$port" ] || fail "simcse serve never listened: $(cat "$log")"
  python3 - "$port" "$work/sentences.txt" "$3" <<'PY' || { kill "$pid"; fail "POST /embed failed"; }
import json, sys, urllib.request
port, sentences, out = sys.argv[1], open(sys.argv[2]).read().splitlines()[:32], sys.argv[3]
request = urllib.request.Request(f"http://127.0.0.1:{port}/embed", json.dumps({"inputs": sentences}).encode(), {"Content-Type": "application/json"})
open(out, "wb").write(urllib.request.urlopen(request).read())
PY
  kill -TERM "$pid"
  wait "$pid" || fail "simcse serve did not exit 0 on SIGTERM: $(cat "$log")"
}
embed_over_http "$FULL" "$work/full/model" "$work/full/embed.json"
embed_over_http "$SLIM" "$work/slim/model" "$work/slim/embed.json"
cmp -s "$work/full/embed.json" "$work/slim/embed.json" || fail "/embed answers differ between the builds"
python3 -c 'import json,sys; rows = json.load(open(sys.argv[1])); assert len(rows) == 32 and len(rows[0]) == 384, (len(rows), len(rows[0]))' "$work/slim/embed.json" \
  || fail "/embed answered the wrong shape"
ok "serve: /embed of 32 sentences the same in both builds; SIGTERM exits 0"

# What needs libtorch says so, and fails.
expect_refusal() {
  local what=$1
  shift
  if "$SLIM" "$@" > "$work/out.txt" 2> "$work/err.txt"; then fail "slim $what succeeded"; fi
  grep -q 'not in this build (built without the `train` feature' "$work/err.txt" || fail "slim $what said: $(cat "$work/err.txt")"
}
expect_refusal train train --model-name-or-path "$MODEL" --train-file "$work/sentences.txt" --output-dir "$work/run"
[ ! -e "$work/run" ] || fail "slim train wrote $work/run"
expect_refusal "train --help" train --help
expect_refusal "export --verify" export "$work/slim/model" --verify -o "$work/verified.onnx"
[ ! -e "$work/verified.onnx" ] || fail "slim export --verify wrote its output before refusing"
ok "train and export --verify: not in this build, nothing written"

echo "slim: $checks checks passed"
