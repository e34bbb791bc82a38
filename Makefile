# kubatch — every target sets itself up: a fresh clone needs only `make demo` or `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv bytecode binaries images prometheus test-tools browser lint crds test test-unit test-component test-integration test-e2e test-chaos chaos test-real demo bench-core bench-e2e bench-e2e-sizes bench-e2e-10s bench-scale bench-sim bench-console soak-console console-shots clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null || { echo "python3 is required (3.11+)"; exit 1; }
	@$(PY) -c 'import venv, ensurepip' 2>/dev/null || { echo "installing python3-venv"; apt-get update -qq && apt-get install -y -qq python3-venv; }
	@command -v openssl >/dev/null || { echo "installing openssl"; apt-get update -qq && apt-get install -y -qq openssl; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@$(MAKE) --no-print-directory bytecode
	@touch $@

bytecode: ## compile kubatch's modules ahead (where PYTHONDONTWRITEBYTECODE is set, every operator process would compile them again: ~1 s per start)
	@$(BIN)/python -m compileall -q operator/kubatch bench/kubatch_bench >/dev/null

venv: $(STAMP) ## create .venv and install kubatch with its test tools

binaries: $(STAMP) ## obtain the Kubernetes binaries (KUBEBUILDER_ASSETS, cache, or a build from Debian's source)
	$(BIN)/kubatch local binaries --real-node

images: $(STAMP) binaries ## build the real node's images: pause, busybox, the operator's Dockerfile (cached)
	$(BIN)/kubatch local images --if-supported

prometheus: $(STAMP) ## Debian's prometheus + promtool, unpacked into ~/.cache/kubatch (dashboard and alert tests)
	$(BIN)/python -m kubatch.devkit.prometheus

test-tools: prometheus ## what the tests need besides the venv: prometheus, and cairo + fonts to draw the timeline's SVG as PNG
	@{ ldconfig -p | grep -q 'libcairo.so.2' && fc-list 2>/dev/null | grep -qi dejavu; } || { echo "installing libcairo2 and fonts-dejavu-core"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libcairo2 fonts-dejavu-core fontconfig >/dev/null; }
	@$(MAKE) --no-print-directory browser

browser: ## Debian's chromium + chromium-driver for the console's browser tests (headless, via Selenium)
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || { echo "installing chromium and chromium-driver"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }

lint: $(STAMP) ## ruff, ruff format --check, mypy strict, import-linter
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

crds: $(STAMP) ## regenerate crds/ and the chart's CRDs from the pydantic models
	$(BIN)/kubatch crds --out crds --chart helm/kubatch/files/crds

test: $(STAMP) binaries test-tools lint bytecode ## every check: lint, types, layers, unit, component, integration, e2e, chaos (fast) and real tests
	$(BIN)/pytest tests/unit tests/component tests/integration --durations=5
	$(BIN)/pytest tests/e2e --durations=10
	$(BIN)/pytest tests/chaos --durations=3
	$(BIN)/kubatch local images --if-supported
	$(BIN)/pytest tests/real --durations=5

test-unit: $(STAMP) test-tools ## unit tests only (no control plane)
	$(BIN)/pytest tests/unit

test-component: $(STAMP) ## the controller in-process on FakeKube (no control plane, seconds)
	$(BIN)/pytest tests/component

test-integration: $(STAMP) binaries ## integration tests on the local control plane
	$(BIN)/pytest tests/integration

test-e2e: $(STAMP) binaries test-tools ## end-to-end tests with simulated node pools and the operator
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

bench-e2e: $(STAMP) binaries ## whole stack, 10,000 jobs against raw Jobs, extras, fill to 15,000 (~45 min here) -> bench/results/e2e.json
	$(BIN)/kubatch bench e2e --profile 60 --json bench/results/e2e.json

bench-e2e-sizes: $(STAMP) binaries ## how time, writes and CPU grow with N -> bench/results/e2e-sizes.json
	$(BIN)/kubatch bench e2e --sizes 1000,5000,10000 --no-extras --json bench/results/e2e-sizes.json

bench-e2e-10s: $(STAMP) binaries ## writes per job with 10-s pods (no raw phase) -> bench/results/e2e-10s.json
	$(BIN)/kubatch bench e2e --pod-seconds 10 --no-raw --no-extras --json bench/results/e2e-10s.json

bench-scale: $(STAMP) binaries ## 100,000 BatchJobs and ten 10,000-child arrays: RSS, restarts -> bench/results/scale.json
	$(BIN)/kubatch bench scale --json bench/results/scale.json

bench-sim: $(STAMP) binaries ## simulated node pools at 1,000 nodes / 10,000 pods -> bench/results/sim.json
	$(BIN)/kubatch bench sim --json bench/results/sim.json

console-shots: $(STAMP) binaries test-tools ## the console's browser tests, writing their screenshots into docs/console/
	KUBATCH_CONSOLE_SHOTS=1 $(BIN)/pytest tests/e2e/test_console_browser.py

bench-console: $(STAMP) ## the console's index with 100,000 jobs: memory per job, list/filter/count times -> docs/console/index-bench.json
	$(BIN)/python tests/soak/console_index_bench.py

soak-console: $(STAMP) binaries browser ## the console left open MINUTES (default 60) with jobs flowing: memory of both sides -> docs/console/soak.json
	$(BIN)/python tests/soak/console_soak.py --minutes $(or $(MINUTES),60)

clean: ## remove the venv and caches (not the cached Kubernetes binaries)
	-$(BIN)/kubatch local down 2>/dev/null
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
