# Every target bootstraps the environment it needs: uv (from PyPI, into .uv/),
# then a Python 3.13 virtualenv (as on Lambda) synced from uv.lock.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
UV := .uv/bin/uv
# python3.13 from PATH, or pyenv's 3.13 when the shim needs PYENV_VERSION; the base
# interpreter when that is a virtualenv's (uv's have no pip to bootstrap uv with).
PYTHON313 ?= $(shell for py in "python3.13" "env PYENV_VERSION=3.13.0 python3.13"; do \
	$$py -c 'import sys; assert sys.version_info[:2] == (3, 13); print(sys._base_executable)' \
	2>/dev/null && break; done)
ENV ?= default

export SAM_CLI_TELEMETRY := 0
export PYTHONPATH := $(CURDIR)/layers/billing:$(CURDIR)
export PATH := $(CURDIR)/.venv/bin:$(CURDIR)/.uv/bin:$(PATH)
export UV_PYTHON := $(PYTHON313)
# TLS through the machine's certificate store, as pip does: behind a proxy with its
# own CA (installed system-wide), uv's bundled roots would refuse PyPI.
export UV_SYSTEM_CERTS := 1
# --locked: a uv.lock that no longer matches pyproject.toml fails instead of
# being re-resolved behind your back (`make lock` updates it).
SYNC := $(UV) sync --locked --quiet

.PHONY: help venv sandbox-venv lock dev check test tiers budgets test-stripe lint format unit build bench bench-check deploy openapi backfill clean

help:
	@echo "make dev      run the whole product offline on http://127.0.0.1:3000 (PORT=...)"
	@echo "make check    everyday checks (about a minute): lint, import contract, unit and integration tests"
	@echo "make test     everything CI runs: lint, every test tier and the counted performance budgets"
	@echo "make test-stripe  the Stripe-facing scenarios against your test-mode account (STRIPE_API_KEY=sk_test_...)"
	@echo "make lint     ruff, mypy --strict, cfn-lint, the import contract, the layer's pins"
	@echo "make lock     re-resolve uv.lock after editing pyproject.toml, and export the layer's pins"
	@echo "make build    sam build (no Docker needed)"
	@echo "make bench    cold starts, requests per operation, throughput, sizes -> bench/results/latest.md"
	@echo "make bench-check  the performance budgets, PASS/FAIL (exit 1 if one is broken)"
	@echo "make deploy   sam build && sam deploy (ENV=prod for the prod config)"
	@echo "make openapi  regenerate docs/openapi.json from the resolvers"
	@echo "make backfill rebuild the projection from Stripe (STACK=<name>: in the deployed stack)"

$(UV):
	@test -n "$(PYTHON313)" || { echo "error: Python 3.13 is required (python3.13 on PATH, or pyenv with 3.13.0)" >&2; exit 1; }
	$(PYTHON313) -m pip install --quiet --disable-pip-version-check --target .uv uv==$(UV_VERSION)

# Everything: the layer's runtime, the sandbox and the dev tools.
venv: $(UV)
	$(SYNC)

# Only what `make dev` needs (about a third of everything). --inexact keeps the
# dev tools of an earlier `make venv` instead of removing them.
sandbox-venv: $(UV)
	$(SYNC) --inexact --no-default-groups --group sandbox

# The layer installs its pins from a requirements file (SAM builds it from
# layers/billing alone), exported from the same lock; `make lint` checks it.
LAYER_PINS := $(UV) export --locked --quiet --no-dev --no-emit-project --no-header
lock: $(UV)
	$(UV) lock
	$(LAYER_PINS) > layers/billing/requirements.txt

lint: venv
	ruff check .
	ruff format --check .
	mypy
	cfn-lint template.yaml
	lint-imports
	@$(LAYER_PINS) | diff -q - layers/billing/requirements.txt >/dev/null || \
		{ echo "error: layers/billing/requirements.txt differs from uv.lock: run make lock" >&2; exit 1; }

format: venv
	ruff format .
	ruff check --fix .

# Test tiers (markers in pyproject.toml, given by folder in tests/conftest.py):
# unit, integration, e2e (the local stack, a real browser), robustness (faults,
# fuzzing, load). pytest-xdist spreads them over the cores.
PYTEST := pytest -q -n auto --dist worksteal

unit: venv
	$(PYTEST) -m unit

# Everyday work: lint, the import contract, unit and integration tests.
check: lint
	$(PYTEST) -m "unit or integration"

# What CI runs: lint, every tier and the counted performance budgets, side by side:
# lint and the budgets use one core each, and the tiers wait on sockets part of the
# time. -Otarget prints each one's output whole, when it ends.
test: venv
	@$(MAKE) --no-print-directory -j3 -Otarget lint tiers budgets

tiers: venv
	$(PYTEST)

budgets: venv
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
# PARAMETER_OVERRIDES="CheckoutTrialDays=14 ..." sets template parameters, as for sam deploy.
PORT ?= 3000
dev: sandbox-venv
	python -m sandbox.dev --port $(PORT) --parameter-overrides "$(PARAMETER_OVERRIDES)"

# Both measure what `sam build` produced (cold starts, layer size), so they build first.
bench: build
	python -m bench

bench-check: build
	python -m bench.check

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
