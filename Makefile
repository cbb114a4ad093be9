# veille: every target creates .venv and installs the project on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= sources.yaml
DB     ?= storage/veille.db

.DEFAULT_GOAL := help
.PHONY: help install demo test run digest schedule lint check sources eval bench crashtest soak compat datasette docs clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install veille with its development tools

demo: $(STAMP)  ## offline: serve the bundled corpus on 127.0.0.1, run the pipeline into storage/demo.db (alerts to a local webhook), write and mail the digest
	$(BIN)/python -m tests.scripts.demo

test: $(STAMP)  ## run the test suite (offline, loopback only)
	$(BIN)/python -m pytest -q

run: $(STAMP)  ## one pass over sources.yaml into storage/veille.db
	$(BIN)/veille run --config $(CONFIG) --db $(DB)

digest: $(STAMP)  ## preview last week's digest from $(DB) into storage/digest.html and .txt (sends nothing)
	$(BIN)/veille digest --config $(CONFIG) --db $(DB) --out storage/digest.html

schedule: $(STAMP)  ## the scheduler daemon: runs and the weekly digest at the times in sources.yaml
	$(BIN)/veille schedule --config $(CONFIG) --db $(DB)

check: $(STAMP)  ## validate sources.yaml
	$(BIN)/veille check --config $(CONFIG)

datasette: $(STAMP)  ## serve $(DB) and its desk on 127.0.0.1:8001 (DB=storage/demo.db CONFIG=storage/demo/sources.yaml after make demo)
	$(BIN)/veille datasette --config $(CONFIG) --db $(DB)

sources: $(STAMP)  ## show each source's state
	$(BIN)/veille sources --db $(DB)

eval: $(STAMP)  ## precision and recall of the mention matcher and of the story grouping
	$(BIN)/python -m tests.scripts.eval_mentions
	$(BIN)/python -m tests.scripts.eval_stories

bench: $(STAMP)  ## speed figures beside baselines measured in the same run (BENCH_ARGS="--scale 0.1" for a quick look)
	$(BIN)/python -m tests.scripts.bench $(BENCH_ARGS)

soak: $(STAMP)  ## a week of veille on a simulated clock under faults (kills, SMTP down, disk full, the clock change), then checks (SOAK_ARGS="--sources 300")
	$(BIN)/python -m tests.scripts.soak $(SOAK_ARGS)

compat: $(STAMP)  ## links veille stores from feed parsers' test feeds (downloaded to ~/.cache/veille-compat) beside bare feedparser's (COMPAT_ARGS="--show 40")
	$(BIN)/python -m tests.scripts.compat $(COMPAT_ARGS)

crashtest: $(STAMP)  ## kill runs and sends with SIGKILL at random moments, then compare with a clean run (CRASH_ARGS=--trials 40)
	$(BIN)/python -m tests.scripts.crashtest $(CRASH_ARGS)

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check pipeline tests docs
	$(BIN)/ruff format --check pipeline tests docs
	$(BIN)/mypy

docs: $(STAMP)  ## regenerate the --help texts and transcripts in docs/ (cog); the tests fail until they match
	$(BIN)/cog -r -I docs $(shell grep -l '^<!-- \[\[\[cog' docs/*.md)

clean:  ## remove the virtualenv and caches (keeps databases)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
