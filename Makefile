# One-command setup: `make demo` runs the quickstart sweep, `make ui` shows it in MLflow, `make test` runs the tests.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel lies on the machines we develop on; a GPU box can set TORCH_SPEC to a CUDA build.
TORCH_SPEC ?= torch==2.13.0
# `make ui`: the MLflow store the quickstart writes, and the port of the UI (bound to 127.0.0.1 only).
TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
UI_PORT ?= 5000

.PHONY: demo ui test install install-test install-browser clean

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

# One web worker and no job runner: ~500 MiB instead of ~2.6 GiB (docs/tracking.md). Ctrl-C stops it.
ui: $(VENV)/.installed
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri $(TRACKING_URI) \
		--host 127.0.0.1 --port $(UI_PORT) --workers 1

test: $(VENV)/.installed-test install-browser
	scripts/loopback-only $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) lstm-ray-results lstm-ray-reports mlflow.db mlartifacts
