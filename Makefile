# runctl-tui: `make help` lists the targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## Create .venv and install the project with its dev tools

.PHONY: demo
demo: $(STAMP) ## Open the dashboard on the built-in demo fleet (no credentials)
	$(BIN)/runctl-tui --demo

.PHONY: run
run: $(STAMP) ## Open the dashboard on your AWS account
	$(BIN)/runctl-tui

.PHONY: dev
dev: $(STAMP) ## The demo under `textual run --dev` (pair with `textual console`)
	$(BIN)/textual run --dev runctl_tui.cli:main --demo

.PHONY: test
test: $(STAMP) ## Every test, integration tests against local servers included
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: $(STAMP) ## Unit, Pilot and snapshot tests only
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff format --check, ruff check, mypy --strict, import contracts
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

.PHONY: check
check: lint test ## Lint, then every test

.PHONY: snapshots-update
snapshots-update: $(STAMP) ## Re-record snapshots (review snapshot_report.html first)
	$(BIN)/pytest tests/tui --snapshot-update -p no:xdist

.PHONY: screenshots
screenshots: $(STAMP) ## Regenerate screenshots/*.svg from the demo
	$(BIN)/python screenshots/generate.py

.PHONY: bench
bench: $(STAMP) ## Start-up, poll and UI-stall benchmarks (prints ratios)
	$(BIN)/python -m bench

.PHONY: clean
clean: ## Remove the venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info

.PHONY: help
help: ## This list
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'
