# Two entry points (see README "Quick start"): `make run` and `make test`.
# Both create or reuse the project's virtualenv at .venv; nothing is installed by hand.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export GX_ANALYTICS_ENABLED := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test setup materialize serve bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

# Set up, run the whole triage workflow on the bundled sample data, then serve the UI.
run: setup materialize serve

materialize: setup
	$(PY) -m orchestration_assets.quickstart

serve: setup
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000

# Set up and run the whole test suite (unit, Dagster-level and end-to-end).
test: setup
	$(PY) -m pytest

bench: setup
	$(PY) bench/enrichment.py
	$(PY) bench/router.py

clean:
	rm -rf data .dagster_home
