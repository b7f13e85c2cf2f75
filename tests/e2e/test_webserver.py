"""End to end: the real Dagster webserver ingests a bundled batch launched over GraphQL.

A user's path: a batch file lands in the inbox, its partition is registered, a job runs for
it, and the UI shows the materialization (with row counts) and the data-check results for
that partition. Everything here goes through the webserver's GraphQL API.
"""

import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.dagster_server import DagsterServer, process_group_alive

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SAMPLE_INBOX = Path(__file__).resolve().parents[2] / "orchestration_assets" / "sample_data" / "inbox"
BATCH = "batch-2026-11-23.csv"
CONTEXT_ASSETS = ("crm_accounts", "product_catalog", "knowledge_base")
# one process for all steps: the multiprocess default re-imports the code (and Great
# Expectations) per step, several times slower on a small machine
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


@pytest.fixture(scope="module")
def server():
    srv = DagsterServer()
    with srv:
        yield srv
    assert not process_group_alive(srv.pgid), "a process started by the test outlived it"


def drop_batch(server: DagsterServer, name: str = BATCH) -> str:
    """Put a bundled batch file into the server's inbox, as an upstream system would."""
    shutil.copy2(SAMPLE_INBOX / name, server.inbox / name)
    return name


def assert_checks_passed(server: DagsterServer, asset: str, run_id: str, partition: str | None = None) -> dict:
    """Every check defined on ``asset`` was evaluated in ``run_id`` (for ``partition``) and passed."""
    results = server.latest_check_results(asset, run_id=run_id, partition=partition)
    assert results, f"no checks defined on {asset}"
    missing = sorted(name for name, r in results.items() if r is None)
    assert not missing, f"{asset}: checks not evaluated in run {run_id}: {missing}"
    failed = {name: (r.status, r.description) for name, r in results.items() if not (r.passed and r.status == "SUCCEEDED")}
    assert not failed, f"{asset}: checks failed: {failed}"
    return results


def test_triage_job_over_graphql_runs_the_whole_graph_and_evaluates_its_checks(server):
    started = time.monotonic()
    key = drop_batch(server)

    run_id = server.run_job_for_partition("triage_job", key, run_config=IN_PROCESS, timeout=200)

    assert key in server.dynamic_partitions("raw_tickets")
    mats = [m for m in server.asset_materializations("raw_tickets", partition=key) if m.run_id == run_id]
    assert len(mats) == 1
    md = mats[0].metadata
    assert md["rows_ok"] > 0
    assert md["rows_in"] == md["rows_ok"] + md["rows_quarantined"]
    assert mats[0].partition == key

    checks = assert_checks_passed(server, "raw_tickets", run_id, partition=key)
    assert {"ticket_ids_unique_and_present", "channels_in_allowed_set", "created_at_parseable"} <= set(checks)
    ids = checks["ticket_ids_unique_and_present"]
    assert ids.partition == key
    assert ids.metadata["rows_validated"] == md["rows_ok"]
    assert ids.metadata["unexpected_count"] == 0

    for asset in CONTEXT_ASSETS:
        assert any(m.run_id == run_id for m in server.asset_materializations(asset)), asset
        assert_checks_passed(server, asset, run_id)

    # enrichment: every valid ticket enriched or failed with a reason; blocking guardrails passed
    (enriched,) = [m for m in server.asset_materializations("enriched_tickets", partition=key) if m.run_id == run_id]
    em = enriched.metadata
    assert em["rows_in"] == md["rows_ok"] == em["rows_enriched"] + em["rows_failed"]
    guard = assert_checks_passed(server, "enriched_tickets", run_id, partition=key)
    assert {"labels_in_allowed_set", "drafts_free_of_pii", "drafts_do_not_echo_injection",
            "failure_rate_below_threshold", "llm_spend_within_budget"} <= set(guard)

    # routing, audit and KPIs ran after the guardrails, in the same run
    (routed,) = [m for m in server.asset_materializations("routing_decisions", partition=key) if m.run_id == run_id]
    rm = routed.metadata
    assert rm["auto_send"] + rm["human_review"] + rm["escalate"] == em["rows_in"]
    (audit,) = [m for m in server.asset_materializations("audit_log", partition=key) if m.run_id == run_id]
    assert audit.metadata["rows_inserted"] == em["rows_in"]
    kpi = [m for m in server.asset_materializations("kpi_daily") if m.run_id == run_id]
    assert kpi and kpi[0].metadata["tickets"] == em["rows_in"]
    assert abs(kpi[0].metadata["automation_rate"] - rm["auto_send"] / em["rows_in"]) < 1e-9

    print(f"e2e triage over GraphQL: {time.monotonic() - started:.1f}s after server start")
