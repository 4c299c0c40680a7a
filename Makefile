# mediasuite: the project's interface. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
BENCH ?=
PYTEST_ARGS ?=
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= mediasuite:$(VERSION)
CHECKOV := .tools/checkov/bin/checkov

.PHONY: help setup protos proto-check lint test run bench clean lock image browser certs

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv with the locked dependencies and the suite installed (idempotent)

$(STAMP): requirements/lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements/lock.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	@test -f protos/gen/python/mediasuite/py.typed || $(BIN)/python tools/protos.py generate
	@touch $@

protos: $(STAMP) ## regenerate protos/gen/python from protos/ (commit the result)
	$(BIN)/python tools/protos.py generate

proto-check: $(STAMP) ## fail when the committed generated code differs from what protos/ produce
	$(BIN)/python tools/protos.py check

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

lint: $(STAMP) $(BUF) proto-check ## buf lint, ruff (bandit rules included), mypy, generated-code drift, pip-audit
	$(BIN)/python tools/protos.py lint --buf $(BUF)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services gateway bench tools tests
	$(BIN)/python tools/audit.py

# checkov lives in its own virtualenv: it pins many packages of its own (requirements/checkov.txt).
$(CHECKOV): requirements/checkov.txt
	@test -x .tools/checkov/bin/python || $(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/python -m pip --disable-pip-version-check -q install -r requirements/checkov.txt
	@touch $@

browser: ## install Debian's chromium for the dashboard tests (when /usr/bin/chromium is missing; needs root)
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

test: $(STAMP) $(CHECKOV) browser ## run the whole test suite (real Redis on 127.0.0.1:6379, real gRPC on loopback)
	$(BIN)/pytest $(PYTEST_ARGS)

run: $(STAMP) ## start all five services on loopback (Ctrl-C stops them gracefully)
	$(BIN)/mediasuite up

bench: $(STAMP) ## run the benchmarks under bench/ (BENCH=name runs one) and print the table
	$(BIN)/python -m bench $(BENCH)

image: ## build the container image IMAGE (default mediasuite:<version>); needs a Docker engine
	@command -v docker >/dev/null || { echo "make image needs docker (a Docker engine)"; exit 1; }
	docker build --tag $(IMAGE) .
	@echo "built $(IMAGE); deploy it: deploy/k8s/README.md"

clean: ## remove the virtualenv, caches and benchmark output
	rm -rf $(VENV) .tools .bench .pytest_cache .mypy_cache .ruff_cache

lock: $(STAMP) ## re-resolve requirements/lock.txt from pyproject.toml (keeps existing pins)
	$(BIN)/pip-compile -q --strip-extras --extra dev --no-emit-index-url --no-emit-find-links \
		-o requirements/lock.txt pyproject.toml

certs: $(STAMP) ## a development CA and mTLS certificates for every process in certs/ (git-ignored; `mediasuite up --tls certs`)
	$(BIN)/mediasuite certs --dir certs
