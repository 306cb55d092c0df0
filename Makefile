# One command per job. `make up` brings the dev stack up; `make test` runs every test.
PYTHON ?= python3
VENV ?= venv
BIN := $(VENV)/bin
STACK ?= dev
SHARED ?= ../shared

.PHONY: up init preview destroy test fuzz test-data tools lint typecheck ci-lint renovate-check schema bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## up: set everything up and run `pulumi up` on the dev stack (local file backend)
up: $(BIN)/.installed
	$(BIN)/python -m automation up --stack $(STACK)

## init: create a stack from an example: make init STACK=lab FROM=examples/single-host.yaml
## (local state, passphrase-encrypted secrets; it asks for each secret the config names)
init: $(BIN)/.installed
	$(BIN)/python -m automation init --stack $(STACK) $(if $(FROM),--from $(FROM))

preview: $(BIN)/.installed
	$(BIN)/python -m automation preview --stack $(STACK)

destroy: $(BIN)/.installed
	$(BIN)/python -m automation destroy --stack $(STACK)

## test: set up and run the whole test suite (installs haproxy/promtool if missing), on two
## workers, then say how long it took (the target is 45 s on 2 cores). Bytecode caching is on
## for the run even where PYTHONDONTWRITEBYTECODE is set: each worker and each `python -m
## automation` the tests start would otherwise compile the project (and pytest rewrite every
## test module) again, about 5 s of a fresh clone's run.
test: $(BIN)/.installed tools
	@start=$$(date +%s); PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n 2 --dist worksteal; status=$$?; \
	echo "make test: the whole suite took $$(( $$(date +%s) - start )) s (2 workers)"; exit $$status

## fuzz: the property-based tests with many more cases and a new seed (HYPOTHESIS_EXAMPLES=2000)
fuzz: $(BIN)/.installed tools
	HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest -q -n 2 tests/test_properties.py

## tools: the tools the tests use (Debian packages, npm packages), and a running Docker engine
tools:
	scripts/install-tools.sh
	scripts/start-dockerd.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy components stacks automation policies

## ci-lint: audit the GitHub workflows: zizmor (offline, fails on medium severity and up) and
## actionlint (with shellcheck on the run: scripts)
ci-lint: $(BIN)/.installed tools
	$(BIN)/zizmor --offline --no-progress --min-severity medium .github/workflows
	$(BIN)/actionlint .github/workflows/*.yml

## renovate-check: renovate.json through Renovate's own validator (the release pinned, with its
## lockfile, in .ci/renovate; scripts/install-tools.sh installs it with npm)
renovate-check: tools
	.ci/renovate/node_modules/.bin/renovate-config-validator --strict --no-global renovate.json

## schema: write the JSON schema of the stack config for editors
schema: $(BIN)/.installed
	$(BIN)/python scripts/export_schema.py schema/homelab.schema.json

## bench: program evaluation time/memory, Docker API calls over SSH with and without multiplexing, restore against its floor
bench: $(BIN)/.installed
	$(BIN)/python bench/bench_homelab.py
	$(BIN)/python bench/bench_ssh.py
	$(BIN)/python bench/bench_restore.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

## test-data: derive tests/data (chart value keys, CRD schemas) from the shared folder again
test-data: $(BIN)/.installed
	$(BIN)/python scripts/derive_test_data.py --shared $(SHARED)
