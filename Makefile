# The two commands of README.md: `make demo` runs the main job on the bundled model, `make test`
# runs the whole test suite. Both set the machine up first (scripts/setup.sh is idempotent).

CARGO ?= cargo
SIMCSE := target/release/simcse
# SentEval's STS data and the Chinese pair sets (../shared/data beside the checkout by default).
export SIMCSE_SENTEVAL_DIR ?= $(abspath ../shared/data/senteval)
export SIMCSE_ZH_DIR ?= $(abspath ../shared/data/zh)
BENCH_CHECKPOINT := target/bench/bert-base

.PHONY: setup build demo test bench-convert bench-encode bench-export bench-eval bench-search clean-demo

setup:
	scripts/setup.sh

build: setup
	$(CARGO) build --release

demo: build
	scripts/demo.sh

test: setup
	scripts/test.sh

# Needs the Python reference stack (scripts/setup.sh --reference) for the baseline.
bench-convert: build
	scripts/setup.sh --reference
	test -f $(BENCH_CHECKPOINT)/pytorch_model.bin || .venv/bin/python tests/fixtures/gen_checkpoints.py --bench-checkpoint $(BENCH_CHECKPOINT)
	$(SIMCSE) bench convert $(BENCH_CHECKPOINT) --runs 5

# The converted all-MiniLM-L6-v2 that `make demo` writes, against sentence-transformers.
bench-encode: demo
	scripts/setup.sh --reference
	$(SIMCSE) bench encode target/demo/all-MiniLM-L6-v2 --runs 3

bench-export: build
	scripts/setup.sh --reference
	test -f $(BENCH_CHECKPOINT)/pytorch_model.bin || .venv/bin/python tests/fixtures/gen_checkpoints.py --bench-checkpoint $(BENCH_CHECKPOINT)
	$(SIMCSE) convert -q $(BENCH_CHECKPOINT) target/bench/bert-base-dir --overwrite
	$(SIMCSE) bench export target/bench/bert-base-dir --runs 3

bench-eval: demo
	scripts/setup.sh --reference
	$(SIMCSE) bench eval target/demo/all-MiniLM-L6-v2 --senteval-dir $(SIMCSE_SENTEVAL_DIR)

bench-search: build
	$(SIMCSE) bench search --sizes 100000,1000000

clean-demo:
	rm -rf target/demo
