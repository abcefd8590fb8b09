# stt-fleet: `make demo` runs the whole system on this machine, `make test` runs the suite.
# Both install what they need first (Debian packages via apt, Python packages into .venv).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: all deps system-deps test demo lint typecheck proto bench clean

all: test

system-deps:
	@scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,plot]'
	touch $(STAMP)

deps: system-deps $(STAMP)

test: deps
	$(PY) -m pytest $(PYTEST_ARGS)

demo: deps
	$(PY) -m stt_localfleet.demo

lint: deps
	$(VENV)/bin/ruff check server operator localfleet tests e2e
	$(VENV)/bin/hadolint Dockerfile.server Dockerfile.operator

typecheck: deps
	$(VENV)/bin/mypy server/stt_server operator/stt_operator localfleet/stt_localfleet

proto: deps
	$(PY) -m stt_server.proto_build

bench: deps
	$(VENV)/bin/stt-bench --help

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
