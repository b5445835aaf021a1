# gemini-sft: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PROJECT ?= $(shell gcloud config get-value project 2>/dev/null)
REGION ?= us-central1
IMAGE ?= $(REGION)-docker.pkg.dev/$(PROJECT)/gemini-sft/gemini-sft:$(VERSION)
BENCH_MB ?= 1000

.DEFAULT_GOAL := help
.PHONY: help install install-open-weights test compile run-local image image-gpu bench bench-open-weights mutate lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-20s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Create .venv and install the pinned dependencies (constraints.txt)

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

install-open-weights: $(VENV)/.installed-open-weights ## Also install the open-weights extra (torch 2.13.0, transformers, peft, trl)

$(VENV)/.installed-open-weights: $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,open-weights]"
	touch $@

test: install-open-weights ## Run the whole test suite (open-weights training and browser tests included)
	$(BIN)/python -m pytest -q

compile: install ## Regenerate compiled/gemini_sft_pipeline.yaml from the code
	$(BIN)/gemini-sft compile

run-local: install ## Run the whole pipeline offline on the shipped sample
	$(BIN)/gemini-sft run --local

image: ## Build and push the component image with Cloud Build (PROJECT=..., REGION=...)
	gcloud builds submit --project $(PROJECT) --config cloudbuild.yaml --substitutions=_IMAGE=$(IMAGE) .
	@echo "Now compile against it: $(BIN)/gemini-sft compile --image $(IMAGE)"

image-gpu: ## Build and push the CUDA training image (open weights) with Cloud Build
	gcloud builds submit --project $(PROJECT) --config cloudbuild.gpu.yaml \
		--substitutions=_IMAGE=$(REGION)-docker.pkg.dev/$(PROJECT)/gemini-sft/gemini-sft-gpu:$(VERSION) .

bench: install ## Benchmarks: data throughput (BENCH_MB=1000) and evaluation rate
	$(BIN)/python benchmarks/bench_data.py --size-mb $(BENCH_MB)
	$(BIN)/python benchmarks/bench_evaluate.py

bench-open-weights: install-open-weights ## Benchmark: open-weights training tokens/s (and MFU on a GPU)
	$(BIN)/python benchmarks/bench_open_weights.py

mutate: install ## Mutation check of the gate: each one-operator change must fail tests/test_gate.py (not in CI)
	$(BIN)/python tools/mutate_gate.py

lock: install-open-weights ## Regenerate constraints.txt from the installed environment (all extras)
	# torch is pinned without its local build tag, so the CPU and the CUDA build both satisfy it.
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^gemini-sft' \
		| sed 's/^torch==\([0-9.]*\)+.*/torch==\1/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean: ## Remove the virtual environment, caches and local runs
	rm -rf $(VENV) .pytest_cache .hypothesis runs
