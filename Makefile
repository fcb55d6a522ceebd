# Two commands do everything on a fresh machine: `make reproduce` and `make test`.
# Both create .venv when it is missing and reuse it (and everything already
# generated under data/) when it is there.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.icm-installed
PROFILE ?= demo
PYTEST_ARGS ?=

.PHONY: setup reproduce lint test test-all lab bench clean-data

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade-strategy only-if-needed -e ".[test]"
	touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/icm pipeline --profile $(PROFILE)

# Lint first (ruff, configured in pyproject.toml), then the tests.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: lint
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	$(BIN)/icm bench codec
	$(BIN)/icm bench train

clean-data:
	rm -rf data runs
