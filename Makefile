# stt-fleet: `make demo` runs the whole system on this machine, `make test` runs the suite.
# Both install what they need first (Debian packages via apt, Python packages into .venv, and the
# Kubernetes control plane, kubectl and helm built with `go build` from pinned Go modules into
# ~/.cache/stt-fleet/k8s-<version>/bin: a cold build takes a while, a warm one nothing).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: all deps system-deps localfleet-bins test demo lint typecheck proto bench clean

all: test

system-deps:
	@scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[server,operator,dev,plot]'
	touch $(STAMP)

deps: system-deps $(STAMP)

localfleet-bins: deps
	$(VENV)/bin/stt-localfleet build

# STT_REQUIRE_CLUSTER: a test that needs the local control plane fails (not skips) without it.
test: deps localfleet-bins
	STT_REQUIRE_CLUSTER=1 $(PY) -m pytest $(PYTEST_ARGS)

demo: deps localfleet-bins
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
