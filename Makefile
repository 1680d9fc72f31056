# BatchNormKit — every entry point a user types. `make train` and `make test`
# work on a fresh Debian 12 machine: both install what is missing first.

SWIFT       ?= swift
APT_PACKAGES = libopenblas-dev liblapacke-dev pkg-config zlib1g-dev dataset-fashion-mnist
# The CPU-specific build: vector FMA instead of libm calls (see README, "Speed").
NATIVE      = -c release --scratch-path .build-native -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DBATCHNORMKIT_FMA
PORTABLE    = -c release --scratch-path .build-portable
BNKIT       = .build-native/release/bnkit
FUZZ        = --scratch-path .build-fuzz --sanitize fuzzer --sanitize address -Xswiftc -DFUZZING
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= idx safetensors checkpoint
BENCH_NATIVE   = .build-native/release/bnkbench
BENCH_PORTABLE = .build-portable/release/bnkbench
# Python tools (matplotlib for charts, torch for fixtures and side-by-side
# benchmarks) live in a project-local virtual environment, never in the
# system Python. `make venv` makes it with matplotlib; `make venv-torch`
# adds PyTorch's CPU build and safetensors.
VENV        = .venv
PYTHON      = $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0+cpu

.PHONY: venv venv-torch deps build test test-release train compare-lr experiments bench bench-native bench-portable bench-smoke bench-compare fuzz fixtures clean

## deps: install the system packages the build and the data need (apt-get, as root or via sudo)
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

## venv: a project-local Python with matplotlib (git-ignored .venv)
venv: $(VENV)/.plot-ready
$(VENV)/.plot-ready:
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet matplotlib numpy
	touch $@

## venv-torch: the same environment plus PyTorch (CPU) and safetensors
venv-torch: $(VENV)/.torch-ready
$(VENV)/.torch-ready: $(VENV)/.plot-ready
	$(PYTHON) -m pip install --quiet "$(TORCH_SPEC)" safetensors
	touch $@

build: deps
	$(SWIFT) build

## test: build, run the benchmark smoke test, then every unit test
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) run bnkbench --smoke
	$(SWIFT) test

## test-release: every test again in an optimized build (threaded code can
## behave differently under -O; SyncBatchNorm's all-reduce once did)
test-release: deps
	$(SWIFT) test -c release
	$(SWIFT) run -c release bnkbench --smoke

## train: the main job — the seed network on Fashion-MNIST, 10 epochs
train: deps
	$(SWIFT) build $(NATIVE) --product bnkit
	$(BNKIT) train $(TRAIN_ARGS)

## compare-lr: BatchNorm vs none at lr 1.0 (the seed's claim)
compare-lr: deps
	$(SWIFT) build $(NATIVE) --product bnkit
	$(BNKIT) compare-lr

## experiments: the seed's "BatchNorm smooths the landscape" claim — top Hessian
## eigenvalues along training with and without BatchNorm, CSV and a plot
experiments: deps
	$(SWIFT) build $(NATIVE) --product bnkit
	mkdir -p experiments
	$(BNKIT) hessian --output experiments/hessian.csv $(EXPERIMENT_ARGS)
	@$(MAKE) --no-print-directory venv || echo "experiments: matplotlib unavailable, CSV only"
	@if [ -x $(PYTHON) ] && $(PYTHON) -c "import matplotlib" 2>/dev/null; then $(PYTHON) Scripts/plot_experiments.py experiments/hessian.csv experiments/hessian.png; fi

bench: bench-native bench-portable

bench-native: deps
	$(SWIFT) build $(NATIVE) --product bnkbench
	$(BENCH_NATIVE) --build native $(BENCH_ARGS)

bench-portable: deps
	$(SWIFT) build $(PORTABLE) --product bnkbench
	$(BENCH_PORTABLE) --build portable $(BENCH_ARGS)

bench-smoke: deps
	$(SWIFT) run bnkbench --smoke

## bench-compare: the same cases in PyTorch, when torch is importable (never installs it)
bench-compare: bench-native
	@if [ -x $(PYTHON) ] && $(PYTHON) -c "import torch" 2>/dev/null; then $(PYTHON) Scripts/bench_torch.py && $(PYTHON) Scripts/bench_conv_torch.py; \
	else echo "bench-compare: PyTorch not in .venv (make venv-torch), skipping the PyTorch side"; fi

## fuzz: libFuzzer (with AddressSanitizer) on every file parser, FUZZ_SECONDS each;
## crashing inputs land in fuzz-findings/<target>/, replay with .build/debug/bnkfuzz <target> FILE
fuzz: deps
	$(SWIFT) build $(FUZZ) --product bnkfuzz
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p .build-fuzz/corpus/$$t fuzz-findings/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  BNK_FUZZ_TARGET=$$t .build-fuzz/debug/bnkfuzz -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
	    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=fuzz-findings/$$t/ \
	    .build-fuzz/corpus/$$t Fuzz/corpus/$$t || exit 1; \
	done

## fixtures: rewrite the golden files from PyTorch (installs torch into .venv)
fixtures: venv-torch
	$(PYTHON) Scripts/make_fixtures.py
	$(PYTHON) Scripts/make_conv_fixtures.py

clean:
	rm -rf .build .build-native .build-portable .build-fuzz
