"""The conformance suite: the platform's guarantees checked on every family of a defs folder.

    .venv/bin/pytest tests/conformance                       # the bundled families
    .venv/bin/pytest tests/conformance --defs path/to/defs   # your own families
    .venv/bin/pytest tests/conformance --conformance-warehouse-url postgresql+psycopg://...  # on your database

For each family, the first file of its ``source.sample`` folder (its first ``--conformance-rows``
rows) goes through the whole workflow twice in-process, on temp resources, with a secret API key
configured; the tests then read what the runs left behind (:mod:`tests.conformance.guarantees`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SECRET = "sk-conformance-7f3a9c1e5b2d4f60"


def _families(config) -> list:
    from orchestration_assets.loading import load_families

    return load_families(Path(config.getoption("--defs")))


def pytest_generate_tests(metafunc):
    if "family_run" in metafunc.fixturenames:
        names = [f.name for f in _families(metafunc.config)]
        metafunc.parametrize("family_run", names, indirect=True, ids=names)


@dataclass
class FamilyRun:
    family: object
    defs: object
    resources: dict
    instance: object
    partition: str
    rows_in: int
    root: Path
    results: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)

    @property
    def warehouse(self):
        return self.resources["warehouse"]

    @property
    def run_ids(self) -> set[str]:
        return {r.run_id for r in self.results}


_RUNS: dict[str, FamilyRun] = {}


@pytest.fixture(scope="session")
def conformance_instance():
    import dagster as dg

    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def family_run(request, conformance_instance, model_dir) -> FamilyRun:
    """A family's sample batch run twice (cached per family for the session)."""
    name = request.param
    if name not in _RUNS:
        _RUNS[name] = _run_family(request.config, name, conformance_instance, model_dir)
    return _RUNS[name]


def _run_family(config, name: str, instance, model_dir: Path, warehouse_url: str = "",
                rows: int | None = None) -> FamilyRun:
    """The family's sample batch run twice; on ``warehouse_url`` (or ``--conformance-warehouse-url``) if given."""
    from orchestration_assets.core.records import parse_file
    from orchestration_assets.loading import family_definitions
    from resources.router.resource import ModelRouter
    from resources.warehouse import Warehouse
    from tests.conformance.guarantees import snapshot
    from tests.workflow import copy_batch, inbox_of, run_workflow, sample_files, temp_resources

    family = next(f for f in _families(config) if f.name == name)
    samples = sample_files(family)
    if not samples:
        pytest.skip(f"{name}: no sample batch (source.sample); the conformance suite runs one through the family")
    root = Path(tempfile.mkdtemp(prefix=f"conformance-{name}-"))
    url = warehouse_url or config.getoption("--conformance-warehouse-url")
    resources = temp_resources(root, model_dir, router=ModelRouter(api_key=SECRET),
                               **({"warehouse": Warehouse(url=url)} if url else {}))
    batch = copy_batch(samples[0], inbox_of(family, resources), n=rows or config.getoption("--conformance-rows"))
    rows_in = parse_file(batch, family.record, family.spec.source.formats).rows_in
    defs = family_definitions([family], resources)
    run = FamilyRun(family, defs, resources, instance, batch.name, rows_in, root)
    for _ in range(2):
        run.results.append(run_workflow(defs, family, instance, batch.name, raise_on_error=False))
        run.snapshots.append(snapshot(resources["warehouse"], family, batch.name, root / "outbox"))
    return run
