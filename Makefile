# BatchNormKit — every entry point a user types. `make train` and `make test`
# work on a fresh Debian 12 machine: both install what is missing first.

SWIFT       ?= swift
APT_PACKAGES = libopenblas-dev liblapacke-dev pkg-config zlib1g-dev dataset-fashion-mnist libopenmpi-dev openmpi-bin
# The CPU-specific build: vector FMA instead of libm calls, and on a CPU with
# AVX-512 the reductions' register strips (see README, "Speed").
AVX512      = $(if $(shell grep -m1 -ow avx512f /proc/cpuinfo 2>/dev/null),-Xswiftc -DBATCHNORMKIT_AVX512)
NATIVE      = -c release --scratch-path .build-native -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DBATCHNORMKIT_FMA $(AVX512)
PORTABLE    = -c release --scratch-path .build-portable
BNKIT       = .build-native/release/bnkit
PREFIX     ?= /usr/local
INSTALL_BUILD = -c release --scratch-path .build-install --static-swift-stdlib -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DBATCHNORMKIT_FMA $(AVX512)
# Coverage instrumentation is explicit: --sanitize fuzzer alone links libFuzzer
# but leaves Swift code uninstrumented (libFuzzer then finds no new inputs).
FUZZ        = --scratch-path .build-fuzz --sanitize fuzzer --sanitize address -Xswiftc -DFUZZING \
              -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= idx safetensors checkpoint cli
BENCH_NATIVE   = .build-native/release/bnkbench
BENCH_PORTABLE = .build-portable/release/bnkbench
# Python tools (matplotlib for charts, torch for fixtures and side-by-side
# benchmarks) live in a project-local virtual environment, never in the
# system Python. `make venv` makes it with matplotlib; `make venv-torch`
# adds PyTorch's CPU build and safetensors.
VENV        = .venv
PYTHON      = $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0+cpu
# MPI jobs on this machine: NP processes, more than the cores allowed, shared
# memory only (no network); as root (CI containers) Open MPI needs the two
# OMPI_ALLOW_RUN_AS_ROOT variables. On a cluster run mpirun yourself (README).
NP         ?= 2
MPIRUN      = OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np $(NP) --oversubscribe --bind-to none \
              --mca pml ob1 --mca btl self,vader --mca btl_vader_single_copy_mechanism none
BNKMPI      = .build-native/release/bnkmpi

.PHONY: bench-report venv venv-torch deps build test test-release test-asan test-tsan train train-mpi bench-mpi compare-lr experiments bench bench-native bench-portable bench-smoke bench-compare fuzz fixtures clean bench-ab bench-mpi-run test-mpi-tcp docs install report

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
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet matplotlib numpy
	touch $@

## venv-torch: the same environment plus PyTorch (CPU) and safetensors
venv-torch: $(VENV)/.torch-ready
$(VENV)/.torch-ready: $(VENV)/.plot-ready
	$(VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)" safetensors
	touch $@

build: deps
	$(SWIFT) build

## test: build, the DocC docs (`make docs`: a warning fails), the benchmark smoke test, then every unit test
test: deps
	$(SWIFT) build --build-tests
	@$(MAKE) --no-print-directory docs
	$(SWIFT) run bnkbench --smoke
	$(SWIFT) test

## docs: BatchNormKit's DocC documentation (.build/plugins/Swift-DocC/outputs/BatchNormKit.doccarchive);
## every DocC warning is an error, so an undocumented parameter or a broken symbol link fails the build
docs:
	$(SWIFT) package generate-documentation --target BatchNormKit --warnings-as-errors

## test-release: every test again in an optimized build (threaded code can
## behave differently under -O; SyncBatchNorm's all-reduce once did)
test-release: deps
	$(SWIFT) test -c release
	$(SWIFT) run -c release bnkbench --smoke

## test-asan: every test under AddressSanitizer and LeakSanitizer (.build-asan);
## only libXCTest's own leak at exit is suppressed (Tests/Sanitizers/lsan.supp)
test-asan: deps
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/Sanitizers/lsan.supp ASAN_OPTIONS=detect_leaks=1 \
	  $(SWIFT) test --scratch-path .build-asan --sanitize=address

## test-tsan: every test under ThreadSanitizer (.build-tsan): the kernels' thread
## pool, SyncBatchNorm's all-reduce, data-parallel ranks
test-tsan: deps
	TSAN_OPTIONS=halt_on_error=1 $(SWIFT) test --scratch-path .build-tsan --sanitize=thread

## install: bnkit for this CPU into $(PREFIX)/bin (default /usr/local; DESTDIR for staging),
## the Swift runtime linked in, so it needs only OpenBLAS, LAPACKE, zlib and Open MPI's libmpi at run time
install: deps
	$(SWIFT) build $(INSTALL_BUILD) --product bnkit
	install -d "$(DESTDIR)$(PREFIX)/bin"
	install -m 755 .build-install/release/bnkit "$(DESTDIR)$(PREFIX)/bin/bnkit"
	@echo "installed $(DESTDIR)$(PREFIX)/bin/bnkit"

## train: the main job — the seed network on Fashion-MNIST, 10 epochs
train: deps
	$(SWIFT) build $(NATIVE) --product bnkit
	$(BNKIT) train $(TRAIN_ARGS)

## train-mpi: the main job data-parallel on NP MPI processes (default 2) on this machine
train-mpi: deps
	$(SWIFT) build $(NATIVE) --product bnkit
	$(MPIRUN) $(BNKIT) train --distributed mpi $(TRAIN_ARGS)

## test-mpi-tcp: the MPI checks across a real TCP link — two "hosts" in network
## namespaces joined by a veth pair (root and iproute2; skipped where namespaces cannot be made)
test-mpi-tcp: deps
	$(SWIFT) build --product bnkmpi
	@for c in collectives syncbn train fail-throw fail-kill; do \
	  sh Scripts/mpi_netns.sh $(CURDIR)/.build/debug/bnkmpi check $$c > .build/mpi-tcp-$$c.log 2>&1; status=$$?; \
	  if [ $$status -eq 77 ]; then cat .build/mpi-tcp-$$c.log; exit 0; fi; \
	  case $$c in fail-*) ok=$$([ $$status -ne 0 ] && grep -q "rank 1" .build/mpi-tcp-$$c.log && echo yes);; \
	              *) ok=$$([ $$status -eq 0 ] && [ $$(grep -c "^ok $$c rank" .build/mpi-tcp-$$c.log) -eq 2 ] && echo yes);; esac; \
	  if [ "$$ok" = yes ]; then echo "test-mpi-tcp: $$c ok ($$(tail -1 .build/mpi-tcp-$$c.log))"; \
	  else echo "test-mpi-tcp: $$c FAILED (status $$status)"; cat .build/mpi-tcp-$$c.log; exit 1; fi; \
	done

## bench-mpi: samples/s of the seed network's step on 1 and 2 MPI ranks and 2 thread
## ranks, the step's all-reduce (bytes, µs), PyTorch DDP (Gloo) on 2 processes when
## torch is importable; then the README's cost model from those figures
bench-mpi: deps
	$(SWIFT) build $(NATIVE) --product bnkmpi
	mkdir -p bench-results
	{ python3 Scripts/mpi_cost_model.py --machine; \
	  $(MAKE) --no-print-directory NP=1 bench-mpi-run; $(MAKE) --no-print-directory NP=1 BENCH_ARGS="--batch 1024 --steps 20" bench-mpi-run; \
	  $(MAKE) --no-print-directory NP=2 bench-mpi-run; \
	  $(BNKMPI) bench --thread-ranks 2 $(BENCH_ARGS); \
	  if [ -x $(PYTHON) ] && $(PYTHON) -c "import torch" 2>/dev/null; then $(PYTHON) Scripts/bench_ddp.py $(BENCH_ARGS); \
	  else echo "bench-mpi: PyTorch not in .venv (make venv-torch), no DDP figures" >&2; fi; } | tee bench-results/mpi.jsonl
	python3 Scripts/mpi_cost_model.py bench-results/mpi.jsonl $(if $(UPDATE_README),--update-readme README.md)
	$(if $(UPDATE_README),grep '^{' bench-results/mpi.jsonl > Benchmarks/mpi-measured.jsonl)
bench-mpi-run: # one bnkmpi bench under $(MPIRUN) (called by bench-mpi)
	$(MPIRUN) $(BNKMPI) bench $(BENCH_ARGS)

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

## report: the BatchNorm lab — the lesson's claims (eleven experiments) measured on Fashion-MNIST over seeds
## (bnkit lab): a CSV per experiment, charts, verdicts computed by stated rules, in
## $(REPORT_DIR)/REPORT.md and a self-contained $(REPORT_DIR)/index.html. QUICK=1: the small budget.
REPORT_DIR ?= report
report: deps
	$(SWIFT) build $(NATIVE) --product bnkit
	@$(MAKE) --no-print-directory venv
	$(BNKIT) lab --output $(REPORT_DIR) $(if $(QUICK),--quick) $(LAB_ARGS)
	$(PYTHON) Scripts/plot_report.py $(REPORT_DIR)

bench: bench-native bench-portable

bench-native: deps
	$(SWIFT) build $(NATIVE) --product bnkbench
	$(BENCH_NATIVE) --build native $(BENCH_ARGS)

bench-portable: deps
	$(SWIFT) build $(PORTABLE) --product bnkbench
	$(BENCH_PORTABLE) --build portable $(BENCH_ARGS)

## bench-report: the Benchmarks/README.md table — BENCH_PAIRS (default 3) alternating runs of the
## native bench and of Scripts/bench_torch.py (both at 1 and 2 threads), each case's best median per
## side (Scripts/bench_merge.py), one portable run, then Scripts/bench_table.py → bench-results/table.md
BENCH_PAIRS ?= 3
bench-report: deps venv-torch
	$(SWIFT) build $(NATIVE) --product bnkbench
	$(SWIFT) build $(PORTABLE) --product bnkbench
	mkdir -p bench-results/pairs && rm -f bench-results/pairs/*.json
	for r in $$(seq 1 $(BENCH_PAIRS)); do \
	  $(BENCH_NATIVE) --build native $(BENCH_ARGS) --json bench-results/pairs/native-$$r.json > bench-results/pairs/native-$$r.txt || exit 1; \
	  $(PYTHON) Scripts/bench_torch.py --swift-json bench-results/pairs/native-$$r.json --out bench-results/pairs/torch-$$r.json \
	    > bench-results/pairs/torch-$$r.txt || exit 1; \
	done
	python3 Scripts/bench_merge.py bench-results/bench-native.json bench-results/pairs/native-*.json
	python3 Scripts/bench_merge.py bench-results/bench-torch.json bench-results/pairs/torch-*.json
	$(BENCH_PORTABLE) --build portable --threads 1 --no-alloc > bench-results/portable.txt
	python3 Scripts/bench_table.py > bench-results/table.md
	@echo "bench-report: bench-results/table.md"

bench-smoke: deps
	$(SWIFT) run bnkbench --smoke

## bench-ab: old (merge base with main) against new bench binaries, alternating (Scripts/ab_bench.sh)
bench-ab: deps
	Scripts/ab_bench.sh $(AB_ROUNDS)

## bench-compare: the same cases in PyTorch, when torch is importable (never installs it)
bench-compare: bench-native
	@if [ -x $(PYTHON) ] && $(PYTHON) -c "import torch" 2>/dev/null; then $(PYTHON) Scripts/bench_torch.py && $(PYTHON) Scripts/bench_conv_torch.py; \
	else echo "bench-compare: PyTorch not in .venv (make venv-torch), skipping the PyTorch side"; fi

## fuzz: coverage-guided libFuzzer (with AddressSanitizer) on every file parser and on
## bnkit's train/eval arguments (cli), FUZZ_SECONDS each; prints coverage and corpus
## growth per target. Crashing inputs land in fuzz-findings/<target>/; replay a parser
## finding with .build/debug/bnkfuzz <target> FILE, a cli one with .build-fuzz/debug/bnkit FILE
fuzz: deps
	$(SWIFT) build $(FUZZ) --product bnkfuzz
	$(SWIFT) build $(FUZZ) --product bnkit
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  if [ $$t = cli ]; then Fuzz/run_fuzz.sh cli .build-fuzz/debug/bnkit $(FUZZ_SECONDS) -max_len=512 -close_fd_mask=3 -timeout=60 || exit 1; \
	  else Fuzz/run_fuzz.sh $$t .build-fuzz/debug/bnkfuzz $(FUZZ_SECONDS) -max_len=65536 || exit 1; fi; \
	done

## fixtures: rewrite the golden files from PyTorch (installs torch into .venv)
fixtures: venv-torch
	$(PYTHON) Scripts/make_fixtures.py
	$(PYTHON) Scripts/make_optimizer_fixtures.py
	$(PYTHON) Scripts/make_conv_fixtures.py

clean:
	rm -rf .build .build-native .build-portable .build-fuzz .build-asan .build-tsan .build-install
