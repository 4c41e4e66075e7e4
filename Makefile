# Two entry points, each doing all set-up on a fresh machine (Python 3.11 + pip, nothing else):
#   make demo   - install, then run the whole pipeline on a generated dataset (no downloads)
#   make test   - install with test extras, then run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test install clean

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

clean:
	rm -rf $(VENV) edge-demo .pytest_cache
