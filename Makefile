# Two entry points (see README "Quick start"): `make run` and `make test`.
# Both create or reuse the project's virtualenv at .venv; nothing is installed by hand.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export GX_ANALYTICS_ENABLED := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test setup materialize serve bench conformance clean

# PYTHONDONTWRITEBYTECODE may be set (it is on the CI machines): compile the project's own modules so the
# code location does not recompile them on every load (unchanged files are skipped)
setup: $(STAMP)
	@$(PY) -m compileall -q orchestration_assets resources checks sensors >/dev/null

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

# Set up, run every family's workflow on its bundled sample data, then serve the UI.
run: setup materialize serve

materialize: setup
	$(PY) -m orchestration_assets.quickstart

# The Dagster UI (operators) and the review service (reviewers, the ingest API) side by side;
# Ctrl-C stops both
serve: setup
	@$(PY) -m orchestration_assets.service.cli serve --host 127.0.0.1 --port 8010 & svc=$$!; \
	trap 'kill $$svc 2>/dev/null; wait $$svc 2>/dev/null' EXIT INT TERM; \
	echo "Dagster UI: http://127.0.0.1:3000/"; \
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000

# Set up and run the whole test suite (unit, Dagster-level, conformance, chaos and end-to-end) on two
# workers; a test file stays on one worker, so its module fixtures are built once
test: setup
	$(PY) -m pytest -n 2 --dist loadfile --durations=10

bench: setup
	$(PY) bench/enrichment.py
	$(PY) bench/router.py

# The governance guarantees on a defs folder: make conformance DEFS=path/to/defs
DEFS ?= orchestration_assets/defs
conformance: setup
	$(PY) -m pytest tests/conformance --defs $(DEFS)

clean:
	rm -rf data .dagster_home
