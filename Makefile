# cerebro: `make demo` and `make test` are all a new machine needs (after `make setup`, which
# they run themselves). PL/Python embeds the system Python, so the environment is built with
# the same minor version (PYTHON below); `cerebro up` checks that and fails clearly if not.
PYTHON ?= /usr/bin/python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
CEREBRO := $(VENV)/bin/cerebro
# what ruff reads (mypy's files are in pyproject.toml: src and udfs)
LINT_PATHS := src udfs tests bench tools

.PHONY: setup system-packages up down demo lint format test bench sql clean

setup: system-packages $(VENV)/.installed

# PostgreSQL + PL/Python, Python venv support, make: installed with apt when missing if root,
# else the `sudo apt-get install` line is printed and make stops. Checked on every run (silent
# when nothing is missing), so a removed package is noticed; PG_MAJOR picks another major.
system-packages:
	@PYTHON=$(PYTHON) bash tools/system-packages.sh

$(VENV)/.installed: pyproject.toml | system-packages
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

up: setup
	$(CEREBRO) up

down:
	-$(CEREBRO) down

demo: setup
	$(CEREBRO) up
	$(PY) -m cerebro.demo

# ruff (lint + format check) and mypy; `make test` runs it first, so CI (.ci/run) does too
lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

# rewrite what ruff can fix by itself (then `make lint` shows what is left)
format: setup
	$(VENV)/bin/ruff format $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)

# PYTEST_ARGS='-m "not server"' runs the pure tests without a server; '-m "not slow"' skips
# the end-to-end training tests
test: setup lint
	@PYTHON=$(PYTHON) bash tools/system-packages.sh --browser
	$(CEREBRO) up
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(CEREBRO) up
	$(PY) bench/run.py

sql: setup
	$(CEREBRO) build-sql

clean: down
	rm -rf .cerebro
