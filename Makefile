# Every target uses the project's own virtualenv (.venv), made by `make install`.
PY ?= .venv/bin/python
CONFIG ?= configs/gpt_shakespeare.py:cpu
WORKDIR ?= runs/shakespeare_cpu
SWEEP ?= experiments/shakespeare_char/sweep.py
SHARED_DATA := $(abspath ../shared/data)
export LLM_JAX_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),$(HOME)/.cache/llm_jax/data)

.PHONY: install install-bench test test-slow train sweep bench lint clean

# The CPU build of torch first: asked for by a plain range, pip would take a CUDA build (GBs).
TORCH ?= torch==2.13.0

install:
	python3 -m venv .venv
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e ".[dev,tfds]"

install-bench: install
	$(PY) -m pip install -e ".[bench]"

test:
	$(PY) -m pytest -n 2 -q

test-slow:
	$(PY) -m pytest -q -m slow

train:
	$(PY) -m llm_jax train --config=$(CONFIG) --workdir=$(WORKDIR)

sweep:
	$(PY) -m llm_jax sweep --config=$(CONFIG) --sweep=$(SWEEP) --workdir=runs/shakespeare_sweep

bench:
	$(PY) experiments/shakespeare_char/bench/bench_train.py

lint:
	$(PY) -m ruff check llm_jax tests configs experiments

clean:
	rm -rf runs .pytest_cache

# nanoGPT's char-level Shakespeare (cpu settings, about 7 minutes on 2 cores) as a pass/fail
# reproduction; the report goes to runs/reproduce/shakespeare_char_cpu/report.md.
.PHONY: reproduce-shakespeare
reproduce-shakespeare:
	$(PY) -m llm_jax.reproduce shakespeare_char_cpu
