# Every target bootstraps the virtualenv it needs (Python 3.13, as on Lambda).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
SANDBOX_REQUIREMENTS := requirements-sandbox.txt layers/billing/requirements.txt
# `make dev` installs only what the sandbox needs (about half the time of everything).
SANDBOX_STAMP := $(VENV)/.sandbox-$(shell cat $(SANDBOX_REQUIREMENTS) | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt $(SANDBOX_REQUIREMENTS) | sha256sum | cut -c1-12)
# python3.13 from PATH, or pyenv's 3.13 when the shim needs PYENV_VERSION.
PYTHON313 ?= $(shell for py in "python3.13" "env PYENV_VERSION=3.13.0 python3.13"; do \
	$$py -c 'import sys; assert sys.version_info[:2] == (3, 13); print(sys.executable)' 2>/dev/null && break; done)
ENV ?= default

export SAM_CLI_TELEMETRY := 0
export PYTHONPATH := $(CURDIR)/layers/billing:$(CURDIR)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help venv sandbox-venv dev test test-stripe lint format typecheck unit build bench bench-check deploy openapi backfill clean

help:
	@echo "make dev      run the whole product offline on http://127.0.0.1:3000 (PORT=...)"
	@echo "make test     lint, type-check, cfn-lint, all tests and the counted performance budgets"
	@echo "make test-stripe  the Stripe-facing scenarios against your test-mode account (STRIPE_API_KEY=sk_test_...)"
	@echo "make lint     ruff, mypy --strict, cfn-lint only"
	@echo "make build    sam build (no Docker needed)"
	@echo "make bench    cold starts, requests per operation, throughput, sizes -> bench/results/latest.md"
	@echo "make bench-check  the performance budgets, PASS/FAIL (exit 1 if one is broken)"
	@echo "make deploy   sam build && sam deploy (ENV=prod for the prod config)"
	@echo "make openapi  regenerate docs/openapi.json from the resolvers"
	@echo "make backfill rebuild the projection from Stripe (STACK=<name>: in the deployed stack)"

$(SANDBOX_STAMP): $(SANDBOX_REQUIREMENTS)
	@test -n "$(PYTHON313)" || { echo "error: Python 3.13 is required (python3.13 on PATH, or pyenv with 3.13.0)" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-sandbox.txt
	@rm -f $(VENV)/.sandbox-* && touch $@

$(STAMP): $(SANDBOX_STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

sandbox-venv: $(SANDBOX_STAMP)

lint: venv
	ruff check .
	ruff format --check .
	mypy
	cfn-lint template.yaml

format: venv
	ruff format .
	ruff check --fix .

unit: venv
	pytest tests/unit -q

test: lint
	pytest -q
	python -m bench.check --counted

# The contract scenarios of tests/contract against a real Stripe test-mode account.
test-stripe: venv
	python -m tools.test_stripe

build: venv
	sam build

deploy: build
	sam deploy --config-env $(ENV)

openapi: venv
	python -m tools.openapi

# With STACK: runs BackfillFunction in the deployed stack. Without: in this
# process, configured by the same environment variables as the functions.
backfill: venv
ifdef STACK
	sam remote invoke BackfillFunction --stack-name $(STACK) --event '{"replay": true}'
else
	python -m tools.backfill
endif

# The whole product offline: moto, the Stripe stand-in, the functions behind a
# local API gateway on :$(PORT) and the demo page. Ctrl-C stops all of it.
PORT ?= 3000
dev: sandbox-venv
	python -m sandbox.dev --port $(PORT)

# Both measure what `sam build` produced (cold starts, layer size), so they build first.
bench: build
	python -m bench

bench-check: build
	python -m bench.check

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
