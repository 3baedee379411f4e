# Two commands do all the set-up on a fresh machine with Python and git:
#   make demo   the sandbox admin at http://127.0.0.1:8000/admin/
#   make test   the whole test suite
# Both use DATABASE_URL when it is set, else an embedded PostgreSQL from PyPI.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint benchmark clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,lint]"
	touch $@

test: $(VENV)/.installed
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

benchmark: $(VENV)/.installed
	$(BIN)/python -m tests.benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
