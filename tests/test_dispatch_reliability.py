"""Dispatch under crashes and re-runs: what the dispatches table and the audit log say stays true.

The dispatches table shows what went out, not what a later re-run would send; an unchanged decision
is audited once however often it is re-run; a claim a crashed dispatcher left is reported by the
delivery check until a later run delivers it (once); a crashed write leaves no temp file behind; a
crash in the middle of the delivery loop keeps the audit row of every delivery made before it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

import resources.outbox as outbox_module
from orchestration_assets.core.dispatch import dispatch_candidates
from orchestration_assets.core.review import read_review_decisions
from orchestration_assets.governance import governance_assets
from orchestration_assets.review import delivery_check, review_assets
from resources.audit import read_audit
from resources.outbox import Outbox, ledger_table, read_ledger
from resources.warehouse import Warehouse
from tests.governance_fixtures import PARTITION, WebhookServer, auto_ids, failure_message, seed_batch

pytestmark = pytest.mark.filterwarnings("ignore")

ST = "support_triage"
NEW_DRAFT = "Hello, this is a rewritten reply that a later re-run produced; it was never sent."


class Crash(BaseException):
    """A dispatcher process dying mid-delivery (nothing in the loop may catch it)."""


@pytest.fixture(scope="module")
def instance():
    """One in-memory instance for the module (far cheaper than one per test); the crash test's failed run is in it."""
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def family(families):
    return families[ST]


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    return Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")


@pytest.fixture
def outbox(tmp_path) -> Outbox:
    return Outbox(folder=str(tmp_path / "outbox"))


@pytest.fixture
def seeded(wh, family) -> pd.DataFrame:
    return seed_batch(wh, family, n=10)


def candidates(wh, family):
    return dispatch_candidates(family, wh.read_table(family.table("routing_decisions")),
                               wh.read_table(family.table("enriched_records")), read_review_decisions(wh, family.name))


def dispatch(family, wh, outbox, instance) -> dg.MaterializeResult:
    """The family's dispatches asset, run as its job would run it (the body, without a run around it)."""
    asset = review_assets(family)[-1]
    return asset(dg.build_asset_context(instance=instance, resources={"warehouse": wh, "outbox": outbox}))


def delivery_check_result(family, wh, outbox, instance) -> dg.AssetCheckResult:
    """The delivery check on its own, as a scheduled check run evaluates it."""
    check = delivery_check(family)
    return check(dg.build_asset_check_context(instance=instance, resources={"warehouse": wh, "outbox": outbox}))


def metadata(result: dg.MaterializeResult) -> dict:
    return {k: getattr(v, "value", v) for k, v in result.metadata.items()}


def test_a_rerun_with_changed_drafts_shows_what_was_delivered_and_counts_the_change(
        wh, family, outbox, seeded, instance):
    auto = auto_ids(seeded)
    assert metadata(dispatch(family, wh, outbox, instance))["delivered"] == len(auto)
    sent = wh.read_table(family.table("dispatches")).set_index("record_id")["text"].to_dict()

    enriched = wh.read_table(family.table("enriched_records")).drop(columns=["_partition"], errors="ignore")
    enriched.loc[enriched["record_id"].isin(auto[:2]), "reply"] = NEW_DRAFT  # a re-run wrote new drafts
    wh.replace_partition(family.table("enriched_records"), enriched, PARTITION)
    again = dispatch(family, wh, outbox, instance)
    table = wh.read_table(family.table("dispatches")).set_index("record_id")
    assert table["text"].to_dict() == sent and NEW_DRAFT not in set(table["text"])
    for rid in auto:  # the table says what the outbox holds
        assert json.loads((Path(outbox.folder) / ST / f"{rid}.json").read_text())["text"] == table.loc[rid, "text"]
    meta = metadata(again)
    assert meta["delivered"] == 0 and meta["changed_after_delivery"] == 2
    assert set(meta["changed_after_delivery_records"].split(", ")) == set(auto[:2])


def test_a_rerun_with_unchanged_decisions_adds_no_audit_rows(wh, family, seeded, instance):
    audit_asset = governance_assets(family)[1]

    reviewed = seeded.loc[seeded["decision"] == "human_review", "record_id"].iloc[0]
    old = seeded.set_index("record_id").loc[reviewed, "model_version"]

    def rerun(model_version: str = old, extra_reason: str | None = None) -> int:
        """The partition routed again by another run; ``reviewed`` with this model version and reason."""
        routing = wh.read_table(family.table("routing_decisions")).drop(columns=["_partition"], errors="ignore")
        routing["run_id"], routing["decided_at"] = f"rerun-{time.monotonic_ns()}", pd.Timestamp.now(tz="UTC")
        mine = routing["record_id"] == reviewed
        routing.loc[mine, "model_version"] = model_version
        routing["reasons"] = [list(rs) + [extra_reason] if is_mine and extra_reason else list(rs)
                              for rs, is_mine in zip(routing["reasons"], mine)]
        wh.replace_partition(family.table("routing_decisions"), routing, PARTITION)
        result = audit_asset(dg.build_asset_context(partition_key=PARTITION, resources={"warehouse": wh},
                                                    instance=instance))
        return metadata(result)["rows_inserted"]

    assert rerun() == len(seeded)
    assert rerun() == 0
    # the same decision by the same model, prompt and policy, with one more reason code: nothing new to audit
    assert rerun(extra_reason="VIP_ACCOUNT") == 0
    # a new model version is a new decision input: audited, and so is the return to the old one
    assert rerun(model_version="category@challenger") == 1
    assert rerun(model_version=old) == 1
    assert rerun() == 0
    audit = read_audit(wh, family=ST, event_type="routing_decision")
    assert len(audit) == len(seeded) + 2 and audit["natural_key"].is_unique
    assert audit[audit["record_id"] == reviewed]["model_version"].tolist() == [old, "category@challenger", old]


def crash_on(dispatcher, n: int, error: BaseException):
    """The dispatcher's transport raises ``error`` on its ``n``-th send (after n - 1 deliveries)."""
    send, calls = dispatcher.send, []

    def failing(payload, **kw):
        calls.append(payload["record_id"])
        if len(calls) == n:
            raise error
        return send(payload, **kw)

    dispatcher.send = failing
    return calls


def test_a_stale_claim_fails_the_delivery_check_until_the_next_run_delivers_it_once(
        wh, family, outbox, seeded, instance, monkeypatch):
    items = candidates(wh, family)
    with WebhookServer() as hook:
        monkeypatch.setenv("SUPPORT_TRIAGE_WEBHOOK_URL", hook.url)
        crashed = outbox.dispatcher(wh, ST, webhook_url=hook.url)
        calls = crash_on(crashed, 2, Crash())
        with pytest.raises(Crash):  # the process died with its second claim open
            crashed.deliver(items, run_id="a-killed-process")
        rid = calls[1]
        with wh.engine.begin() as conn:  # ... an hour ago: its lease has long expired
            conn.execute(sa.update(ledger_table).where(ledger_table.c.record_id == rid)
                         .values(claimed_at=(pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=1)).isoformat()))

        check = delivery_check_result(family, wh, outbox, instance)
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert check.metadata["in_doubt"].value == 1 and check.metadata["in_doubt_records"].value == rid

        meta = metadata(dispatch(family, wh, outbox, instance))
        assert meta["recovered_in_doubt"] == 1 and meta["in_doubt"] == 0
        assert delivery_check_result(family, wh, outbox, instance).passed
        assert metadata(dispatch(family, wh, outbox, instance))["delivered"] == 0  # nothing is sent again
    assert hook.keys == {f"dispatch:{ST}:{r}": 1 for r in items["record_id"]}
    assert len(list((Path(outbox.folder) / ST).glob("*.json"))) == len(items)
    ledger = read_ledger(wh.engine, family=ST).set_index("record_id")
    assert set(ledger["status"]) == {"delivered"} and ledger.loc[rid, "attempts"] == 2


def test_a_leftover_temp_file_is_removed_by_the_next_delivery_and_a_failed_write_leaves_none(
        wh, family, outbox, seeded, monkeypatch):
    folder = Path(outbox.folder) / ST
    folder.mkdir(parents=True)
    leftover = folder / ".batch-review-R0000.json.4242.0badf00d.tmp"  # a write killed before its rename
    leftover.touch()
    os.utime(leftover, (time.time() - 3600,) * 2)
    live = folder / ".batch-review-R0003.json.4343.0c0ffee0.tmp"  # another dispatcher writing right now
    live.touch()
    items = candidates(wh, family)

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    dispatcher = outbox.dispatcher(wh, ST)
    report = dispatcher.deliver(items)
    assert not leftover.exists() and live.exists()
    assert len(report.failed) == len(items) and all("No space left" in e for e in report.failed.values())
    assert sorted(p.name for p in folder.iterdir()) == [live.name]  # the failed writes left nothing
    assert report.temp_files_removed == 1

    monkeypatch.undo()
    retried = dispatcher.deliver(items)
    assert sorted(retried.delivered) == sorted(items["record_id"]) and live.exists()


def test_a_crash_mid_loop_keeps_the_audit_row_of_every_delivery_made_before_it(
        wh, family, outbox, seeded, instance, monkeypatch):
    auto = candidates(wh, family)["record_id"].tolist()
    post, posted = outbox_module.post_json, []

    def dropped_on_third(url, payload, **kw):
        posted.append(payload["record_id"])
        if len(posted) == 3:
            raise RuntimeError(f"connection to {url} reset by the transport")
        return post(url, payload, **kw)

    with WebhookServer() as hook:
        monkeypatch.setenv("SUPPORT_TRIAGE_WEBHOOK_URL", hook.url)
        monkeypatch.setattr(outbox_module, "post_json", dropped_on_third)
        asset = review_assets(family)[-1]
        crashed = dg.materialize([asset], resources={"warehouse": wh, "outbox": outbox}, instance=instance,
                                 raise_on_error=False)
        assert not crashed.success
        audit = read_audit(wh, family=ST, event_type="dispatch")
        assert sorted(audit["record_id"]) == sorted(posted[:2])  # the two delivered before the crash
        message = failure_message(crashed)
        assert f"{posted[2]!r} is in doubt" in message and "s3cret-hook-token" not in message

        # the run that held the claim has ended: it is in doubt now, and the next run need not wait out the lease
        check = delivery_check_result(family, wh, outbox, instance)
        assert not check.passed and check.metadata["in_doubt_records"].value == posted[2]
        monkeypatch.setattr(outbox_module, "post_json", post)
        assert metadata(dispatch(family, wh, outbox, instance))["recovered_in_doubt"] == 1
        assert delivery_check_result(family, wh, outbox, instance).passed
    assert hook.keys == {f"dispatch:{ST}:{r}": 1 for r in auto}
    assert sorted(read_audit(wh, family=ST, event_type="dispatch")["record_id"]) == sorted(auto)
