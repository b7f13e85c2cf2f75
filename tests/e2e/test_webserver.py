"""End to end: the real Dagster webserver runs a family's whole workflow launched over GraphQL.

A user's path: a batch file lands in a family's inbox, its partition is registered, the family's
workflow job runs for it, and the UI shows every family's assets under its own prefix and groups,
the materializations (with row counts) and the check results for that partition. Everything here
goes through the webserver's GraphQL API.
"""

import time

import pytest

from orchestration_assets.loading import load_families
from tests.e2e.dagster_server import DagsterServer, process_group_alive
from tests.workflow import DEFS, copy_batch, sample_files

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FAMILY = "support_triage"
# one process for all steps: the multiprocess default re-imports the code (and Great
# Expectations) per step, several times slower on a small machine
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
ROWS = 120

ASSETS_QUERY = """
query { assetNodes { assetKey { path } groupName } }
"""


@pytest.fixture(scope="module")
def server():
    srv = DagsterServer()
    with srv:
        yield srv
    assert not process_group_alive(srv.pgid), "a process started by the test outlived it"


def assert_checks_passed(server: DagsterServer, asset: str, run_id: str, partition: str | None = None) -> dict:
    """Every check defined on ``asset`` was evaluated in ``run_id`` (for ``partition``) and passed."""
    results = server.latest_check_results(asset, run_id=run_id, partition=partition)
    assert results, f"no checks defined on {asset}"
    missing = sorted(name for name, r in results.items() if r is None)
    assert not missing, f"{asset}: checks not evaluated in run {run_id}: {missing}"
    failed = {name: (r.status, r.description) for name, r in results.items() if not (r.passed and r.status == "SUCCEEDED")}
    assert not failed, f"{asset}: checks failed: {failed}"
    return results


def test_every_family_shows_under_its_own_prefix_and_groups(server):
    nodes = server.graphql(ASSETS_QUERY)["assetNodes"]
    by_family: dict[str, set[str]] = {}
    for node in nodes:
        family, _ = node["assetKey"]["path"]
        by_family.setdefault(family, set()).add(node["groupName"])
    assert set(by_family) == {f.name for f in load_families(DEFS)}
    for family, groups in by_family.items():
        assert all(g.startswith(f"{family}_") for g in groups), (family, groups)
        assert {f"{family}_ingestion", f"{family}_enrichment", f"{family}_governance", f"{family}_kpis"} <= groups


def test_a_family_workflow_over_graphql_runs_the_whole_graph_and_evaluates_its_checks(server):
    started = time.monotonic()
    family = next(f for f in load_families(DEFS) if f.name == FAMILY)
    batch = copy_batch(sample_files(family)[0], server.inbox(FAMILY), n=ROWS)
    key = batch.name

    run_id = server.run_job_for_partition(family.job_name("workflow"), key, partitions_def_name=family.partitions_name,
                                          run_config=IN_PROCESS, timeout=240)

    raw_key = f"{FAMILY}/raw_records"
    assert key in server.dynamic_partitions(raw_key)
    (raw,) = [m for m in server.asset_materializations(raw_key, partition=key) if m.run_id == run_id]
    md = raw.metadata
    assert md["rows_in"] == ROWS == md["rows_ok"] + md["rows_quarantined"] and md["rows_ok"] > 0

    checks = assert_checks_passed(server, raw_key, run_id, partition=key)
    assert {"record_ids_unique_and_present", "channel_in_allowed_set", "created_at_parseable"} <= set(checks)
    ids = checks["record_ids_unique_and_present"]
    assert ids.partition == key and ids.metadata["rows_validated"] == md["rows_ok"]
    for lookup in family.spec.context:
        asset = f"{FAMILY}/{lookup}"
        assert any(m.run_id == run_id for m in server.asset_materializations(asset)), asset
        assert_checks_passed(server, asset, run_id)

    (enriched,) = [m for m in server.asset_materializations(f"{FAMILY}/enriched_records", partition=key)
                   if m.run_id == run_id]
    em = enriched.metadata
    assert em["rows_in"] == md["rows_ok"] == em["rows_enriched"] + em["rows_failed"]
    guard = assert_checks_passed(server, f"{FAMILY}/enriched_records", run_id, partition=key)
    assert {"answers_in_allowed_sets", "outputs_free_of_pii", "outputs_do_not_echo_injection",
            "failure_rate_below_threshold", "llm_spend_within_budget"} <= set(guard)

    (routed,) = [m for m in server.asset_materializations(f"{FAMILY}/routing_decisions", partition=key)
                 if m.run_id == run_id]
    rm = routed.metadata
    assert rm["auto_send"] + rm["human_review"] + rm["escalate"] == em["rows_in"]
    (audit,) = [m for m in server.asset_materializations(f"{FAMILY}/audit_log", partition=key) if m.run_id == run_id]
    assert audit.metadata["rows_inserted"] == em["rows_in"]
    kpi = [m for m in server.asset_materializations(f"{FAMILY}/kpi_daily") if m.run_id == run_id]
    assert kpi and kpi[0].metadata["records"] == em["rows_in"]
    assert abs(kpi[0].metadata["automation_rate"] - rm["auto_send"] / em["rows_in"]) < 1e-9
    print(f"e2e workflow over GraphQL: {time.monotonic() - started:.1f}s after server start")
