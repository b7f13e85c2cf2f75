"""The whole triage graph on a small batch: accounting, provenance, audit idempotency, KPIs."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from orchestration_assets.definitions import build_definitions
from orchestration_assets.ingestion import ticket_batches
from resources.audit import read_audit
from tests.conftest import materialization_metadata, small_batch

pytestmark = pytest.mark.filterwarnings("ignore")

KEY = "batch-small.csv"


@pytest.fixture
def triage(test_resources, data_dir, instance):
    small_batch(data_dir / "inbox", KEY, n=60)
    instance.add_dynamic_partitions(ticket_batches.name, [KEY])
    defs = build_definitions(test_resources)
    job = defs.resolve_job_def("triage_job")

    def run():
        result = job.execute_in_process(partition_key=KEY, instance=instance)
        assert result.success
        return result

    return run, test_resources["warehouse"]


def test_full_graph_accounts_for_rows_and_records_provenance(triage):
    run, wh = triage
    result = run()
    meta = materialization_metadata(result)

    raw = meta["raw_tickets"]
    assert raw["rows_in"] == raw["rows_ok"] + raw["rows_quarantined"] == 60
    enriched = wh.read_table("enriched_tickets", partitions=[KEY])
    assert len(enriched) == raw["rows_ok"]
    em = meta["enriched_tickets"]
    assert em["rows_in"] == em["rows_enriched"] + em["rows_failed"]
    ok = enriched[enriched["status"] == "enriched"]
    assert len(ok) == em["rows_enriched"]
    assert enriched.loc[enriched["status"] == "failed", "failure_reason"].notna().all()
    for col in ("model_version", "prompt_hash", "input_hash", "partition", "run_id", "category", "priority",
                "sentiment", "summary", "draft_reply"):
        assert ok[col].notna().all(), col
    assert set(ok["partition"]) == {KEY} and set(ok["run_id"]) == {result.run_id}
    assert ok["category_confidence"].between(0, 1).all()

    decisions = wh.read_table("routing_decisions", partitions=[KEY])
    assert len(decisions) == len(enriched)
    assert set(decisions["decision"]) <= {"auto_send", "human_review", "escalate"}
    assert decisions["policy_hash"].nunique() == 1
    assert decisions.loc[decisions["decision"] != "auto_send", "reasons"].map(len).gt(0).all()

    # every blocking guardrail was evaluated and passed
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    for name in ("labels_in_allowed_set", "confidence_in_unit_interval", "drafts_free_of_pii",
                 "drafts_do_not_echo_injection", "failure_rate_below_threshold"):
        assert checks.get(name) is True, name


def test_rematerializing_writes_audit_rows_once_and_keeps_kpis_consistent(triage):
    run, wh = triage
    run()
    audit_first = read_audit(wh, partition=KEY)
    decisions = wh.read_table("routing_decisions", partitions=[KEY])
    assert len(audit_first) == len(decisions)
    assert audit_first["policy_hash"].notna().all() and audit_first["model_version"].notna().all()

    second = run()
    audit_second = read_audit(wh, partition=KEY)
    assert len(audit_second) == len(audit_first)
    assert materialization_metadata(second)["audit_log"]["rows_inserted"] == 0
    assert wh.count_rows("enriched_tickets", KEY) == len(decisions)

    kpis = wh.read_table("kpi_daily")
    assert int(kpis["tickets"].sum()) == len(decisions)
    assert int(kpis["auto_send"].sum()) == int((decisions["decision"] == "auto_send").sum())
    assert int(kpis["escalate"].sum()) == int((decisions["decision"] == "escalate").sum())
    total = kpis["tickets"].sum()
    assert abs((kpis["automation_rate"] * kpis["tickets"]).sum() / total
               - (decisions["decision"] == "auto_send").mean()) < 1e-9


def test_audit_log_refuses_updates_and_deletes(triage):
    run, wh = triage
    run()
    import sqlalchemy as sa

    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with wh.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM audit_log")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with wh.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE audit_log SET decision = 'auto_send'")
    assert len(read_audit(wh, partition=KEY)) > 0


def test_review_queue_follows_a_re_routed_batch_by_itself(triage, instance, test_resources):
    """A user re-materializes routing_decisions alone (e.g. after a policy change): the queue follows."""
    run, _ = triage
    defs = build_definitions(test_resources)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    run()
    after_triage = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert after_triage.total_requested == 0  # the triage run already refreshed the queue

    reroute = dg.define_asset_job("reroute", selection=["routing_decisions"], partitions_def=ticket_batches)
    dg.Definitions.merge(defs, dg.Definitions(jobs=[reroute])).resolve_job_def("reroute").execute_in_process(
        partition_key=KEY, instance=instance
    )
    after_reroute = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=after_triage.cursor)
    assert after_reroute.get_requested_partitions(dg.AssetKey("review_queue")) == {None}
    assert after_reroute.total_requested == 1
