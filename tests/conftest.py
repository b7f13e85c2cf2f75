"""Shared fixtures: temp data dir, one model folder per session, a temp Dagster instance."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parent.parent
DEFS = REPO / "orchestration_assets" / "defs"
SHARED_DATA = REPO.parent / "shared" / "data" / "it_service_tickets" / "tickets.csv.gz"


def pytest_addoption(parser):
    # here, not in tests/conformance/conftest.py: pytest reads options only from the first conftests it loads
    group = parser.getgroup("conformance")
    group.addoption("--defs", default=os.getenv("CONFORMANCE_DEFS", str(DEFS)),
                    help="defs folder whose families the conformance suite checks (default: the project's)")
    group.addoption("--conformance-rows", type=int, default=int(os.getenv("CONFORMANCE_ROWS", "120")),
                    help="rows of each family's sample batch the conformance suite runs (default 120)")
    group.addoption("--conformance-warehouse-url", default=os.getenv("CONFORMANCE_WAREHOUSE_URL", ""),
                    help="warehouse the conformance runs write to, e.g. postgresql+psycopg://... "
                         "(default: a temp SQLite file per family)")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """One model folder per test session, so each family's classifiers train once."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("DATA_DIR", str(d))
    return d


@pytest.fixture
def instance():
    import dagster as dg

    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="session")
def families() -> dict:
    """The bundled families by name."""
    from orchestration_assets.loading import load_families

    return {f.name: f for f in load_families(DEFS)}
