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
.PHONY: help install test compile run-local image bench lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Create .venv and install the pinned dependencies (constraints.txt)

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

test: install ## Run the test suite (unit, component, compiled-spec and end-to-end tests)
	$(BIN)/python -m pytest -q

compile: install ## Regenerate compiled/gemini_sft_pipeline.yaml from the code
	$(BIN)/gemini-sft compile

run-local: install ## Run the whole pipeline offline on the shipped sample
	$(BIN)/gemini-sft run --local

image: ## Build and push the component image with Cloud Build (PROJECT=..., REGION=...)
	gcloud builds submit --project $(PROJECT) --config cloudbuild.yaml --substitutions=_IMAGE=$(IMAGE) .
	@echo "Now compile against it: $(BIN)/gemini-sft compile --image $(IMAGE)"

bench: install ## Benchmarks: data throughput (BENCH_MB=1000) and evaluation rate
	$(BIN)/python benchmarks/bench_data.py --size-mb $(BENCH_MB)
	$(BIN)/python benchmarks/bench_evaluate.py

mutate: install ## Mutation check of the gate: each one-operator change must fail tests/test_gate.py (not in CI)
	$(BIN)/python tools/mutate_gate.py

lock: install ## Regenerate constraints.txt from the installed environment
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^gemini-sft'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean: ## Remove the virtual environment, caches and local runs
	rm -rf $(VENV) .pytest_cache .hypothesis runs
