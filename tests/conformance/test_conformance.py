"""Governance by construction: every family of the defs folder keeps every guarantee."""

import pytest

from tests.conformance import guarantees as g
from tests.conformance.conftest import SECRET

pytestmark = [pytest.mark.conformance, pytest.mark.filterwarnings("ignore")]


def test_both_runs_succeed(family_run):
    failed = [r.run_id for r in family_run.results if not r.success]
    assert not failed, f"{family_run.family.name}: runs failed: {failed}"


def test_every_row_is_accounted_for(family_run):
    assert g.rows_accounted(family_run.warehouse, family_run.family, family_run.partition, family_run.rows_in) == []


def test_a_rerun_is_idempotent(family_run):
    first, second = family_run.snapshots
    assert g.idempotent(first, second) == []


def test_one_audit_row_per_decision_with_provenance(family_run):
    problems = g.audit_provenance(family_run.warehouse, family_run.family, family_run.partition, family_run.run_ids)
    assert problems == []


def test_raw_records_have_a_blocking_data_check_that_ran(family_run):
    for result in family_run.results:
        problems = g.blocking_check_ran(family_run.defs, family_run.family, result, "raw_records",
                                        ("record_ids_unique_and_present",))
        assert problems == []


def test_outputs_have_blocking_guardrails_that_ran(family_run):
    for result in family_run.results:
        assert g.guardrails(family_run.defs, family_run.family, result) == []


def test_no_secret_in_tables_metadata_logs_or_files(family_run):
    problems = g.no_secret(family_run.warehouse, family_run.instance, family_run.run_ids, SECRET,
                           [family_run.root / "outbox", family_run.root / "alerts"])
    assert problems == []


def test_kpis_materialize(family_run):
    assert g.kpis(family_run.warehouse, family_run.family) == []
