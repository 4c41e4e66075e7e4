# Two entry points, each doing all set-up on a fresh machine (Python 3.11 + pip, nothing else):
#   make demo   - install, then run the whole pipeline on a generated dataset (no downloads)
#   make test   - install with test extras, then run the whole test suite (what CI runs)
#   make test-fast - the tests that train no model, for the inner loop
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast lint install clean

$(BIN)/.edge-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.edge-installed

demo: install
	$(BIN)/edge demo --out edge-demo --force

test: install
	$(BIN)/python -m pytest -q

# The inner loop: everything that needs no model training (a few minutes on 2 cores).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) edge-demo .pytest_cache
