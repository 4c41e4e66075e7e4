# Two entry points, each doing all set-up on a fresh machine (Python 3.11 + pip, nothing else):
#   make demo   - install, then run the whole pipeline on a generated dataset (no downloads)
#   make test   - install with test extras, then run the whole test suite (what CI runs)
#   make test-fast - the tests that train no model, for the inner loop
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast lint install clean web-demo mediapipe-venv

$(BIN)/.edge-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.edge-installed

demo: install
	$(BIN)/edge demo --out edge-demo --force

test: install mediapipe-venv
	$(BIN)/python -m pytest -q

# The inner loop: everything that needs no model training (a few minutes on 2 cores).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# The web demo's runtime (onnxruntime-web, pinned by web_demo/package-lock.json) from the npm registry,
# copied into web_demo/public/vendor/ (git-ignored), where `edge serve` serves it. `edge serve` runs
# the same build itself when it is missing; this target is for CI and for machines set up ahead.
WEB_BUILT := web_demo/public/vendor/build.json
$(WEB_BUILT): web_demo/package-lock.json web_demo/build.mjs
	cd web_demo && npm ci --omit=dev --ignore-scripts --no-audit --no-fund && node build.mjs

web-demo: $(WEB_BUILT)

# MediaPipe Tasks in a venv of its own (its absl-py pin conflicts with tensorflow-model-optimization's):
# the consumer tests and `edge bench`'s mediapipe column run edge's TFLite files through it. Without it
# (no network) the tests skip and the bench says so.
MP_VENV := .venv-mediapipe
$(MP_VENV)/bin/.mediapipe-installed: tests/mediapipe/requirements.txt
	$(PYTHON) -m venv $(MP_VENV)
	$(MP_VENV)/bin/pip install --quiet -r tests/mediapipe/requirements.txt
	touch $@

mediapipe-venv:
	@$(MAKE) --no-print-directory $(MP_VENV)/bin/.mediapipe-installed \
		|| echo "the MediaPipe venv could not be made: the MediaPipe consumer tests will skip and edge bench has no mediapipe column"

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(MP_VENV) edge-demo .pytest_cache
