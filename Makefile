# lienthong — every command sets up what it needs on a fresh machine.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
CODE := common services gateway scenarios cli brokers databases proto conformance tests

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	touch $@

setup: $(VENV)/.synced ## Create the virtual environment from the lock file

generate: setup ## Regenerate genproto/ from proto/
	$(BIN)/python proto/generate.py

lint: setup ## ruff, buf lint, buf breaking against the released v1, and a lock file that matches pyproject.toml
	$(UV) lock --check --quiet
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/buf lint
	$(BIN)/buf breaking --against proto/baseline/v1.binpb

typecheck: setup ## mypy, strict on our code
	$(BIN)/mypy $(CODE)

test: lint typecheck ## Everything CI runs: lint, types, the whole test suite
	$(BIN)/pytest

demo: setup ## One birth and one death declaration through the whole stack
	$(BIN)/lienthong demo

FUZZ_INPUTS ?= 10000
fuzz: setup ## Malformed requests to every RPC (FUZZ_INPUTS per RPC); a table of status codes
	$(BIN)/lienthong fuzz --inputs $(FUZZ_INPUTS)

fmt: setup ## Format and auto-fix
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)

clean: ## Remove the environment, caches and local data
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache data out

.PHONY: help setup generate lint typecheck test demo fuzz fmt clean
