"""Each guarantee of the conformance suite reports a family that breaks it (a check that cannot fail is no check).

Broken families are copies of support_triage with one deliberate defect in their YAML or
template; where no spec can break a guarantee (the platform code keeps it for every family), the
defect is planted in what a run left behind, or in the code, and the guarantee must notice.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from orchestration_assets.family import Family
from orchestration_assets.loading import family_definitions
from tests.conformance import guarantees as g
from tests.workflow import DEFS, copy_batch, inbox_of, run_workflow, sample_files, temp_resources

pytestmark = [pytest.mark.conformance, pytest.mark.filterwarnings("ignore")]
ROWS = 40
SECRET = "sk-planted-4e1b9d7c2a"


def broken_family(tmp_path: Path, edit=None, template: str | None = None) -> Family:
    """A copy of support_triage with its YAML attributes edited and/or its reply template replaced."""
    folder = tmp_path / "defs" / "support_triage"
    shutil.copytree(DEFS / "support_triage", folder)
    if edit is not None:
        doc = yaml.safe_load((folder / "defs.yaml").read_text())
        edit(doc["attributes"])
        (folder / "defs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    if template is not None:
        (folder / "templates" / "reply.md.j2").write_text(template)
    return Family.load(folder)


class Run:
    def __init__(self, family: Family, root: Path, model_dir: Path, instance):
        self.family, self.root, self.instance = family, root, instance
        self.resources = temp_resources(root, model_dir)
        self.defs = family_definitions([family], self.resources)
        self.batch = copy_batch(sample_files(family)[0], inbox_of(family, self.resources), n=ROWS)
        self.results = []

    @property
    def warehouse(self):
        return self.resources["warehouse"]

    def __call__(self):
        result = run_workflow(self.defs, self.family, self.instance, self.batch.name, raise_on_error=False)
        self.results.append(result)
        return result


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory, model_dir):
    import dagster as dg

    with dg.instance_for_test() as instance:
        run = Run(Family.load(DEFS / "support_triage"), tmp_path_factory.mktemp("baseline"), model_dir, instance)
        assert run().success
        yield run


@pytest.fixture
def baseline(baseline_run, tmp_path):
    """The module's one healthy run, on a copy of its warehouse that a test may damage."""
    from resources.warehouse import Warehouse

    import sqlite3

    copy = tmp_path / "warehouse.db"
    # the backup API, not a file copy: the warehouse runs in WAL mode, recent commits live in its -wal file
    with sqlite3.connect(baseline_run.root / "warehouse.db") as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    run = object.__new__(Run)
    run.__dict__.update(baseline_run.__dict__)
    run.resources = {**baseline_run.resources, "warehouse": Warehouse(url=f"sqlite:///{copy}")}
    return run


def test_rows_accounted_notices_a_lost_row(baseline):
    wh, table = baseline.warehouse, baseline.family.table("raw_records")
    assert g.rows_accounted(wh, baseline.family, baseline.batch.name, ROWS) == []
    with wh.engine.begin() as conn:
        conn.execute(sa.text(f'DELETE FROM "{table}" WHERE record_id = (SELECT MIN(record_id) FROM "{table}")'))
    problems = g.rows_accounted(wh, baseline.family, baseline.batch.name, ROWS)
    assert any("valid +" in p for p in problems) and any("enriched rows" in p for p in problems)


def test_audit_provenance_notices_a_second_row_without_a_model_version(baseline):
    from resources.audit import natural_key, record_events

    wh, family = baseline.warehouse, baseline.family
    assert g.audit_provenance(wh, family, baseline.batch.name, {r.run_id for r in baseline.results}) == []
    rid = wh.read_table(family.table("routing_decisions"))["record_id"].iloc[0]
    import pandas as pd

    record_events(wh, pd.DataFrame([{
        "family": family.name, "event_type": "routing_decision", "record_id": rid, "decision": "auto_send",
        "reasons": [], "actor": "someone", "run_id": "not-a-run", "partition": baseline.batch.name,
        "natural_key": natural_key(family.name, "routing_decision", rid, "planted"), "recorded_at": "2026-12-01T00:00:00Z",
    }]))
    problems = g.audit_provenance(wh, family, baseline.batch.name, {r.run_id for r in baseline.results})
    assert any("more than one routing audit row" in p for p in problems)
    assert any("lack model_version" in p for p in problems)
    assert any("runs that did not happen" in p for p in problems)


def test_kpis_notices_missing_kpi_tables(baseline):
    wh, family = baseline.warehouse, baseline.family
    assert g.kpis(wh, family) == []
    with wh.engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE "{family.table("kpi_daily")}"'))
    assert "kpi_daily has no rows" in g.kpis(wh, family)


def test_blocking_data_check_notices_definitions_without_one(baseline):
    import dagster as dg

    family = baseline.family
    assert g.blocking_check_ran(baseline.defs, family, baseline.results[0], "raw_records") == []
    raw = dg.AssetKey(family.key("raw_records"))
    stripped = dg.Definitions(
        assets=list(baseline.defs.assets),
        asset_checks=[c for c in baseline.defs.asset_checks if raw not in {k.asset_key for k in c.check_keys}],
        resources=baseline.resources,
    )
    problems = g.blocking_check_ran(stripped, family, baseline.results[0], "raw_records")
    assert problems == [f"{family.name}/raw_records has no blocking check"]


def test_idempotency_notices_a_rerun_that_appends_audit_rows(tmp_path, model_dir, instance, monkeypatch):
    import orchestration_assets.governance as governance

    run = Run(Family.load(DEFS / "support_triage"), tmp_path / "run", model_dir, instance)
    outbox = run.root / "outbox"
    assert run().success
    before = g.snapshot(run.warehouse, run.family, run.batch.name, outbox)
    # the defect: an audited decision that includes the run id, so each run records every decision again
    monkeypatch.setattr(governance, "ROUTING_STATE", (*governance.ROUTING_STATE, "run_id"))
    assert run().success
    problems = g.idempotent(before, g.snapshot(run.warehouse, run.family, run.batch.name, outbox))
    assert problems and all("audit rows" in p for p in problems)


def test_guardrails_block_a_family_whose_outputs_fail_before_anything_is_dispatched(tmp_path, model_dir, instance):
    family = broken_family(tmp_path, template="{{ 1 // 0 }}")  # every draft raises while rendering
    run = Run(family, tmp_path / "run", model_dir, instance)
    result = run()
    assert not result.success
    problems = g.guardrails(run.defs, family, result)
    assert any("failure_rate_below_threshold failed" in p for p in problems)
    wh = run.warehouse
    assert wh.count_rows(family.table("enriched_records")) > 0
    assert not wh.has_table(family.table("routing_decisions"))
    assert not wh.has_table(family.table("dispatches")) or wh.count_rows(family.table("dispatches")) == 0
    assert not list((run.root / "outbox").rglob("*.json"))


def test_a_family_whose_outputs_leak_pii_is_never_sent_automatically(tmp_path, model_dir, instance):
    family = broken_family(tmp_path, template="Hello, call me on +1 415 555 0142 or mail help@example.com.\n"
                                              "{% for d in documents %}{{ d.title }} ({{ d.url }})\n{% endfor %}"
                                              "Kind regards, Support")
    run = Run(family, tmp_path / "run", model_dir, instance)
    result = run()
    assert result.success and g.guardrails(run.defs, family, result) == []  # stored outputs are redacted
    decisions = run.warehouse.read_table(family.table("routing_decisions"))
    assert len(decisions) and set(decisions["decision"]) <= {"human_review", "escalate"}
    assert decisions["reasons"].map(lambda rs: "GUARDRAIL:reply:pii_in_output" in rs).all()
    dispatched = run.warehouse.read_table(family.table("dispatches"))
    assert dispatched.empty


def test_no_secret_notices_a_family_that_writes_a_key_into_its_outputs(tmp_path, model_dir, instance):
    family = broken_family(tmp_path, template="Hello, your access key is " + SECRET + ".\n"
                                              "{% for d in documents %}{{ d.title }} ({{ d.url }})\n{% endfor %}")
    run = Run(family, tmp_path / "run", model_dir, instance)
    assert run().success
    problems = g.no_secret(run.warehouse, instance, {r.run_id for r in run.results}, SECRET, [run.root / "outbox"])
    assert any(f"table {family.table('enriched_records')} holds the secret" == p for p in problems)
