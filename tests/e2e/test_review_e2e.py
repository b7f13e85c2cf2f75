"""End to end on a real `dagster dev` (webserver + daemon): a reviewer's decision launched through GraphQL
is recorded, the family's review-decision sensor dispatches it to the outbox folder and the family's
webhook, and a refused decision fails its run and raises exactly one alert."""

import json
import time

import pytest

from orchestration_assets.loading import load_families
from resources.audit import read_audit
from resources.warehouse import Warehouse
from tests.e2e.dagster_server import DagsterServer
from tests.e2e.waiting import runs_of, wait_for
from tests.governance_fixtures import WebhookServer, auto_ids, pending_ids, seed_batch
from tests.workflow import DEFS

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(480)]
FAMILY = "support_triage"


def decision(**config) -> dict:
    return {"ops": {f"{FAMILY}__review_decisions": {"config": {"note": "", **config}}}}


def test_a_launchpad_decision_is_dispatched_once_and_a_refused_one_alerts():
    family = next(f for f in load_families(DEFS) if f.name == FAMILY)
    with WebhookServer() as hook:
        server = DagsterServer(daemon=True, env={"SUPPORT_TRIAGE_WEBHOOK_URL": hook.url})
        server.data_dir.mkdir(parents=True, exist_ok=True)
        wh = Warehouse(url=f"sqlite:///{server.data_dir / 'warehouse.db'}")
        routing = seed_batch(wh, family, n=10)
        rid, auto = pending_ids(routing)[0], set(auto_ids(routing))
        outbox = server.data_dir / "outbox"
        record_job, dispatch_job = family.job_name("record_review_decision"), family.job_name("dispatch")
        with server:
            run_id = server.launch_run(record_job, run_config=decision(
                record_id=rid, decision="edit_and_approve", reviewer="alice",
                edited_text="Hello, your workspace access is restored; please sign in again."))
            assert server.wait_for_run(run_id) == "SUCCESS", server.run_errors(run_id)

            # the daemon's review-decision sensor sees the new decision and launches the dispatch job
            dispatched = wait_for(lambda: [r for r in runs_of(server, dispatch_job) if r["status"] == "SUCCESS"],
                                  240, "the sensor's dispatch run", server)
            assert len(dispatched) == 1
            sent = json.loads((outbox / FAMILY / f"{rid}.json").read_text())
            assert sent["text"].startswith("Hello, your workspace access") and sent["approved_by"] == "alice"
            assert {json.loads(p.read_text())["record_id"] for p in (outbox / FAMILY).glob("*.json")} == auto | {rid}
            assert hook.keys[f"dispatch:{FAMILY}:{rid}"] == 1 and len(hook.posts) == len(auto) + 1

            # a second decision on the same record is refused: the run fails and one alert goes out
            bad = server.launch_run(record_job, run_config=decision(record_id=rid, decision="reject", reviewer="bob"))
            assert server.wait_for_run(bad) == "FAILURE"
            alerts = outbox / "alerts"
            alert_file = wait_for(lambda: next(alerts.glob("*.json"), None) if alerts.exists() else None,
                                  120, "the run-failure alert", server)
            alert = json.loads(alert_file.read_text())
            assert alert["run_id"] == bad and alert["family"] == FAMILY
            assert alert["failed_step"] == f"{FAMILY}__review_decisions" and "already decided" in alert["error"]
            time.sleep(3)
            assert len(list(alerts.glob("*.json"))) == 1
            assert len(runs_of(server, dispatch_job)) == 1  # no second dispatch without a new decision

        audit = read_audit(wh, family=FAMILY)
        review = audit[audit["event_type"] == "review_decision"]
        assert review["record_id"].tolist() == [rid] and review["actor"].tolist() == ["alice"]
        assert review["run_id"].tolist() == [run_id]
        alerts_audited = read_audit(wh)
        assert alerts_audited.loc[alerts_audited["event_type"] == "alert", "run_id"].tolist() == [bad]
