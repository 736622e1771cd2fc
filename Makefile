# cerebro: `make demo` and `make test` are all a new machine needs (after `make setup`, which
# they run themselves). PL/Python embeds the system Python, so the environment is built with
# the same minor version (PYTHON below); `cerebro up` checks that and fails clearly if not.
PYTHON ?= /usr/bin/python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
CEREBRO := $(VENV)/bin/cerebro

.PHONY: setup up down demo test bench sql clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
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

test: setup
	$(CEREBRO) up
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(CEREBRO) up
	$(PY) bench/run.py

sql: setup
	$(CEREBRO) build-sql

clean: down
	rm -rf .cerebro
