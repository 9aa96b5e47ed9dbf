# Two commands set everything up on a fresh machine:
#   make demo   - runs the product's main job end to end on the embedded defaults
#   make test   - runs the whole test suite (lint and type checks included)
# Both bootstrap what they need (virtual environment, packages, Kubernetes test binaries) and are idempotent.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all venv demo test conformance soak lint bench kube-bins clean dev-up dev-down

all: test

# The data mover's native walk and scan (Rust, PyO3): built with cargo from crates.io by maturin from PyPI.
NATIVE := native/fastwalk
NATIVE_SRC := $(NATIVE)/pyproject.toml $(NATIVE)/Cargo.toml $(NATIVE)/Cargo.lock $(wildcard $(NATIVE)/src/*.rs)

# Re-install only when pyproject.toml or the native sources change.
$(STAMP): pyproject.toml $(NATIVE_SRC)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q ./$(NATIVE)
	@touch $(STAMP)

venv: $(STAMP)

# Kubernetes test binaries (kube-apiserver, etcd) built from the Go module proxy, cached under .cache/.
kube-bins: $(STAMP)
	$(PY) -m localdev.kube.build

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

test: lint kube-bins
	$(PY) -m pytest
	$(PY) -m tests.conformance.oss2_sdk

# The oss2 SDK's own tests (from its sdist, fetched once with pip) against the local OSS server.
conformance: $(STAMP)
	$(PY) -m tests.conformance.oss2_sdk

# Many rounds of the kill tests (make test runs a short version of each).
soak: kube-bins
	$(PY) -m pytest -m soak -s

demo: kube-bins
	$(VENV)/bin/backupctl demo

# The data mover's peers (restic 0.18.1, kopia 0.21.1) are built from the Go module proxy, once.
bench: kube-bins
	$(PY) -m bench.peers
	@for b in bench/[a-z]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

dev-up: kube-bins
	$(VENV)/bin/backupctl dev up

dev-down: $(STAMP)
	$(VENV)/bin/backupctl dev down

clean:
	-$(VENV)/bin/backupctl dev down
	rm -rf $(VENV) .dev .pytest_cache .mypy_cache .ruff_cache
