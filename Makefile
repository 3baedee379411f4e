# Two commands do all the set-up on a fresh machine with Python and git:
#   make demo   the sandbox admin at http://127.0.0.1:8000/admin/
#   make test   the whole test suite
# Both use DATABASE_URL when it is set, else an embedded PostgreSQL from PyPI.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint benchmark benchmark-scale demo clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,lint,demo]"
	touch $@

# The demo needs less than the tests: the package, its admin, an embedded PostgreSQL.
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[demo]"
	touch $@

# Options go through ARGS (and PORT), e.g. make demo PORT=8001 ARGS="--entries 1000000"
demo: $(VENV)/.installed-demo
	$(BIN)/python -m sandbox $(ARGS)

test: $(VENV)/.installed
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

benchmark: $(VENV)/.installed
	$(BIN)/python -m tests.benchmarks

# The log at 10^5, 10^6 and 10^7 entries, unpartitioned and by month (~10 min on a quiet 2-core
# machine, much longer on a busy one; not in CI),
# e.g. make benchmark-scale ARGS="--sizes 100000,1000000 --layouts partitioned"
benchmark-scale: $(VENV)/.installed
	$(BIN)/python -m tests.scale_benchmark $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
