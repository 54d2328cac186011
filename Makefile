# The two set-up commands of the README: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The first install takes a few minutes: each step says what it is doing.
$(STAMP): pyproject.toml package-lock.json
	@echo "install: creating the virtual environment $(VENV)"
	python3 -m venv $(VENV)
	@echo "install: pip (metarisk and its test tools, a few minutes on a fresh machine)"
	$(PY) -m pip install --progress-bar off -q --upgrade pip
	$(PY) -m pip install --progress-bar off -e '.[dev]'
	@echo "install: npm (anvil, solc-js and the protocols' bytecode packages)"
	npm ci --no-audit --no-fund
	touch $(STAMP)
	@echo "install: done; the devnet's deployed-state cache is built on first use"

.PHONY: install run test lint bench services
install: $(STAMP)

# What the tests talk to: the local PostgreSQL (the store's tests run on it and on SQLite) and Debian's chromium
# (the dashboard test). With the URL exported an unreachable server fails those tests instead of skipping them.
export METARISK_TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
services:
	@pg_isready -q -h 127.0.0.1 || pg_ctlcluster --skip-systemctl-redirect "$$(ls /etc/postgresql)" main start
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

run: $(STAMP)
	$(VENV)/bin/metarisk demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint services
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_margin.py
