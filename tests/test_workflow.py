"""The whole support_triage graph on a small batch, and the family's sensors.

The first 60 rows of the family's first sample file, plus two malformed rows, go through the
``support_triage__workflow`` job twice in-process on temp resources (the local provider, its
models trained once per session). The tests read what the runs left behind, as a user would in
the UI or the warehouse; the sensors are evaluated with ``dg.build_sensor_context``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import dagster as dg
import pandas as pd
import pytest

from orchestration_assets.core.policy import policy_version
from resources.audit import read_audit
from resources.outbox import read_ledger
from resources.sources import Inbox
from tests.governance_fixtures import Env, failure_message
from tests.workflow import check_results, copy_batch, inbox_of, materialization_metadata, run_workflow, sample_files

pytestmark = pytest.mark.filterwarnings("ignore")

ST = "support_triage"
ROWS = 60
BATCH = "batch-small.csv"


@dataclass
class Runs:
    env: Env
    first: dg.ExecuteInProcessResult
    second: dg.ExecuteInProcessResult
    audit_after: list[int]  # routing audit rows after each run
    delivered_after: list[int]  # delivered outputs after each run
    files_after: list[int]

    @property
    def family(self):
        return self.env.families[ST]

    def table(self, asset: str) -> pd.DataFrame:
        return self.env.warehouse.read_table(self.family.table(asset), partitions=[BATCH])


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="module")
def runs(families, tmp_path_factory, model_dir, instance) -> Runs:
    family = families[ST]
    env = Env([family], tmp_path_factory.mktemp("workflow"), model_dir, instance)
    batch = copy_batch(sample_files(family)[0], inbox_of(family, env.resources), n=ROWS, name=BATCH)
    lines = batch.read_text(encoding="utf-8").splitlines(keepends=True)
    # a row repeating the first record's id, and one with a channel the spec does not allow
    bad = lines[1], lines[2].replace(",email,", ",fax,", 1).replace("T-104002", "T-199002", 1)
    batch.write_text("".join([*lines, *bad]), encoding="utf-8")
    results, audit, delivered, files = [], [], [], []
    for _ in range(2):
        result = run_workflow(env.defs, family, instance, BATCH)
        assert result.success, failure_message(result)
        results.append(result)
        audit.append(len(read_audit(env.warehouse, family=ST, partition=BATCH, event_type="routing_decision")))
        delivered.append(int((read_ledger(env.warehouse.engine, family=ST)["status"] == "delivered").sum()))
        files.append(len(list((env.outbox / ST).glob("*.json"))))
    return Runs(env, *results, audit, delivered, files)


def test_every_row_of_the_batch_is_accounted_for(runs):
    raw = materialization_metadata(runs.first)[f"{ST}/raw_records"]
    assert raw["rows_in"] == ROWS + 2 and raw["rows_ok"] == ROWS and raw["rows_quarantined"] == 2
    quarantined = runs.table("quarantined_records").set_index("source_row")
    assert quarantined.loc[ROWS + 1, "field"] == "ticket_id" and "first seen at row 1" in quarantined.loc[ROWS + 1, "reason"]
    assert quarantined.loc[ROWS + 2, "field"] == "channel" and "'fax' is not one of" in quarantined.loc[ROWS + 2, "reason"]
    assert set(quarantined["source_file"]) == {BATCH}
    enriched = runs.table("enriched_records")
    assert len(enriched) == ROWS and enriched["record_id"].is_unique
    meta = materialization_metadata(runs.first)[f"{ST}/enriched_records"]
    assert meta["rows_in"] == meta["rows_enriched"] + meta["rows_failed"] == ROWS
    assert enriched.loc[enriched["status"] == "failed", "failure_reason"].notna().all()


def test_every_enriched_record_carries_its_provenance_and_the_answer_of_every_task(runs):
    enriched = runs.table("enriched_records")
    ok = enriched[enriched["status"] == "enriched"]
    assert len(ok) >= ROWS * 0.95
    for col in ("model_version", "model_versions", "prompt_version", "input_hash", "partition", "run_id"):
        assert ok[col].notna().all(), col
    assert set(ok["partition"]) == {BATCH} and set(ok["run_id"]) == {runs.second.run_id}  # rewritten by the re-run
    assert all(set(v) == set(runs.family.tasks) and all(v.values()) for v in ok["model_versions"])
    assert (ok["model_version"] == ok["category_model_version"]).all()  # the family's model task
    assert ok["category"].isin(runs.family.tasks["category"].labels).all()
    assert ok["priority"].isin(["low", "medium", "high", "urgent"]).all()
    assert ok[["category_confidence", "priority_confidence"]].stack().between(0, 1).all()
    assert ok["sentiment"].isin(["negative", "neutral", "positive"]).all() and ok["sentiment_score"].between(-1, 1).all()
    assert ok["summary"].str.len().gt(0).all() and ok["reply"].str.len().gt(50).all()
    assert ok["reply_cited_ids"].map(len).gt(0).all()  # grounded in the help centre
    assert ok["compliance"].map(lambda v: isinstance(v, list)).all() and "refund_amount_usd" in ok
    assert ok["category_path"].eq("local").all() and ok["cost_usd"].eq(0).all()  # no LLM configured: free


def test_every_record_gets_a_decision_with_its_reasons_and_versions(runs):
    decisions = runs.table("routing_decisions")
    enriched = runs.table("enriched_records")
    assert set(decisions["record_id"]) == set(enriched["record_id"])
    assert set(decisions["decision"]) <= {"auto_send", "human_review", "escalate"} and decisions["decision"].nunique() > 1
    assert set(decisions["policy_version"]) == {policy_version(runs.family)}
    routed = decisions[decisions["decision"] != "auto_send"]
    assert routed["reasons"].map(len).gt(0).all()
    known = {r.reason for r in runs.family.spec.policy} | {"ENRICHMENT_FAILED"}
    codes = {code for rs in decisions["reasons"] for code in rs}
    assert {c for c in codes if not c.startswith(("GUARDRAIL:", "POLICY_ERROR:"))} <= known
    low = decisions[decisions["category_confidence"] < 0.55]
    assert low["reasons"].map(lambda rs: "LOW_CONFIDENCE" in rs).all() and (low["decision"] != "auto_send").all()
    meta = materialization_metadata(runs.first)[f"{ST}/routing_decisions"]
    assert meta["auto_send"] + meta["human_review"] + meta["escalate"] == ROWS


def test_the_blocking_data_checks_and_guardrails_ran_and_passed(runs):
    evaluated = check_results(runs.first)
    for asset, check in [("raw_records", "record_ids_unique_and_present"), ("enriched_records", "answers_in_allowed_sets"),
                         ("enriched_records", "confidences_in_unit_interval"), ("enriched_records", "outputs_free_of_pii"),
                         ("enriched_records", "outputs_do_not_echo_injection"),
                         ("enriched_records", "failure_rate_below_threshold"),
                         ("enriched_records", "llm_spend_within_budget")]:
        ev = evaluated[(f"{ST}/{asset}", check)]
        assert ev.passed and ev.partition == BATCH, (asset, check, ev.description)


def test_a_rerun_adds_no_audit_row_duplicate_or_dispatch(runs):
    decisions = runs.table("routing_decisions")
    assert runs.audit_after == [len(decisions)] * 2
    audit = read_audit(runs.env.warehouse, family=ST, partition=BATCH, event_type="routing_decision")
    assert audit["record_id"].is_unique and audit["model_version"].notna().all() and audit["input_hash"].notna().all()
    assert set(audit["run_id"]) == {runs.first.run_id}  # recorded once, by the run that decided
    second = materialization_metadata(runs.second)[f"{ST}/audit_log"]
    assert second["rows_inserted"] == 0 and second["already_recorded"] == len(decisions)
    auto = int((decisions["decision"] == "auto_send").sum())
    assert runs.delivered_after == [auto, auto] and runs.files_after == [auto, auto]
    assert materialization_metadata(runs.second)[f"{ST}/dispatches"]["already_delivered"] == auto
    for asset in ("raw_records", "enriched_records", "routing_decisions", *runs.family.tasks):
        assert runs.table(asset)["record_id"].is_unique, asset


def test_the_kpis_add_up_to_the_decisions(runs):
    decisions = runs.table("routing_decisions")
    daily = runs.env.warehouse.read_table(runs.family.table("kpi_daily"))
    assert int(daily["records"].sum()) == len(decisions)
    for decision in ("auto_send", "human_review", "escalate"):
        assert int(daily[decision].sum()) == int((decisions["decision"] == decision).sum())
    weighted = (daily["automation_rate"] * daily["records"]).sum() / daily["records"].sum()
    assert weighted == pytest.approx((decisions["decision"] == "auto_send").mean())
    assert set(daily["day"]) == {"2026-11-23"} and daily["cost_per_record"].eq(0).all()
    assert daily[[f"latency_p95_ms_{t}" for t in runs.family.tasks]].notna().all().all()
    versions = runs.env.warehouse.read_table(runs.family.table("kpi_by_model_version"))
    assert int(versions["records"].sum()) == len(decisions) and versions["quality_source"].eq("labelled_category").all()
    meta = materialization_metadata(runs.first)[f"{ST}/kpi_daily"]
    assert meta["records"] == len(decisions) and 0 < meta["automation_rate"] < 1
    queue = materialization_metadata(runs.first)[f"{ST}/review_queue"]
    assert queue["pending"] == int(decisions["decision"].isin(["human_review", "escalate"]).sum())


# ---- sensors ------------------------------------------------------------------------------------
def test_the_inbox_sensor_turns_each_new_file_into_a_partition_and_one_run(runs, tmp_path, instance):
    family = runs.family
    sensor = runs.env.defs.resolve_sensor_def(f"{ST}__inbox_sensor")
    resources = {"inbox": Inbox(root=str(tmp_path / "inbox"), settle_seconds=0)}  # an empty inbox of its own
    inbox = inbox_of(family, resources)
    first, second = sample_files(family)[:2]
    for src in (first, second):
        copy_batch(src, inbox, n=3)
    copy_batch(first, inbox, n=3, name=BATCH)  # registered already (the workflow ran it): not run again
    (inbox / "notes.txt").write_text("not a batch")

    def tick(cursor=None):
        return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))

    result = tick()  # settle_seconds=0 and written before the tick: complete, taken on first sight
    assert [r.partition_key for r in result.run_requests] == [first.name, second.name]
    assert [r.run_key for r in result.run_requests] == [f"inbox:{ST}:{first.name}", f"inbox:{ST}:{second.name}"]
    assert all(r.tags["family"] == ST for r in result.run_requests) and sensor.job_name == f"{ST}__workflow"
    (add,) = result.dynamic_partitions_requests
    assert add.partitions_def_name == family.partitions_name and list(add.partition_keys) == [first.name, second.name]
    idle = tick(result.cursor)  # the same files, next tick: nothing to do
    assert not idle.run_requests and "no new batch files" in idle.skip_reason.skip_message
    copy_batch(sample_files(family)[0], inbox, n=3, name="batch-2026-12-02.csv")
    later = tick(result.cursor)
    assert [r.partition_key for r in later.run_requests] == ["batch-2026-12-02.csv"]
    assert sorted(json.loads(later.cursor)["files"]) == sorted([first.name, second.name, BATCH, "batch-2026-12-02.csv"])


def test_the_review_decision_sensor_starts_one_dispatch_run_per_batch_of_decisions(runs, instance):
    env, family = runs.env, runs.family
    sensor = env.defs.resolve_sensor_def(f"{ST}__review_decision_sensor")
    queue = env.warehouse.read_table(family.table("review_queue"))

    def tick(cursor=None):
        return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"warehouse": env.warehouse}))

    assert isinstance(tick(), dg.SkipReason)
    edited = "Hello, thank you for your patience: we have resolved the issue on our side."
    for rid, config in zip(queue["record_id"], [dict(decision="edit_and_approve", edited_text=edited),
                                                dict(decision="reject")]):
        assert env.decide(ST, record_id=rid, reviewer="alice", **config).success
    first = tick()
    (request,) = first.run_requests
    assert sensor.job_name == f"{ST}__dispatch" and first.cursor == "2"
    assert request.run_key == f"review-decisions:{ST}:2" and request.tags["decisions"] == "2"
    assert isinstance(tick(first.cursor), dg.SkipReason)  # nothing new: no run

    # the run it asks for delivers the approved reply, once, with the trail of every step
    before = len(list((env.outbox / ST).glob("*.json")))
    assert env.dispatch(ST).success
    rid = queue["record_id"].iloc[0]
    sent = json.loads((env.outbox / ST / f"{rid}.json").read_text())
    assert sent["text"] == edited and sent["source"] == "edit_and_approve"
    assert len(list((env.outbox / ST).glob("*.json"))) == before + 1
    trail = read_audit(env.warehouse, family=ST, record_id=rid)
    assert trail["event_type"].tolist() == ["routing_decision", "review_decision", "dispatch"]
    assert trail["actor"].tolist() == ["policy", "alice", "dispatcher"]
    assert rid not in set(env.warehouse.read_table(family.table("review_queue"))["record_id"])


def test_the_new_challenger_sensor_requests_one_evaluation_per_challenger(runs, instance):
    env = runs.env
    sensor = env.defs.resolve_sensor_def(f"{ST}__new_challenger_sensor")
    registry = env.resources["registry"]
    reg = registry.get()
    assert reg.champion(ST, "category") is not None  # the first run trained and promoted one

    def tick(cursor=None):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"registry": registry}) as context:
            return sensor(context)

    assert tick().skip_reason.skip_message == "no new challenger"
    reg.register(family=ST, task="category", version="cat-challenger-1", provider="local", model_id="svm",
                 alias="challenger", reason="trained in a notebook")
    first = tick()
    (request,) = first.run_requests
    assert sensor.job_name == f"{ST}__evaluation"
    assert request.run_key == f"evaluate:{ST}:category:cat-challenger-1"
    assert request.tags["challenger_version"] == "cat-challenger-1" and request.tags["task"] == "category"
    assert not tick(first.cursor).run_requests  # the same challenger: evaluated once
    # a challenger that already has an evaluation (from the CLI) is not evaluated again
    reg.register(family=ST, task="priority", version="prio-challenger-1", provider="local", model_id="svm",
                 alias="challenger", reason="trained elsewhere")
    reg.record_evaluation(family=ST, task="priority", challenger_version="prio-challenger-1",
                          champion_version=None, golden_set_hash="g", golden_rows=0, metrics={}, gates=[], passed=False)
    skipped = tick(first.cursor)
    assert not skipped.run_requests
    assert "priority challenger prio-challenger-1 already evaluated" in skipped.skip_reason.skip_message
    assert env.defs.resolve_job_def(f"{ST}__evaluation")  # the job it asks for exists


def test_the_run_keeps_no_per_record_table_in_memory_once_written(runs):
    # execute_in_process keeps every value a step returns until the run ends (for its result object):
    # a batch's tables are written to the warehouse by their step and not handed back to Dagster
    family = runs.family
    for asset in ("raw_records", "quarantined_records", *family.tasks, "enriched_records", "routing_decisions"):
        assert not isinstance(runs.first.asset_value(family.key(asset)), pd.DataFrame), asset
        meta = materialization_metadata(runs.first)[f"{ST}/{asset}"]
        assert meta["rows_written"] == len(runs.table(asset)) > 0, asset
        assert meta["warehouse_table"] == family.table(asset)
