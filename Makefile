# cortexlite — every setup step lives here, so `make up` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BASE_IMAGE ?= cortexlite/base:bookworm

.PHONY: install system check test test-only bench image base-image dockerd up down clean docs

install: $(STAMP)

$(STAMP): pyproject.toml runtime/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e 'runtime[onnx]' -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests and benchmarks use: the Docker engine, debootstrap, wrk.
system:
	bash scripts/install-system.sh

dockerd: system
	bash scripts/dockerd-start.sh

# The registry-less Python base image (debootstrap -> docker import), built once.
base-image: dockerd
	docker image inspect $(BASE_IMAGE) >/dev/null 2>&1 || \
		bash runtime/cortexlite_runtime/docker/make-base-image.sh --tag $(BASE_IMAGE)

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# The README's CLI reference, generated from the commands' help (a test fails when it drifts).
docs: install
	$(BIN)/python -m cortexlite.cli.reference README.md

test: install base-image check test-only

test-only:
	$(BIN)/pytest

bench: install base-image
	$(BIN)/python -m bench

# The host's CA bundle goes into the image explicitly (pip in containers may need it to reach an index);
# `make image CA_CERT=` builds without one.
CA_CERT ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
image: install base-image
	$(BIN)/cortexlite image build --base-image $(BASE_IMAGE) $(if $(CA_CERT),--ca-cert $(CA_CERT))

up: install
	bash scripts/up.sh

down:
	bash scripts/down.sh

clean:
	rm -rf $(VENV) build *.egg-info runtime/*.egg-info runtime/build
