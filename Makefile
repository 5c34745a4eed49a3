# One-command setup: `make demo` runs the quickstart sweep, `make test` runs the test suite.
# Both create .venv and install what they need on first use.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel lies on the machines we develop on; a GPU box can set TORCH_SPEC to a CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test install install-test install-browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The browser tests drive Debian's Chromium through pip's playwright; `playwright install` (a download) is never used.
install-browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: $(VENV)/.installed
	scripts/loopback-only $(BIN)/lstm-ray tune configs/quickstart.yaml

test: $(VENV)/.installed-test install-browser
	scripts/loopback-only $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) lstm-ray-results mlflow.db mlartifacts
