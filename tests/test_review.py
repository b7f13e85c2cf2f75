"""Human review: the queue, decisions through the launchpad job and the CLI, the audit trail, feedback."""

import json
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from orchestration_assets.core.review import kpi_review, parse_decision, read_review_decisions, record_decision
from orchestration_assets.review import (
    record_review_decision_job,
    review_decisions,
    review_feedback,
    review_queue,
)
from orchestration_assets.review_cli import main as review_cli
from resources.audit import read_audit
from resources.outbox import Outbox
from resources.warehouse import Warehouse

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def instance():
    """One Dagster instance per module (creating one takes seconds); runs do not interfere."""
    with dg.instance_for_test() as inst:
        yield inst

REPO = Path(__file__).resolve().parent.parent
PARTITION = "batch-review.csv"
DECISION_CYCLE = ["auto_send", "human_review", "escalate", "auto_send", "human_review"]
REASONS = {"auto_send": [], "human_review": ["low_confidence:0.41"], "escalate": ["vip_negative_sentiment", "legal_flag"]}


def seed_triage_tables(wh: Warehouse, n: int = 10, partition: str = PARTITION, start: str = "2026-11-23T08:00:00Z",
                       decided_at: str | None = None) -> pd.DataFrame:
    """Writes `enriched_tickets` and `routing_decisions` partitions shaped as the triage graph writes them."""
    created = pd.date_range(start, periods=n, freq="10min", tz="UTC")
    ids = [f"{partition.split('.')[0]}-T{i:04d}" for i in range(n)]
    decisions = [DECISION_CYCLE[i % len(DECISION_CYCLE)] for i in range(n)]
    enriched = pd.DataFrame({
        "ticket_id": ids,
        "account_id": [f"ACC-{i % 3}" for i in range(n)],
        "created_at": created,
        "subject": [f"Cannot log in to workspace {i}" for i in range(n)],
        "body": [f"Since this morning the login page says my password is wrong ({i})." for i in range(n)],
        "summary": ["Customer cannot log in since this morning."] * n,
        "draft_reply": [f"Hello, sorry about the login trouble on ticket {i}. Please reset your password via the "
                        f"help article on sign-in issues; we have checked your workspace." for i in range(n)],
        "category": ["account_access"] * n,
        "priority": ["high"] * n,
        "status": ["enriched"] * n,
        "label_category": [None] * n,
        "guardrail_violations": [[] for _ in range(n)],
        "model_version": ["local-clf@1"] * n,
    })
    routing = pd.DataFrame({
        "ticket_id": ids,
        "decision": decisions,
        "reasons": [REASONS[d] for d in decisions],
        "policy_hash": "pol123",
        "policy_version": "1",
        "status": "enriched",
        "category": "account_access",
        "category_confidence": 0.8,
        "priority": "high",
        "sentiment": "negative",
        "sentiment_score": -0.4,
        "is_vip": [d == "escalate" for d in decisions],
        "model_version": "local-clf@1",
        "prompt_hash": "prompt1",
        "input_hash": [f"in{i}" for i in range(n)],
        "created_at": created,
        "partition": partition,
        "run_id": "seed-run",
        "decided_at": pd.Timestamp(decided_at) if decided_at else created + pd.Timedelta(minutes=2),
    })
    wh.replace_partition("enriched_tickets", enriched, partition)
    wh.replace_partition("routing_decisions", routing, partition)
    return routing


def review_resources(data_dir: Path, **outbox_config) -> dict:
    wh = Warehouse(url=f"sqlite:///{data_dir / 'warehouse.db'}")
    return {
        "warehouse": wh,
        "outbox": Outbox(folder=str(data_dir / "outbox"), **outbox_config),
    }


def decide(resources: dict, instance, **config) -> dg.ExecuteInProcessResult:
    return record_review_decision_job.execute_in_process(
        run_config={"ops": {"record_decision_op": {"config": config}}},
        resources=resources, instance=instance, raise_on_error=False,
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return " ".join(
        e.step_failure_data.user_failure_data.description if e.step_failure_data.user_failure_data
        else e.step_failure_data.error.message
        for e in result.all_events if e.is_step_failure
    )


@pytest.fixture
def seeded(data_dir):
    res = review_resources(data_dir)
    routing = seed_triage_tables(res["warehouse"])
    return res, routing


def pending_ids(routing: pd.DataFrame) -> list[str]:
    return routing.loc[routing["decision"].isin(["human_review", "escalate"]), "ticket_id"].tolist()


def test_queue_lists_pending_items_oldest_first_with_reasons_and_age(seeded, instance):
    res, routing = seeded
    result = dg.materialize([review_decisions, review_queue], resources=res, instance=instance)
    assert result.success
    queue = res["warehouse"].read_table("review_queue")
    assert queue["ticket_id"].tolist() == pending_ids(routing)  # oldest in the queue first
    first = queue.iloc[0]
    assert first["draft_reply"].startswith("Hello") and first["subject"] and first["model_version"] == "local-clf@1"
    assert first["age_hours"] > 0 and list(first["reasons"]) == ["low_confidence:0.41"]
    meta = result.asset_materializations_for_node("review_queue")[0].metadata
    assert meta["pending"].value == len(pending_ids(routing)) == 6
    assert meta["escalations_pending"].value == 2
    by_reason = meta["by_reason"].value
    assert re.search(r"\| low_confidence +\| +4 \|", by_reason) and re.search(r"\| legal_flag +\| +2 \|", by_reason)
    assert pending_ids(routing)[0] in meta["oldest_items"].value


def test_every_decision_kind_through_the_job_is_recorded_and_audited(seeded, instance):
    res, routing = seeded
    wh = res["warehouse"]
    t_approve, t_edit, t_reject, t_relabel = pending_ids(routing)[:4]
    cases = [
        dict(ticket_id=t_approve, decision="approve", reviewer="alice", note="fine"),
        dict(ticket_id=t_edit, decision="edit_and_approve", reviewer="alice",
             edited_reply="Hello, we reset your sign-in session; please try again and tell us if it persists."),
        dict(ticket_id=t_reject, decision="reject", reviewer="bob", note="needs a phone call"),
        dict(ticket_id=t_relabel, decision="relabel", reviewer="bob", corrected_label="billing"),
    ]
    for config in cases:
        result = decide(res, instance, **config)
        assert result.success, failure_message(result)
        mats = [e.event_specific_data.materialization for e in result.all_events if e.is_step_materialization]
        assert mats and mats[0].asset_key == review_decisions.key
        assert mats[0].metadata["decision"].value == config["decision"]

    stored = read_review_decisions(wh).set_index("ticket_id")
    assert stored.loc[t_approve, "decision"] == "approve" and stored.loc[t_approve, "channel"] == "launchpad"
    assert stored.loc[t_edit, "edited_reply"].startswith("Hello, we reset")
    assert stored.loc[t_relabel, "corrected_label"] == "billing"
    assert stored.loc[t_reject, "note"] == "needs a phone call"
    assert stored["run_id"].notna().all()

    for config in cases:
        trail = read_audit(wh, ticket_id=config["ticket_id"], event_type="review_decision")
        assert len(trail) == 1
        event = trail.iloc[0]
        details = json.loads(event["details"])
        assert event["decision"] == config["decision"] and event["actor"] == config["reviewer"]
        assert event["model_version"] == "local-clf@1" and event["policy_hash"] == "pol123"
        assert details["routed_decision"] in ("human_review", "escalate")
        assert details["reply_edited"] == (config["decision"] == "edit_and_approve")
        assert details["corrected_label"] == config.get("corrected_label")

    # decided items leave the queue; reconciling the audit log adds nothing
    result = dg.materialize([review_decisions, review_queue], resources=res, instance=instance)
    assert result.asset_materializations_for_node("review_decisions")[0].metadata["audit_events_backfilled"].value == 0
    assert set(wh.read_table("review_queue")["ticket_id"]).isdisjoint({c["ticket_id"] for c in cases})


@pytest.mark.parametrize(
    "config, message",
    [
        (dict(ticket_id="NOPE-1", decision="approve", reviewer="alice"), "unknown ticket 'NOPE-1'"),
        (dict(ticket_id="{pending}", decision="approve", reviewer="   "), "reviewer must not be empty"),
        (dict(ticket_id="{pending}", decision="edit_and_approve", reviewer="alice",
              edited_reply="Call me back at jane.doe@example.com or +1 415 555 0199."), "edited reply contains PII (email, phone)"),
        (dict(ticket_id="{pending}", decision="relabel", reviewer="alice", corrected_label="weather"), "unknown label 'weather'"),
        (dict(ticket_id="{auto}", decision="approve", reviewer="alice"), "was routed 'auto_send'"),
    ],
)
def test_job_refuses_invalid_decisions_with_a_clear_error(seeded, instance, config, message):
    res, routing = seeded
    config = {**config, "ticket_id": config["ticket_id"].format(
        pending=pending_ids(routing)[0], auto=routing.loc[routing["decision"] == "auto_send", "ticket_id"].iloc[0])}
    result = decide(res, instance, **config)
    assert not result.success
    assert message in failure_message(result)
    assert read_review_decisions(res["warehouse"]).empty
    assert read_audit(res["warehouse"], event_type="review_decision").empty


def test_a_ticket_without_a_draft_can_only_be_approved_with_an_edited_reply(seeded, instance):
    res, routing = seeded
    wh = res["warehouse"]
    tid = pending_ids(routing)[0]
    enriched = wh.read_table("enriched_tickets", partitions=[PARTITION]).drop(columns=["_partition"])
    enriched.loc[enriched["ticket_id"] == tid, ["draft_reply", "status"]] = [None, "failed"]
    wh.replace_partition("enriched_tickets", enriched, PARTITION)
    refused = decide(res, instance, ticket_id=tid, decision="approve", reviewer="alice")
    assert not refused.success and "has no draft reply to approve" in failure_message(refused)
    assert decide(res, instance, ticket_id=tid, decision="edit_and_approve", reviewer="alice",
                  edited_reply="Hello, we looked into your sign-in problem and fixed it.").success


def test_second_decision_on_a_ticket_is_refused(seeded, instance):
    res, routing = seeded
    tid = pending_ids(routing)[0]
    assert decide(res, instance, ticket_id=tid, decision="reject", reviewer="bob").success
    again = decide(res, instance, ticket_id=tid, decision="approve", reviewer="alice")
    assert not again.success
    assert f"ticket {tid!r} already decided: reject by bob" in failure_message(again)
    assert len(read_review_decisions(res["warehouse"])) == 1


def test_cli_lists_the_queue_and_records_every_decision_kind(seeded, capsys):
    res, routing = seeded
    wh = res["warehouse"]
    url = ["--warehouse-url", wh.url]
    ids = pending_ids(routing)

    assert review_cli([*url, "queue"]) == 0
    out = capsys.readouterr().out
    assert ids[0] in out and "low_confidence" in out
    assert review_cli([*url, "queue", "--json", "--limit", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["ticket_id"] for r in rows] == ids[:2]

    assert review_cli([*url, "decide", ids[0], "--decision", "approve", "--reviewer", "carol"]) == 0
    assert "recorded approve" in capsys.readouterr().out
    assert review_cli([*url, "decide", ids[1], "--decision", "edit_and_approve", "--reviewer", "carol",
                       "--edited-reply", "Hello, your refund was issued today and should arrive within 5 days."]) == 0
    assert review_cli([*url, "decide", ids[2], "--decision", "reject", "--reviewer", "dave", "--note", "spam"]) == 0
    assert review_cli([*url, "decide", ids[3], "--decision", "relabel", "--reviewer", "dave", "--label", "billing"]) == 0
    capsys.readouterr()

    assert review_cli([*url, "decide", ids[0], "--decision", "reject", "--reviewer", "dave"]) == 2
    assert "already decided: approve by carol" in capsys.readouterr().err
    assert review_cli([*url, "decide", ids[4], "--decision", "relabel", "--reviewer", "dave"]) == 2
    assert "relabel needs corrected_label" in capsys.readouterr().err

    stored = read_review_decisions(wh)
    assert stored["decision"].tolist() == ["approve", "edit_and_approve", "reject", "relabel"]
    assert set(stored["channel"]) == {"cli"}
    audit = read_audit(wh, event_type="review_decision")
    assert audit["ticket_id"].tolist() == ids[:4]
    assert audit["actor"].tolist() == ["carol", "carol", "dave", "dave"]


def test_cli_runs_as_a_module(seeded):
    res, routing = seeded
    tid = pending_ids(routing)[0]
    cmd = [sys.executable, "-m", "orchestration_assets.review_cli", "--warehouse-url", res["warehouse"].url]
    ok = subprocess.run([*cmd, "decide", tid, "--decision", "approve", "--reviewer", "erin"], cwd=REPO,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert f"recorded approve on {tid} by erin" in ok.stdout
    assert read_audit(res["warehouse"], ticket_id=tid, event_type="review_decision")["actor"].tolist() == ["erin"]


def test_feedback_has_relabels_and_approvals_as_training_rows(seeded, instance):
    res, routing = seeded
    ids = pending_ids(routing)
    for tid, config in zip(ids, [dict(decision="approve"), dict(decision="relabel", corrected_label="billing"),
                                 dict(decision="reject")]):
        record_decision(res["warehouse"], parse_decision(ticket_id=tid, reviewer="alice", **config))
    assert dg.materialize([review_decisions, review_feedback], resources=res, instance=instance).success
    fb = res["warehouse"].read_table("review_feedback").set_index("ticket_id")
    assert list(fb.reset_index().columns) == ["ticket_id", "subject", "body", "label", "source", "recorded_at"]
    assert fb.loc[ids[1], "label"] == "billing" and fb.loc[ids[1], "source"] == "review:relabel"
    assert fb.loc[ids[0], "label"] == "account_access" and fb.loc[ids[0], "source"] == "review:approve"
    assert ids[2] not in fb.index  # a rejected reply says nothing about the label
    assert fb.loc[ids[1], "subject"].startswith("Cannot log in")


def test_review_kpis_measure_burden_and_time_to_resolution():
    reviewed = pd.DataFrame({
        "ticket_id": ["a", "b", "c", "d"],
        "decision": ["approve", "reject", "relabel", "approve"],
        "reviewer": ["alice", "alice", "alice", "bob"],
        # alice: 3 decisions in two clock hours; bob: 1 in one hour -> 4 items / 3 reviewer-hours
        "decided_at": ["2026-11-24T09:10:00+00:00", "2026-11-24T09:50:00+00:00", "2026-11-24T10:05:00+00:00",
                       "2026-11-24T09:30:00+00:00"],
        "queued_at": ["2026-11-24T08:10:00+00:00"] * 4,
    })
    dispatched = pd.DataFrame({
        "ticket_id": ["a", "d", "x"],
        "created_at": ["2026-11-24T07:00:00+00:00", "2026-11-24T08:00:00+00:00", "2026-11-24T10:00:00+00:00"],
        "delivered_at": ["2026-11-24T11:00:00+00:00", "2026-11-24T11:00:00+00:00", "2026-11-24T11:00:00+00:00"],
    })
    df = kpi_review(reviewed, dispatched)
    row = df.iloc[0]
    assert len(df) == 1 and row["day"] == "2026-11-24"
    assert row["decisions"] == 4 and row["reviewers"] == 2 and row["reviewer_hours"] == 3
    assert row["items_per_reviewer_hour"] == pytest.approx(4 / 3)
    assert row["dispatched"] == 3 and row["time_to_resolution_p50_hours"] == pytest.approx(3.0)
    assert row["review_turnaround_p50_hours"] == pytest.approx(1.5)  # median of 1, 1.33, 1.67, 1.92 hours


@pytest.mark.slow
def test_the_real_triage_graph_feeds_the_queue_and_dispatch(test_resources, data_dir, instance):
    """Triage a real sample batch, decide on one queued item, dispatch: every cleared reply goes out once."""
    from orchestration_assets.definitions import build_definitions
    from orchestration_assets.ingestion import ticket_batches
    from resources.outbox import read_ledger
    from tests.conftest import small_batch

    key = "batch-review-int.csv"
    small_batch(data_dir / "inbox", key, n=40)
    instance.add_dynamic_partitions(ticket_batches.name, [key])
    defs = build_definitions(test_resources)
    assert defs.resolve_job_def("triage_job").execute_in_process(partition_key=key, instance=instance).success
    wh = test_resources["warehouse"]
    routing = wh.read_table("routing_decisions")
    queue = wh.read_table("review_queue")
    assert set(queue["ticket_id"]) == set(routing.loc[routing["decision"] != "auto_send", "ticket_id"])
    auto_sent = set(read_ledger(wh.engine, status="delivered")["ticket_id"])  # the triage run dispatched auto_send
    cleared = routing[(routing["decision"] == "auto_send") & (routing["status"] == "enriched")]
    assert auto_sent == set(cleared["ticket_id"])

    tid = queue["ticket_id"].iloc[0]
    result = defs.resolve_job_def("record_review_decision").execute_in_process(
        run_config={"ops": {"record_decision_op": {"config": {
            "ticket_id": tid, "decision": "edit_and_approve", "reviewer": "alice",
            "edited_reply": "Hello, thanks for your patience: we have resolved the issue on our side."}}}},
        instance=instance)
    assert result.success
    for _ in range(2):
        assert defs.resolve_job_def("dispatch_job").execute_in_process(instance=instance).success
    files = list((data_dir / "outbox").glob("*.json"))
    assert {json.loads(p.read_text())["ticket_id"] for p in files} == auto_sent | {tid}
    assert len(files) == len(auto_sent) + 1
    assert tid not in set(wh.read_table("review_queue")["ticket_id"])
    trail = read_audit(wh, ticket_id=tid)
    assert trail["event_type"].tolist() == ["routing_decision", "review_decision", "dispatch"]
    assert trail["actor"].tolist() == ["policy", "alice", "dispatcher"]
    assert len(read_audit(wh, event_type="dispatch")) == len(auto_sent) + 1
