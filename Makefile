# Fresh-machine entry points (the README shows these two commands).
#   make quickstart   set up .venv, write the scikit-image samples, train the quickstart model
#   make test         set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate setup.py
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0          # the CPU wheel; install it first or pip pulls a CUDA build
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps --no-build-isolation basicsr==1.4.2   # test oracle only
	touch $@

setup: $(VENV)/.installed

quickstart: setup
	$(BIN)/python scripts/prepare_skimage_samples.py
	$(BIN)/restore-train -opt options/train/quickstart_skimage.yml

test: setup
	$(BIN)/python -m pytest -q tests

# Everything but the `slow`-marked tests (torchrun, the soak, Chromium, long subprocesses).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" tests

# The published-models lane: spandrel (and the torchvision it needs) in a venv of its own, so the
# core keeps torch==2.13.0 without torchvision. Runs only the `models`-marked tests.
MODELS_VENV ?= .venv-models
MODELS_BIN = $(MODELS_VENV)/bin

$(MODELS_VENV)/.installed: setup.py
	$(PYTHON) -m venv $(MODELS_VENV)
	$(MODELS_BIN)/pip install -q --upgrade pip
	$(MODELS_BIN)/pip install -q torch==2.14.1 torchvision==0.29.1 spandrel==0.4.2
	$(MODELS_BIN)/pip install -q -e '.[test,models]'
	touch $@

test-models: $(MODELS_VENV)/.installed
	$(MODELS_BIN)/python -m pytest -q -m models tests/test_published_models.py

.PHONY: setup quickstart test test-fast test-models
