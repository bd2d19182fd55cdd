# Two commands for a newcomer on a fresh Debian 12 machine: `make demo` and `make test`.
# Both install what they need first (Debian packages, .venv, the kernel tree) and are safe to rerun.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test setup deps lint

demo: setup
	$(VENV)/bin/python scripts/demo.py

test: setup
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check bot tests scripts bench
	$(VENV)/bin/mypy bot

# Debian packages, the venv, then kernel-tree/ from Debian's linux-source (cached under ~/.cache/mm-review-bot).
setup: deps $(STAMP)
	$(VENV)/bin/bot setup

deps:
	scripts/install-deps.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@
