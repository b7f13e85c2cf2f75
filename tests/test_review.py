"""Human review of a family: the queue, decisions through the launchpad job and the CLI, audit, feedback.

The routing decisions and enriched records are seeded (shaped as the graph writes them), so each
test knows which records wait for a reviewer; decisions go through the family's real
``<family>__record_review_decision`` job or ``workflow-review`` (``review_cli.main``).
"""

from __future__ import annotations

import json
import re
import threading

import dagster as dg
import pandas as pd
import pytest

from orchestration_assets.core.dispatch import kpi_review
from orchestration_assets.core.review import ReviewDecision, read_review_decisions, record_decision
from orchestration_assets.review_cli import main as review_cli
from resources.audit import read_audit
from tests.governance_fixtures import (Env, auto_ids, failure_message, metadata_of, pending_ids, seed_batch,
                                       validations_meet)

pytestmark = pytest.mark.filterwarnings("ignore")

ST, ITSD = "support_triage", "it_service_desk"
CLEAN_EDIT = "Hello, we reset your sign-in session on our side; please try again and tell us if it persists."


@pytest.fixture(scope="module")
def instance():
    """One Dagster instance for the module (creating one takes a second); runs do not interfere."""
    with dg.instance_for_test() as inst:
        yield inst


def _env(families, root, model_dir, instance) -> Env:
    e = Env([families[ST], families[ITSD]], root, model_dir, instance)
    e.routing = {name: seed_batch(e.warehouse, f, n=10) for name, f in e.families.items()}
    return e


@pytest.fixture
def env(families, tmp_path, model_dir, instance):
    """support_triage and it_service_desk on a fresh warehouse, ten seeded records each."""
    return _env(families, tmp_path, model_dir, instance)


@pytest.fixture(scope="module")
def untouched_env(families, tmp_path_factory, model_dir, instance):
    """The same, shared by the tests of refused decisions (each one checks that nothing was recorded);
    the second pending support_triage record has no reply (its draft failed)."""
    e = _env(families, tmp_path_factory.mktemp("review"), model_dir, instance)
    table = e.families[ST].table("enriched_records")
    enriched = e.warehouse.read_table(table).drop(columns=["_partition"])
    enriched.loc[enriched["record_id"] == pending_ids(e.routing[ST])[1], "reply"] = None
    e.warehouse.replace_partition(table, enriched, enriched["partition"].iloc[0])
    return e


def cli(env, *args: str) -> int:
    return review_cli(["--warehouse-url", env.warehouse.url, *args])


# ---- the queue ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [ST, ITSD])
def test_the_queue_lists_pending_records_oldest_first_with_reasons_and_age(env, name):
    family = env.families[name]
    routing = seed_batch(env.warehouse, family, n=10, newest_first=True)  # the last record waits longest
    result = env.materialize(name, "review_decisions", "review_queue")
    assert result.success
    queue = env.table(name, "review_queue")
    assert queue["record_id"].tolist() == pending_ids(routing)[::-1]  # 6 of 10, the oldest in the queue first
    first = queue.iloc[0]
    assert first["record_id"].endswith("R0009") and list(first["reasons"]) == ["LOW_CONFIDENCE"]
    assert first["decision"] == "human_review" and first["age_hours"] > queue["age_hours"].iloc[-1]
    assert first["age_hours"] > 24 and first["model_version"] == "local@1"
    assert first[family.model_task.name] == family.model_task.labels[0]  # the answer a reviewer judges
    assert first[family.record.text[-1]].startswith("Since this morning")  # and the text it is about
    meta = metadata_of(result, name, "review_queue")
    assert meta["pending"] == 6 and meta["escalations_pending"] == 2
    assert re.search(r"\| LOW_CONFIDENCE +\| +4 \|", meta["by_reason"])
    assert re.search(r"\| SENSITIVE_FLAG +\| +2 \|", meta["by_reason"])
    assert first["record_id"] in meta["oldest_items"]
    assert meta["oldest_age_hours"] >= meta["mean_age_hours"] > 0


# ---- decisions through the launchpad job --------------------------------------------------------
def test_each_decision_through_the_launchpad_is_recorded_and_audited_with_the_reviewer(env):
    wh = env.warehouse
    approve, edit, reject, relabel = pending_ids(env.routing[ST])[:4]
    cases = [
        dict(record_id=approve, decision="approve", reviewer="alice", note="fine as is"),
        dict(record_id=edit, decision="edit_and_approve", reviewer="alice", edited_text=CLEAN_EDIT),
        dict(record_id=reject, decision="reject", reviewer="bob", note="needs a phone call"),
        dict(record_id=relabel, decision="relabel", reviewer="bob", corrected_label="billing"),
    ]
    for config in cases:
        result = env.decide(ST, **config)
        assert result.success, failure_message(result)
        meta = metadata_of(result, ST, "review_decisions")
        assert (meta["recorded_record_id"], meta["recorded_decision"], meta["recorded_reviewer"]) == (
            config["record_id"], config["decision"], config["reviewer"])

    stored = read_review_decisions(wh, ST).set_index("record_id")
    assert set(stored["channel"]) == {"launchpad"} and stored["run_id"].notna().all()
    assert stored.loc[edit, "edited_text"] == CLEAN_EDIT
    assert stored.loc[relabel, "corrected_label"] == "billing" and stored.loc[relabel, "label"] == "account_access"
    assert stored.loc[reject, "note"] == "needs a phone call"
    assert stored.loc[approve, "routed_decision"] == "human_review"
    assert stored.loc[approve, "reasons"] == ["LOW_CONFIDENCE"]

    for config in cases:
        trail = read_audit(wh, family=ST, record_id=config["record_id"], event_type="review_decision")
        assert len(trail) == 1, config
        event = trail.iloc[0]
        details = json.loads(event["details"])
        assert event["decision"] == config["decision"] and event["actor"] == config["reviewer"]
        assert event["model_version"] == "local@1" and event["policy_version"] == env.routing[ST]["policy_version"][0]
        assert details["channel"] == "launchpad" and details["text_edited"] == (config["decision"] == "edit_and_approve")
        assert details["corrected_label"] == config.get("corrected_label")

    # decided records leave the queue; the report run finds nothing to back-fill in the audit log
    refresh = env.materialize(ST, "review_decisions", "review_queue")
    assert metadata_of(refresh, ST, "review_decisions")["audit_events_backfilled"] == 0
    assert set(env.table(ST, "review_queue")["record_id"]) == set(pending_ids(env.routing[ST])[4:])


# (family, config with {pending} / {auto} placeholders, what the reviewer is told)
INVALID = [
    pytest.param(ST, dict(record_id="NOPE-1", decision="approve", reviewer="alice"),
                 "unknown ticket_id 'NOPE-1': no routing decision exists for it in support_triage", id="unknown-record"),
    pytest.param(ST, dict(record_id="{auto}", decision="approve", reviewer="alice"),
                 "was routed 'auto_send', not to a reviewer", id="not-routed-to-review"),
    pytest.param(ST, dict(record_id="{no_reply}", decision="approve", reviewer="alice"),
                 "has no generated text to approve; use edit_and_approve with a text", id="approve-without-a-reply"),
    pytest.param(ST, dict(record_id="{pending}", decision="approve", reviewer="  "),
                 "reviewer must not be empty", id="no-reviewer"),
    pytest.param(ST, dict(record_id="{pending}", decision="edit_and_approve", reviewer="alice"),
                 "edit_and_approve needs edited_text", id="edit-without-text"),
    pytest.param(ST, dict(record_id="{pending}", decision="edit_and_approve", reviewer="alice",
                          edited_text="Call me back at jane.doe@example.com or +1 415 555 0199."),
                 "the edited text contains PII (email, phone); remove it before approving", id="edit-with-pii"),
    pytest.param(ST, dict(record_id="{pending}", decision="relabel", reviewer="alice", corrected_label="weather"),
                 "unknown label 'weather': use one of account_access, billing", id="relabel-unknown-label"),
    pytest.param(ST, dict(record_id="{pending}", decision="relabel", reviewer="alice"),
                 "relabel needs corrected_label", id="relabel-without-label"),
    pytest.param(ITSD, dict(record_id="{pending}", decision="edit_and_approve", reviewer="alice", edited_text=CLEAN_EDIT),
                 "unknown decision 'edit_and_approve': it_service_desk allows approve, reject, relabel",
                 id="action-the-family-does-not-allow"),
]


def _fill(env, name: str, config: dict) -> dict:
    routing = env.routing[name]
    rid = config["record_id"].format(pending=pending_ids(routing)[0], no_reply=pending_ids(routing)[1],
                                     auto=auto_ids(routing)[0])
    return {**config, "record_id": rid}


def _nothing_recorded(env) -> None:
    assert read_review_decisions(env.warehouse).empty
    assert read_audit(env.warehouse, event_type="review_decision").empty


@pytest.mark.parametrize("name, config, message", INVALID)
def test_the_launchpad_refuses_an_invalid_decision_saying_why(untouched_env, name, config, message):
    env = untouched_env
    result = env.decide(name, **_fill(env, name, config))
    assert not result.success
    told = failure_message(result)
    assert told.startswith("decision not recorded: ") and message in told
    assert "jane.doe@example.com" not in told and "555 0199" not in told  # PII is named by kind, never echoed
    _nothing_recorded(env)


@pytest.mark.parametrize("name, config, message", INVALID)
def test_the_cli_refuses_an_invalid_decision_saying_why(untouched_env, capsys, name, config, message):
    env = untouched_env
    config = _fill(env, name, config)
    args = ["decide", config["record_id"], "--family", name, "--decision", config["decision"],
            "--reviewer", config["reviewer"]]
    if config.get("edited_text"):
        args += ["--edited-text", config["edited_text"]]
    if config.get("corrected_label"):
        args += ["--label", config["corrected_label"]]
    assert cli(env, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "jane.doe@example.com" not in err
    _nothing_recorded(env)


def test_a_record_is_decided_once_and_a_second_decision_names_the_first(env, capsys):
    rid = pending_ids(env.routing[ST])[0]
    assert env.decide(ST, record_id=rid, decision="reject", reviewer="bob").success
    again = env.decide(ST, record_id=rid, decision="approve", reviewer="alice")
    assert not again.success and f"{rid!r} already decided: reject by bob" in failure_message(again)
    assert cli(env, "decide", rid, "--family", ST, "--decision", "approve", "--reviewer", "carol") == 2
    assert "already decided: reject by bob" in capsys.readouterr().err
    assert read_review_decisions(env.warehouse, ST)["reviewer"].tolist() == ["bob"]
    assert read_audit(env.warehouse, family=ST, event_type="review_decision")["actor"].tolist() == ["bob"]


def test_two_reviewers_deciding_one_record_at_once_one_wins_and_the_other_is_told(env, capsys, monkeypatch):
    rid = pending_ids(env.routing[ST])[0]
    validations_meet(monkeypatch)  # both reviewers pass validation before either writes
    codes: dict[str, int] = {}

    def decide(reviewer: str, decision: str) -> None:
        codes[reviewer] = cli(env, "decide", rid, "--family", ST, "--decision", decision, "--reviewer", reviewer)

    threads = [threading.Thread(target=decide, args=a) for a in (("alice", "approve"), ("bob", "reject"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(codes.values()) == [0, 2]
    out = capsys.readouterr()
    assert f"{rid!r} already decided (recorded concurrently)" in out.err
    winner = next(r for r, code in codes.items() if code == 0)
    stored = read_review_decisions(env.warehouse, ST)
    assert stored["reviewer"].tolist() == [winner] and f"by {winner}" in out.out
    assert read_audit(env.warehouse, family=ST, record_id=rid)["actor"].tolist() == [winner]


# ---- the CLI ------------------------------------------------------------------------------------
def test_the_cli_lists_the_queue_and_records_every_kind_of_decision(env, capsys, tmp_path):
    ids = pending_ids(env.routing[ST])
    assert cli(env, "queue", "--family", ST) == 0
    out = capsys.readouterr().out
    assert ids[0] in out and "LOW_CONFIDENCE" in out and "account_access" in out
    assert cli(env, "queue", "--family", ST, "--json", "--limit", "2") == 0
    assert [r["record_id"] for r in json.loads(capsys.readouterr().out)] == ids[:2]

    edited = tmp_path / "reply.txt"
    edited.write_text(CLEAN_EDIT, encoding="utf-8")
    assert cli(env, "decide", ids[0], "--family", ST, "--decision", "approve", "--reviewer", "carol") == 0
    assert f"recorded approve on {ids[0]} by carol" in capsys.readouterr().out
    assert cli(env, "decide", ids[1], "--family", ST, "--decision", "edit_and_approve", "--reviewer", "carol",
               "--edited-text-file", str(edited)) == 0
    assert cli(env, "decide", ids[2], "--family", ST, "--decision", "reject", "--reviewer", "dave", "--note", "spam") == 0
    assert cli(env, "decide", ids[3], "--family", ST, "--decision", "relabel", "--reviewer", "dave",
               "--label", "billing") == 0
    # the same record id in another family is another record: decided on its own
    other = env.families[ITSD].tasks["topic"].labels[1]
    assert cli(env, "decide", ids[3], "--family", ITSD, "--decision", "relabel", "--reviewer", "erin",
               "--label", other) == 0
    capsys.readouterr()

    stored = read_review_decisions(env.warehouse, ST)
    assert stored["decision"].tolist() == ["approve", "edit_and_approve", "reject", "relabel"]
    assert set(stored["channel"]) == {"cli"} and stored["edited_text"].iloc[1] == CLEAN_EDIT
    audit = read_audit(env.warehouse, family=ST, event_type="review_decision")
    assert audit["record_id"].tolist() == ids[:4] and audit["actor"].tolist() == ["carol", "carol", "dave", "dave"]
    assert read_review_decisions(env.warehouse, ITSD)[["record_id", "corrected_label"]].values.tolist() == [[ids[3], other]]
    assert cli(env, "queue", "--family", ST) == 0
    assert ids[0] not in capsys.readouterr().out  # decided: out of the queue
    assert cli(env, "queue", "--family", "no_such_family") == 2
    assert "no family named 'no_such_family'" in capsys.readouterr().err


def test_the_cli_never_prints_terminal_escape_sequences_from_record_text(env, capsys):
    family = env.families[ST]
    table = family.table("enriched_records")
    enriched = env.warehouse.read_table(table).drop(columns=["_partition"])
    rid = pending_ids(env.routing[ST])[0]
    hostile = "Invoice\x1b[2J\x1b]0;pwned\x07 wrong\x9b31m\r\x08 amount"
    enriched.loc[enriched["record_id"] == rid, ["subject", "body"]] = [hostile, hostile]
    env.warehouse.replace_partition(table, enriched, enriched["partition"].iloc[0])

    assert cli(env, "queue", "--family", ST) == 0
    table_out = capsys.readouterr().out
    assert cli(env, "queue", "--family", ST, "--json") == 0
    json_out = capsys.readouterr().out
    assert cli(env, "decide", "X\x1b[31m-1", "--family", ST, "--decision", "approve", "--reviewer", "eve\x1b[8m") == 2
    err = capsys.readouterr().err
    for shown in (table_out, json_out, err):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", shown), repr(shown)
    assert "Invoice wrong amount" in table_out and "[2J" not in table_out  # the text stays, the sequences go whole
    assert json.loads(json_out)[0]["subject"] == hostile  # JSON keeps the value, escaped
    assert "unknown ticket_id" in err


# ---- feedback and KPIs ------------------------------------------------------------------------
def test_reviews_become_training_rows_relabels_carry_the_correction_and_rejections_are_left_out(env):
    family = env.families[ST]
    approved, relabelled, rejected = pending_ids(env.routing[ST])[:3]
    for rid, extra in [(approved, dict(decision="approve")), (relabelled, dict(decision="relabel", corrected_label="billing")),
                       (rejected, dict(decision="reject"))]:
        record_decision(env.warehouse, family, ReviewDecision(record_id=rid, reviewer="alice", **extra))
    result = env.materialize(ST, "review_decisions", "review_feedback")
    fb = env.table(ST, "review_feedback").set_index("record_id")
    assert metadata_of(result, ST, "review_feedback")["relabelled"] == 1
    assert list(env.table(ST, "review_feedback").columns) == ["family", "task", "record_id", "text", "label", "source",
                                                             "recorded_at"]
    assert fb.loc[relabelled, "label"] == "billing" and fb.loc[relabelled, "source"] == "review:relabel"
    assert fb.loc[approved, "label"] == "account_access" and fb.loc[approved, "source"] == "review:approve"
    assert rejected not in fb.index  # a rejected output says nothing about the label
    assert set(fb["task"]) == {"category"} and set(fb["family"]) == {ST}
    record = env.table(ST, "enriched_records").set_index("record_id").loc[relabelled]
    assert fb.loc[relabelled, "text"] == f"{record['subject']}\n{record['body']}"  # the text the classifier reads


def test_review_kpis_measure_burden_and_time_to_resolution():
    reviewed = pd.DataFrame({
        "record_id": ["a", "b", "c", "d"],
        "decision": ["approve", "reject", "relabel", "edit_and_approve"],
        "reviewer": ["alice", "alice", "alice", "bob"],
        # alice: 3 decisions in two clock hours; bob: 1 in one hour -> 4 items / 3 reviewer-hours
        "decided_at": ["2026-11-24T09:10:00+00:00", "2026-11-24T09:50:00+00:00", "2026-11-24T10:05:00+00:00",
                       "2026-11-24T09:30:00+00:00"],
        "queued_at": ["2026-11-24T08:10:00+00:00"] * 4,
    })
    dispatched = pd.DataFrame({
        "record_id": ["a", "d", "x"],
        "record_time": ["2026-11-24T07:00:00+00:00", "2026-11-24T08:00:00+00:00", "2026-11-24T10:00:00+00:00"],
        "delivered_at": ["2026-11-24T11:00:00+00:00"] * 3,
    })
    row = kpi_review(reviewed, dispatched).iloc[0]
    assert row["day"] == "2026-11-24" and row["decisions"] == 4 and row["reviewers"] == 2
    assert row["reviewer_hours"] == 3 and row["items_per_reviewer_hour"] == pytest.approx(4 / 3)
    assert (row["approved"], row["edited"], row["rejected"], row["relabelled"]) == (1, 1, 1, 1)
    assert row["dispatched"] == 3 and row["time_to_resolution_p50_hours"] == pytest.approx(3.0)
    assert row["review_turnaround_p50_hours"] == pytest.approx(1.5)  # median of 1, 1.33, 1.67, 1.92 hours
