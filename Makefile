# Two entry points for a fresh machine: `make demo` (circuits discover on the bundled
# model) and `make test`.
# Both create .venv and install through constraints.txt, which pins the CPU
# build of torch so installs do not pull CUDA packages.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job: circuits discover on the bundled model for IOI (offline, about 2 minutes).
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/circuits discover --task ioi --out circuit_run --overwrite

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

# Attribution and faithfulness speed/memory vs the plain HF model (~12 min on 2 cores);
# see benchmarks/. `make bench BENCH_ARGS="--quick --json bench.json"`.
BENCH_ARGS ?=
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.bench_attribution $(BENCH_ARGS)
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.bench_faithfulness
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.bench_memory
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.bench_graph_ops

# Every method on every bundled model and task: CPR, CMD, minimal circuit, time (see
# benchmarks/compare_methods.py). `make compare COMPARE_ARGS="--models toy-gpt2 --tasks ioi"`.
COMPARE_ARGS ?=
compare: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.compare_methods $(COMPARE_ARGS)

.PHONY: install demo test lint bench compare
