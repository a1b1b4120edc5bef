# mintq — every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam

.DEFAULT_GOAL := help
.PHONY: help dev test test-unit test-integration lint typecheck validate build contracts page bench clean openapi fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(VENV)/.stamp: requirements-dev.txt layers/common/python/requirements.txt functions/batch/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -e .  # the mintq package and its operators' command, `mintq`
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(SAM_VENV)/.stamp:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --upgrade pip
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==1.170.0
	touch $@

.PHONY: deps
deps: $(VENV)/.stamp node_modules/.stamp

dev: deps ## run the local stack in the foreground (PostgreSQL, anvil, API on :3000, batch worker)
	$(PY) -m devstack

# Workers for the parallel part of `make test`, whole modules each (tests/support/scheduling.py):
# its tests mostly wait (blocks, start-ups), so more workers than cores pay off; the tests
# marked `serial` run afterwards, alone.
TEST_WORKERS ?= 4

# Both parts run whatever the first gave; pytest's 5 (nothing selected) fails only if both say it.
test: deps ## run the whole test suite against real PostgreSQL and anvil (TEST_WORKERS=4 in parallel, then the serial tests)
	parallel=0; alone=0; \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder -m "not serial" $(PYTEST_ARGS) || parallel=$$?; \
	$(PY) -m pytest -m serial $(PYTEST_ARGS) || alone=$$?; \
	if [ $$parallel = 5 ] && [ $$alone = 5 ]; then exit 5; fi; \
	for code in $$parallel $$alone; do case $$code in 0|5) ;; *) exit $$code ;; esac; done

test-unit: deps ## unit tests only (no database, no chain)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: deps ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: deps ## mypy --strict over the mintq package and the local stack
	$(VENV)/bin/mypy

validate: $(SAM_VENV)/.stamp ## sam validate --lint
	$(SAM) validate --lint

build: $(SAM_VENV)/.stamp ## sam build (no Docker needed)
	$(SAM) build

fuzz: deps ## a longer hunt with fresh cases: schemathesis against the local stack, and the Hypothesis fuzzers (FUZZ_EXAMPLES=500)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-500} $(PY) -m pytest -s -p no:cacheprovider --hypothesis-show-statistics \
		tests/integration/test_api_schemathesis.py tests/functional/test_fuzz_api.py $(PYTEST_ARGS)

openapi: deps ## regenerate openapi.json from the Powertools routes (tests/unit/test_openapi.py fails until you do)
	PYTHONPATH=layers/common/python $(PY) -c 'from mintq import openapi; open("openapi.json", "w").write(openapi.document_json())'

contracts: node_modules/.stamp ## recompile contracts/*.sol into contracts/artifacts/
	node scripts/build-contracts.mjs

page: node_modules/.stamp ## rebundle the mint page's x402 wallet client (web/ -> functions/status/static/)
	node_modules/.bin/esbuild web/x402-client.js $(PAGE_BUNDLE_FLAGS) --outfile=functions/status/static/x402-client.js

# One definition, also used by the test that checks the committed bundle is current.
PAGE_BUNDLE_FLAGS := --bundle --format=iife --global-name=MintqX402 --minify --legal-comments=none --target=es2020 --log-level=warning

bench: deps ## benchmark drain, enqueue, status and cold start (BENCH_ARGS="--quick" for a short run)
	$(PY) -m pip install -q -r bench/requirements.txt
	$(PY) bench/run.py $(BENCH_ARGS)

clean: ## remove local state and build output
	rm -rf .local .aws-sam
