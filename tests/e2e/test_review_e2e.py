"""End to end on a real `dagster dev` (webserver + daemon): a reviewer's decision launched through
GraphQL is recorded, the review-decision sensor dispatches it to the outbox folder and a webhook,
and a refused decision fails its run and raises exactly one alert."""

import json
import time

import pytest

from resources.audit import read_audit
from resources.warehouse import Warehouse
from tests.e2e.dagster_server import DagsterServer
from tests.test_dispatch import WebhookServer
from tests.test_review import pending_ids, seed_triage_tables

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(420)]

RUNS_QUERY = """
query($job: String!) {
  runsOrError(filter: {pipelineName: $job}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""


def runs_of(server: DagsterServer, job: str) -> list[dict]:
    return server.graphql(RUNS_QUERY, {"job": job})["runsOrError"]["results"]


def wait_for(predicate, timeout: float, what: str, server: DagsterServer):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}; server log:\n{server.log_tail()}")


def decision_config(**config) -> dict:
    return {"ops": {"record_decision_op": {"config": {"note": "", **config}}}}


def test_launchpad_decision_is_dispatched_once_and_a_refused_one_alerts():
    with WebhookServer() as hook:
        server = DagsterServer(daemon=True, env={"OUTBOX_WEBHOOK_URL": hook.url})
        server.data_dir.mkdir(parents=True, exist_ok=True)
        wh = Warehouse(url=f"sqlite:///{server.data_dir / 'warehouse.db'}")
        routing = seed_triage_tables(wh, n=10)
        tid = pending_ids(routing)[0]
        auto = set(routing.loc[routing["decision"] == "auto_send", "ticket_id"])
        outbox = server.data_dir / "outbox"
        with server:
            run_id = server.launch_run(
                "record_review_decision",
                run_config=decision_config(ticket_id=tid, decision="edit_and_approve", reviewer="alice",
                                           edited_reply="Hello, your workspace access is restored; please sign in again."),
            )
            assert server.wait_for_run(run_id) == "SUCCESS", server.run_errors(run_id)

            # the daemon's review_decision_sensor sees the new decision and launches dispatch_job
            dispatch = wait_for(lambda: [r for r in runs_of(server, "dispatch_job") if r["status"] == "SUCCESS"],
                                180, "the sensor's dispatch run", server)
            assert len(dispatch) == 1
            sent = json.loads((outbox / f"{tid}.json").read_text())
            assert sent["reply"].startswith("Hello, your workspace access") and sent["approved_by"] == "alice"
            assert {json.loads(p.read_text())["ticket_id"] for p in outbox.glob("*.json")} == auto | {tid}
            assert hook.keys[f"dispatch:{tid}"] == 1 and len(hook.posts) == len(auto) + 1

            # a second decision on the same ticket is refused: the run fails and one alert goes out
            bad = server.launch_run("record_review_decision",
                                    run_config=decision_config(ticket_id=tid, decision="reject", reviewer="bob"))
            assert server.wait_for_run(bad) == "FAILURE"
            alert_file = wait_for(lambda: next((outbox / "alerts").glob("*.json"), None) if (outbox / "alerts").exists()
                                  else None, 120, "the run-failure alert", server)
            alert = json.loads(alert_file.read_text())
            assert alert["run_id"] == bad and alert["failed_step"] == "record_decision_op"
            assert "already decided" in alert["error"]
            time.sleep(3)
            assert len(list((outbox / "alerts").glob("*.json"))) == 1
            assert len(runs_of(server, "dispatch_job")) == 1  # no second dispatch without a new decision

        audit = read_audit(wh)
        review = audit[audit["event_type"] == "review_decision"]
        assert review["ticket_id"].tolist() == [tid] and review["actor"].tolist() == ["alice"]
        assert review["run_id"].tolist() == [run_id]
        assert audit.loc[audit["event_type"] == "alert", "run_id"].tolist() == [bad]
