# One command per job. `make up` brings the dev stack up; `make test` runs every test.
PYTHON ?= python3
VENV ?= venv
BIN := $(VENV)/bin
STACK ?= dev

.PHONY: up preview destroy test tools lint typecheck ci-lint renovate-check schema bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## up: set everything up and run `pulumi up` on the dev stack (local file backend)
up: $(BIN)/.installed
	$(BIN)/python -m automation up --stack $(STACK)

preview: $(BIN)/.installed
	$(BIN)/python -m automation preview --stack $(STACK)

destroy: $(BIN)/.installed
	$(BIN)/python -m automation destroy --stack $(STACK)

## test: set up and run the whole test suite (installs haproxy/promtool if missing)
test: $(BIN)/.installed tools
	$(BIN)/python -m pytest -q

tools:
	scripts/install-tools.sh

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

## bench: program evaluation time/memory, and Docker API calls over SSH with and without multiplexing
bench: $(BIN)/.installed
	$(BIN)/python bench/bench_homelab.py
	$(BIN)/python bench/bench_ssh.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
