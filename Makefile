# Vora: the two commands are `make demo` and `make test`; the rest are steps of them.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
VORA := $(VENV)/bin/vora
PYTEST_ARGS ?=

.PHONY: setup up down status reset test lint typecheck proto proto-check demo bench check

setup:            ## install apt packages and the virtualenv (idempotent)
	./scripts/setup.sh

up: setup         ## start the whole local stack and wait until healthy
	$(VORA) dev up

down:             ## stop the local stack (data kept)
	-$(VORA) dev down

status:           ## health of every component
	$(VORA) dev status

reset:            ## stop the stack and delete its data
	-$(VORA) dev reset

proto: setup      ## regenerate vora/v1 from proto/
	$(VENV)/bin/buf lint proto
	PYTHON=$(PY) ./scripts/gen-proto

lint: setup       ## ruff, buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/buf lint proto

typecheck: setup  ## mypy (strict) on our code, not on generated code
	$(VENV)/bin/mypy vora control edge farm gateway analytics bench tests

check: lint typecheck

test: setup lint typecheck ## install, lint, start what the tests need, run every test, stop again
	./scripts/test.sh $(PYTEST_ARGS)

demo: setup       ## the main job: the stack up, a sample video uploaded, transcoded, playable
	./scripts/demo.sh

bench: setup      ## side-by-side benchmarks on the stack of VORA_ENV_FILE (B=name, B="a b"; docs/benchmarks.md)
	$(PY) -m bench $(B)
