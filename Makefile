# kubatch — every target sets itself up: a fresh clone needs only `make demo` or `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv binaries images lint crds test test-unit test-component test-integration test-e2e test-chaos chaos test-real demo bench-core bench-e2e bench-sim clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null || { echo "python3 is required (3.11+)"; exit 1; }
	@$(PY) -c 'import venv, ensurepip' 2>/dev/null || { echo "installing python3-venv"; apt-get update -qq && apt-get install -y -qq python3-venv; }
	@command -v openssl >/dev/null || { echo "installing openssl"; apt-get update -qq && apt-get install -y -qq openssl; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

venv: $(STAMP) ## create .venv and install kubatch with its test tools

binaries: $(STAMP) ## obtain the Kubernetes binaries (KUBEBUILDER_ASSETS, cache, or a build from Debian's source)
	$(BIN)/kubatch local binaries --real-node

images: $(STAMP) binaries ## build the real node's images: pause, busybox, the operator's Dockerfile (cached)
	$(BIN)/kubatch local images --if-supported

lint: $(STAMP) ## ruff, ruff format --check, mypy strict, import-linter
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

crds: $(STAMP) ## regenerate crds/ and the chart's CRDs from the pydantic models
	$(BIN)/kubatch crds --out crds --chart helm/kubatch/files/crds

test: $(STAMP) binaries lint ## every check: lint, types, layers, unit, component, integration, e2e, chaos (fast) and real tests
	$(BIN)/pytest tests/unit tests/component tests/integration
	$(BIN)/pytest tests/e2e
	$(BIN)/pytest tests/chaos
	$(BIN)/kubatch local images --if-supported
	$(BIN)/pytest tests/real

test-unit: $(STAMP) ## unit tests only (no control plane)
	$(BIN)/pytest tests/unit

test-component: $(STAMP) ## the controller in-process on FakeKube (no control plane, seconds)
	$(BIN)/pytest tests/component

test-integration: $(STAMP) binaries ## integration tests on the local control plane
	$(BIN)/pytest tests/integration

test-e2e: $(STAMP) binaries ## end-to-end tests with simulated node pools and the operator
	$(BIN)/pytest tests/e2e

test-chaos: $(STAMP) binaries ## the chaos tier's fast subset: seven fault scenarios, fewer jobs (minutes)
	$(BIN)/pytest tests/chaos

chaos: $(STAMP) binaries ## the chaos run: >= 1,000 BatchJobs, seven fault scenarios, invariants -> bench/results/chaos.json
	$(BIN)/kubatch bench chaos --json bench/results/chaos.json $(CHAOS_ARGS)

test-real: $(STAMP) images ## real containers on a real kubelet node, the chart installed in-cluster
	$(BIN)/pytest tests/real

demo: $(STAMP) binaries ## the embedded demo: local control plane, simulated pools, operator, examples
	$(BIN)/kubatch demo $(DEMO_ARGS)

bench-core: $(STAMP) ## scheduling-core benchmark -> bench/results/core.json
	$(BIN)/kubatch bench core --json bench/results/core.json

bench-e2e: $(STAMP) binaries ## whole-stack benchmark against raw Jobs -> bench/results/e2e.json
	$(BIN)/kubatch bench e2e --json bench/results/e2e.json

bench-sim: $(STAMP) binaries ## simulated node pools at 1,000 nodes / 10,000 pods -> bench/results/sim.json
	$(BIN)/kubatch bench sim --json bench/results/sim.json

clean: ## remove the venv and caches (not the cached Kubernetes binaries)
	-$(BIN)/kubatch local down 2>/dev/null
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
