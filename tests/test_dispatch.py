"""Dispatch: auto_send and approved outputs reach the family's outbox folder and a real webhook exactly once.

Exactly once per (family, record): across re-runs, concurrent dispatchers and a dispatcher killed
between sending and recording it; a refused delivery is retried by the next run and reported by the
``no_failed_deliveries`` check meanwhile.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration_assets.core.dispatch import dispatch_candidates
from orchestration_assets.core.review import ReviewDecision, read_review_decisions, record_decision
from orchestration_assets.family import Family
from resources.audit import read_audit
from resources.outbox import read_ledger
from tests.governance_fixtures import (
    Env,
    WebhookServer,
    auto_ids,
    failure_message,
    metadata_of,
    pending_ids,
    seed_batch,
)
from tests.workflow import DEFS

pytestmark = pytest.mark.filterwarnings("ignore")

REPO = Path(__file__).resolve().parent.parent
ST, ITSD = "support_triage", "it_service_desk"
HOOK_ENV = "DISPATCH_TEST_WEBHOOK_URL"
EDITED = "Hello, we fixed the sign-in problem on our side; please log in again now."


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="module")
def hooked_family() -> Family:
    """support_triage as a user would configure a webhook: ``dispatch.webhook_url_env`` in its defs.yaml."""
    doc = yaml.safe_load((DEFS / ST / "defs.yaml").read_text(encoding="utf-8"))
    doc["attributes"]["dispatch"]["webhook_url_env"] = HOOK_ENV
    return Family.from_attributes(doc["attributes"], DEFS / ST, "defs.yaml")


@pytest.fixture
def env(hooked_family, tmp_path, model_dir, instance):
    e = Env([hooked_family], tmp_path, model_dir, instance)
    e.routing = seed_batch(e.warehouse, hooked_family, n=10)
    return e


def outbox_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.exists() else []


def candidates(env, family: Family):
    wh = env.warehouse
    return dispatch_candidates(family, wh.read_table(family.table("routing_decisions")),
                               wh.read_table(family.table("enriched_records")), read_review_decisions(wh, family.name))


def check_result(result, name: str = "no_failed_deliveries"):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_outputs_go_out_once_across_reruns_with_the_webhook_idempotency_key(env, monkeypatch):
    ids = pending_ids(env.routing)
    decisions = [dict(record_id=ids[0], decision="approve", reviewer="alice"),
                 dict(record_id=ids[1], decision="edit_and_approve", reviewer="alice", edited_text=EDITED),
                 dict(record_id=ids[2], decision="reject", reviewer="bob"),
                 dict(record_id=ids[3], decision="relabel", reviewer="bob", corrected_label="billing")]
    for config in decisions:  # (the launchpad and the CLI record the same way: tests/test_review.py)
        record_decision(env.warehouse, env.families[ST], ReviewDecision(**config))
    auto = auto_ids(env.routing)
    expected = set(auto) | {ids[0], ids[1]}  # rejected and relabelled outputs never go out

    with WebhookServer() as hook:
        monkeypatch.setenv(HOOK_ENV, hook.url)
        for attempt in range(2):
            result = env.dispatch(ST)
            assert result.success, failure_message(result)
            meta = metadata_of(result, ST, "dispatches")
            assert meta["delivered"] == (len(expected) if attempt == 0 else 0)
            assert meta["already_delivered"] == (0 if attempt == 0 else len(expected))
            assert check_result(result).passed
            assert "s3cret-hook-token" not in str(meta) and "127.0.0.1" in meta["outbox"]  # host shown, token not
    folder = env.outbox / ST
    files = outbox_files(folder)
    sent_files = {json.loads(p.read_text())["record_id"]: json.loads(p.read_text()) for p in files}
    assert set(sent_files) == expected and len(files) == len(expected)
    assert not [p for p in folder.iterdir() if p.suffix == ".tmp" or p.name.startswith(".")]
    assert hook.keys == {f"dispatch:{ST}:{rid}": 1 for rid in expected}
    posted = {p["body"]["record_id"]: p["body"] for p in hook.posts}
    assert posted[ids[1]]["text"] == EDITED and posted[ids[1]]["source"] == "edit_and_approve"
    assert posted[ids[0]]["approved_by"] == "alice" and posted[ids[0]]["text"] == sent_files[ids[0]]["text"]
    assert posted[auto[0]]["source"] == "auto_send" and posted[auto[0]]["approved_by"] == "policy"
    assert {"account_id", "category", "priority", "family", "model_version", "policy_version"} <= set(posted[auto[0]])
    assert posted[auto[0]]["family"] == ST

    table = env.table(ST, "dispatches")
    assert set(table["record_id"]) == expected and table["time_to_resolution_hours"].gt(0).all()
    audit = read_audit(env.warehouse, family=ST, event_type="dispatch")
    assert sorted(audit["record_id"]) == sorted(expected)  # one dispatch event per output, after two runs
    assert audit.set_index("record_id").loc[ids[1], "decision"] == "edit_and_approve"
    assert set(audit["actor"]) == {"dispatcher"}
    kpis = env.table(ST, "kpi_review")
    assert int(kpis["dispatched"].sum()) == len(expected) and int(kpis["decisions"].sum()) == 4
    assert kpis["time_to_resolution_p50_hours"].notna().all()


def test_concurrent_dispatchers_deliver_each_record_once(env, hooked_family):
    items = candidates(env, hooked_family)
    expected = set(items["record_id"])
    with WebhookServer(delay_s=0.05) as hook:  # a slow receiver: the two dispatchers overlap
        reports = []
        start = threading.Barrier(2, timeout=30)

        def run():
            dispatcher = env.resources["outbox"].dispatcher(env.warehouse, ST, webhook_url=hook.url)
            start.wait()
            reports.append(dispatcher.deliver(items, run_id=threading.current_thread().name))

        threads = [threading.Thread(target=run, name=f"dispatcher-{i}") for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    first, second = (set(r.delivered) for r in reports)
    assert first | second == expected and not first & second
    assert all(not r.failed for r in reports)
    assert sum(r.held_elsewhere + r.already_delivered for r in reports) == len(expected)
    assert hook.keys == {f"dispatch:{ST}:{rid}": 1 for rid in expected}
    assert len(outbox_files(env.outbox / ST)) == len(expected)
    ledger = read_ledger(env.warehouse.engine, family=ST)
    assert set(ledger["status"]) == {"delivered"} and set(ledger["attempts"]) == {1} and len(ledger) == len(expected)


CRASHING_DISPATCHER = textwrap.dedent("""
    import os, signal, sys
    from orchestration_assets.core.dispatch import dispatch_candidates
    from orchestration_assets.core.review import ReviewDecision, read_review_decisions, record_decision
    from orchestration_assets.family import Family
    from resources.outbox import Dispatcher
    from resources.warehouse import Warehouse

    url, folder, hook, family_dir = sys.argv[1:5]
    family = Family.load(family_dir)
    wh = Warehouse(url=url)
    items = dispatch_candidates(family, wh.read_table(family.table("routing_decisions")),
                                wh.read_table(family.table("enriched_records")), read_review_decisions(wh, family.name))
    dispatcher = Dispatcher(wh.engine, family.name, folder, hook)
    finish, sent = dispatcher._finish, []

    def finish_or_die(record_id, token, **values):
        # the worst moment: the output went out, the ledger does not know yet
        sent.append(record_id)
        if len(sent) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        finish(record_id, token, **values)

    dispatcher._finish = finish_or_die
    dispatcher.deliver(items, run_id="crashing", on_delivered=lambda d: print("delivered", d["record_id"], flush=True))
""")


def test_a_crashed_dispatchers_in_doubt_claim_is_recovered_after_its_lease_without_a_second_file(env, hooked_family):
    folder = env.outbox / ST
    expected = set(candidates(env, hooked_family)["record_id"])
    with WebhookServer() as hook:
        child = subprocess.run(
            [sys.executable, "-c", CRASHING_DISPATCHER, env.warehouse.url, str(folder), hook.url, str(DEFS / ST)],
            cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
        assert child.stdout.count("delivered") == 2
        in_doubt = read_ledger(env.warehouse.engine, status="claimed", family=ST)
        assert len(in_doubt) == 1  # sent, but the ledger never heard back
        rid = in_doubt["record_id"].iloc[0]
        written = folder / f"{rid}.json"
        first_write = written.stat().st_mtime_ns

        # within the lease the claim may still belong to a live dispatcher: left alone
        live = env.resources["outbox"].dispatcher(env.warehouse, ST, webhook_url=hook.url)
        waiting = live.deliver(candidates(env, hooked_family))
        assert waiting.held_elsewhere == 1 and waiting.recovered == [] and rid not in waiting.delivered
        # after the lease it is the crashed dispatcher's: taken over, the file not written again
        later = env.resources["outbox"].model_copy(update={"lease_seconds": 0.0})
        report = later.dispatcher(env.warehouse, ST, webhook_url=hook.url).deliver(candidates(env, hooked_family))
        assert report.recovered == [rid] and not report.failed
        assert written.stat().st_mtime_ns == first_write
        assert len(outbox_files(folder)) == len(expected)
        # plain HTTP cannot say whether the first call arrived: it comes again, with the same key
        assert set(hook.keys) == {f"dispatch:{ST}:{r}" for r in expected}
        assert hook.keys[f"dispatch:{ST}:{rid}"] == 2 and len(hook.posts) == len(expected) + 1
        first_body, replayed = [p["body"] for p in hook.posts if p["key"] == f"dispatch:{ST}:{rid}"]
        assert replayed == first_body  # a replay of what may have arrived, not a newly built payload
    ledger = read_ledger(env.warehouse.engine, family=ST)
    assert set(ledger["status"]) == {"delivered"} and ledger.set_index("record_id").loc[rid, "attempts"] == 2


def test_a_refused_delivery_is_retried_by_the_next_run_and_reported_meanwhile(env, monkeypatch):
    auto = auto_ids(env.routing)
    with WebhookServer(fail_with=400) as refusing:
        monkeypatch.setenv(HOOK_ENV, refusing.url)
        result = env.dispatch(ST)
    assert result.success  # a delivery failure is reported, not a crash of the run
    meta = metadata_of(result, ST, "dispatches")
    assert meta["failed"] == len(auto) and meta["delivered"] == 0 and meta["pending_retry"] == len(auto)
    check = check_result(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["failed"].value == len(auto)
    assert set(check.metadata["records"].value.split(", ")) == set(auto)
    errors = read_ledger(env.warehouse.engine, status="failed", family=ST)["error"]
    assert errors.str.contains("HTTP 400").all() and not errors.str.contains("s3cret-hook-token").any()

    with WebhookServer() as working:
        monkeypatch.setenv(HOOK_ENV, working.url)
        retried = env.dispatch(ST)
    assert metadata_of(retried, ST, "dispatches")["delivered"] == len(auto)
    assert check_result(retried).passed and len(working.posts) == len(auto)
    ledger = read_ledger(env.warehouse.engine, family=ST)
    assert set(ledger["status"]) == {"delivered"} and set(ledger["attempts"]) == {2}
    assert len(outbox_files(env.outbox / ST)) == len(auto)
    assert len(read_audit(env.warehouse, family=ST, event_type="dispatch")) == len(auto)


def test_two_families_with_the_same_record_ids_never_collide(families, tmp_path, model_dir, instance):
    env = Env([families[ST], families[ITSD]], tmp_path, model_dir, instance)
    routing = {name: seed_batch(env.warehouse, f, n=10, prefix="R") for name, f in env.families.items()}
    assert auto_ids(routing[ST]) == auto_ids(routing[ITSD])  # the very same ids in both families
    rid = pending_ids(routing[ITSD])[0]
    record_decision(env.warehouse, env.families[ITSD], ReviewDecision(record_id=rid, decision="approve", reviewer="ivan"))
    for name in (ST, ITSD):
        assert env.dispatch(name).success
    ledger = read_ledger(env.warehouse.engine)
    by_family = ledger.groupby("family")["record_id"].apply(set).to_dict()
    assert by_family == {ST: set(auto_ids(routing[ST])), ITSD: set(auto_ids(routing[ITSD])) | {rid}}
    st_files = {json.loads(p.read_text())["record_id"] for p in outbox_files(env.outbox / ST)}
    itsd = {json.loads(p.read_text())["record_id"]: json.loads(p.read_text()) for p in outbox_files(env.outbox / ITSD)}
    assert st_files == by_family[ST] and set(itsd) == by_family[ITSD]
    # it_service_desk sends an assignment (its answers), support_triage a reply text
    assert itsd[rid]["text"] is None and itsd[rid]["topic"] and itsd[rid]["family"] == ITSD
    assert itsd[rid]["source"] == "approve" and itsd[rid]["approved_by"] == "ivan"
    for name in (ST, ITSD):
        audit = read_audit(env.warehouse, family=name, event_type="dispatch")
        assert set(audit["record_id"]) == by_family[name] and audit["natural_key"].str.startswith(f"{name}:").all()
