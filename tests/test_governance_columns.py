"""The column-wise join, policy and audit log give each record its own answers, decision and history.

``assemble_enriched`` aligns each task's table to the records by record id (not by position),
``decide`` evaluates each rule once per combination of the columns it reads, and
``record_changes`` compares a whole batch with the log at once; each test checks a record's own
result against the long way (one record at a time, or the rows the log already holds).
"""

import random

import pandas as pd
import pytest

from orchestration_assets.core.enrichment import assemble_enriched
from orchestration_assets.core.policy import decide
from orchestration_assets.governance import ROUTING_STATE
from resources.audit import natural_key, read_audit, record_changes
from resources.warehouse import Warehouse
from tests.test_policy import row

ST = "support_triage"


def _task_frame(task, ids, hashes):
    """A task's table whose answer names its record: ``<column>=<record id>`` in every text column."""
    cols = {c: [f"{c}={rid}" if kind == "str" else None for rid in ids] for c, kind in task.columns().items()}
    df = pd.DataFrame({"record_id": ids, "input_hash": hashes, **cols})
    df[f"{task.name}_error"] = None
    df[f"{task.name}_path"] = "local"
    return df


def test_each_record_gets_its_own_tasks_answers_whatever_the_order_of_the_task_tables(families):
    family = families[ST]
    ids = [f"R{i:02d}" for i in range(12)]
    records = pd.DataFrame({"record_id": ids, "input_hash": [f"h-{r}" for r in ids], "channel": "email"})
    frames, tasks = {}, list(family.tasks.values())
    for t, task in enumerate(tasks):
        order = random.Random(t).sample(ids, len(ids))  # each table in its own order
        frames[task.name] = _task_frame(task, order, [f"h-{r}" for r in order])
    first, second, third = (t.name for t in tasks[:3])
    frames[first] = frames[first][frames[first]["record_id"] != "R03"]  # no answer for R03
    stale = frames[second]["record_id"] == "R05"
    frames[second].loc[stale, "input_hash"] = "h-older"  # an answer for an older version of R05
    redo = frames[third][frames[third]["record_id"] == "R07"].assign(**{f"{third}_error": "model timed out"})
    frames[third] = pd.concat([frames[third], redo])  # R07 answered twice: the later row counts

    out = assemble_enriched(records, family.tasks, frames, model_task=family.model_task.name, run_id="r",
                            partition="p").set_index("record_id")

    assert list(out.index) == ids
    for task in tasks:
        text = [c for c, kind in task.columns().items() if kind == "str"][0]
        answered = [r for r in ids if not (task.name == first and r == "R03")]
        assert [out.at[r, text] for r in answered] == [f"{text}={r}" for r in answered]
    assert pd.isna(out.at["R03", [c for c, k in tasks[0].columns().items() if k == "str"][0]])
    assert out.at["R03", "failure_reason"] == f"{first}: no result"
    assert out.at["R05", "failure_reason"] == f"{second}: the answer is for an older version of the record"
    assert out.at["R07", "failure_reason"] == f"{third}: model timed out"
    assert set(out.index[out["status"] == "failed"]) == {"R03", "R05", "R07"}


def test_a_mixed_batch_gets_the_decisions_each_record_gets_alone(families):
    family = families[ST]
    rng = random.Random(7)
    unusual = {  # each field of a record is one of these now and then, else the ordinary value of row()
        "status": ["failed"], "guardrail_violations": [["reply:pii_email"]],
        "category": ["security", "privacy", "hardware"], "category_confidence": [0.2, 0.54, None],
        "priority": ["low", "high", "urgent"], "sentiment_score": [-0.8, -0.35, 0.3, None],
        "compliance": [["legal"], ["refund_request"], ["refund_request", "data_deletion"]],
        "refund_amount_usd": [20.0, 900.0], "account__is_vip": [True, None],
    }
    rows = [row(record_id=f"R-{i}", **{f: rng.choice(vs) for f, vs in unusual.items() if rng.random() < 0.12})
            for i in range(120)]
    batch = decide(family, pd.DataFrame(rows))
    alone = pd.concat([decide(family, pd.DataFrame([r])) for r in rows], ignore_index=True)
    pd.testing.assert_frame_equal(batch, alone)
    # the mix really covers what a record can get: each decision, a policy error, a guardrail, a failure
    reasons = {code.split(":")[0] for rs in batch["reasons"] for code in rs}
    assert set(batch["decision"]) == {"auto_send", "human_review", "escalate"}
    assert {"POLICY_ERROR", "GUARDRAIL", "ENRICHMENT_FAILED", "LOW_CONFIDENCE"} <= reasons


def _events(family, states: dict[str, tuple], run: str) -> pd.DataFrame:
    ids = list(states)
    events = pd.DataFrame({
        "family": family, "event_type": "routing_decision", "record_id": ids, "actor": "policy",
        "reasons": [[] for _ in ids], "run_id": run, "recorded_at": "2026-12-01T00:00:00+00:00",
        **{c: [states[r][i] for r in ids] for i, c in enumerate(ROUTING_STATE)},
    })
    events["natural_key"] = [natural_key(family, "routing_decision", r, *states[r]) for r in ids]
    return events


@pytest.fixture
def warehouse(tmp_path):
    return Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")


def test_the_log_gains_a_row_only_for_a_changed_decision_and_a_return_names_the_row_it_follows(warehouse):
    first = {f"R{i}": ("auto_send", "m1", "p1", "v1") for i in range(6)}
    assert record_changes(warehouse, _events(ST, first, "run-1"), ROUTING_STATE) == 6
    assert record_changes(warehouse, _events(ST, first, "run-2"), ROUTING_STATE) == 0  # a re-run: nothing new

    second = {**first, "R1": ("human_review", "m1", "p1", "v2"), "R2": ("auto_send", "m2", "p1", "v1"),
              "R9": ("escalate", "m1", "p1", "v1")}  # two changed, one new record, the rest as they were
    assert record_changes(warehouse, _events(ST, second, "run-3"), ROUTING_STATE) == 3
    log = read_audit(warehouse, family=ST)
    assert sorted(log.loc[log["run_id"] == "run-3", "record_id"]) == ["R1", "R2", "R9"]

    back = {**second, "R1": first["R1"]}  # R1 returns to its first state: recorded again, keyed after its latest row
    assert record_changes(warehouse, _events(ST, back, "run-4"), ROUTING_STATE) == 1
    log = read_audit(warehouse, family=ST)
    latest_r1 = int(log.loc[(log["record_id"] == "R1") & (log["run_id"] == "run-3"), "audit_id"].iloc[0])
    (key,) = log.loc[log["run_id"] == "run-4", "natural_key"]
    assert key == f"{natural_key(ST, 'routing_decision', 'R1', *first['R1'])}:after:{latest_r1}"
    assert log["natural_key"].is_unique and len(log) == 10
    assert record_changes(warehouse, _events(ST, back, "run-5"), ROUTING_STATE) == 0
