"""Dispatch: auto_send and approved replies reach the outbox folder and a real webhook exactly once."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from orchestration_assets.core.review import dispatch_candidates, read_review_decisions
from orchestration_assets.review import dispatch_job, no_failed_deliveries, review_assets
from resources.audit import read_audit
from resources.outbox import Dispatcher, read_ledger
from tests.test_review import decide, pending_ids, review_resources, seed_triage_tables

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def instance():
    """One Dagster instance per module (creating one takes seconds); runs do not interfere."""
    with dg.instance_for_test() as inst:
        yield inst

REPO = Path(__file__).resolve().parent.parent


class WebhookServer:
    """A real HTTP receiver on 127.0.0.1 that records every POST (and can refuse with a status)."""

    def __init__(self, fail_with: int | None = None) -> None:
        self.posts: list[dict] = []
        self.fail_with = fail_with
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.fail_with:
                    self.send_response(server.fail_with)
                    self.end_headers()
                    return
                server.posts.append({"key": self.headers.get("Idempotency-Key"), "body": json.loads(body)})
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/replies?token=s3cret"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def keys(self) -> Counter:
        return Counter(p["key"] for p in self.posts)


def dispatch_defs(res: dict) -> dg.Definitions:
    return dg.Definitions(assets=review_assets, asset_checks=[no_failed_deliveries], jobs=[dispatch_job], resources=res)


def outbox_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json"))


def test_dispatch_sends_auto_send_and_approved_replies_once_across_reruns(data_dir, instance):
    with WebhookServer() as hook:
        res = review_resources(data_dir, webhook_url=hook.url)
        routing = seed_triage_tables(res["warehouse"], n=10)
        ids = pending_ids(routing)
        assert decide(res, instance, ticket_id=ids[0], decision="approve", reviewer="alice").success
        edited = "Hello, we fixed the sign-in problem on our side; please log in again now."
        assert decide(res, instance, ticket_id=ids[1], decision="edit_and_approve", reviewer="alice",
                      edited_reply=edited).success
        assert decide(res, instance, ticket_id=ids[2], decision="reject", reviewer="bob").success
        assert decide(res, instance, ticket_id=ids[3], decision="relabel", reviewer="bob", corrected_label="billing").success
        auto = routing.loc[routing["decision"] == "auto_send", "ticket_id"].tolist()
        expected = set(auto) | {ids[0], ids[1]}

        job = dispatch_defs(res).resolve_job_def("dispatch_job")
        for attempt in range(3):
            result = job.execute_in_process(instance=instance)
            assert result.success
            meta = result.asset_materializations_for_node("dispatched_responses")[0].metadata
            assert meta["delivered"].value == (len(expected) if attempt == 0 else 0)
            assert meta["already_delivered"].value == (0 if attempt == 0 else len(expected))

        files = outbox_files(data_dir / "outbox")
        assert {json.loads(p.read_text())["ticket_id"] for p in files} == expected and len(files) == len(expected)
        assert set(hook.keys) == {f"dispatch:{t}" for t in expected} and set(hook.keys.values()) == {1}
        sent = {p["body"]["ticket_id"]: p["body"] for p in hook.posts}
        assert sent[ids[1]]["reply"] == edited and sent[ids[1]]["source"] == "edit_and_approve"
        assert sent[ids[0]]["approved_by"] == "alice" and sent[auto[0]]["source"] == "auto_send"
        table = res["warehouse"].read_table("dispatched_responses")
        assert set(table["ticket_id"]) == expected and table["time_to_resolution_hours"].gt(0).all()
        assert not any(p.suffix == ".tmp" for p in (data_dir / "outbox").iterdir())
        audit = read_audit(res["warehouse"], event_type="dispatch")
        assert sorted(audit["ticket_id"]) == sorted(expected)  # one dispatch event per reply, after 3 runs
        assert audit.set_index("ticket_id").loc[ids[0], "decision"] == "approve"
        kpis = res["warehouse"].read_table("kpi_review")
        assert int(kpis["dispatched"].sum()) == len(expected) and int(kpis["decisions"].sum()) == 4
        assert kpis["time_to_resolution_p50_hours"].notna().all() and (kpis["items_per_reviewer_hour"] > 0).any()


CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from orchestration_assets.core.review import dispatch_candidates, read_review_decisions
    from resources.outbox import Dispatcher
    from resources.warehouse import Warehouse

    url, folder, hook, mode, crash_at = sys.argv[1:6]
    wh = Warehouse(url=url)
    items = dispatch_candidates(wh.read_table("routing_decisions"), wh.read_table("enriched_tickets"),
                                read_review_decisions(wh))
    dispatcher = Dispatcher(wh.engine, folder, hook, lease_seconds=0)
    if mode == "die-after-send":
        # the worst moment: the reply went out, the ledger does not know yet
        finish, sent = dispatcher._finish, []
        def finish_or_die(ticket_id, token, **values):
            sent.append(ticket_id)
            if len(sent) == int(crash_at):
                os.kill(os.getpid(), signal.SIGKILL)
            finish(ticket_id, token, **values)
        dispatcher._finish = finish_or_die

    def progress(ticket_id):
        print("delivered", ticket_id, flush=True)
        time.sleep(0.3)  # a slow channel: the parent kills us in the middle of the batch

    dispatcher.deliver(items, run_id="child", on_delivered=progress)
    print("done", flush=True)
    """
)


def run_child(res: dict, folder: Path, hook_url: str, mode: str, crash_at: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, res["warehouse"].url, str(folder), hook_url, mode, str(crash_at)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.fixture
def many_auto_sends(data_dir):
    res = review_resources(data_dir)
    routing = seed_triage_tables(res["warehouse"], n=30)
    items = dispatch_candidates(routing, res["warehouse"].read_table("enriched_tickets"),
                                read_review_decisions(res["warehouse"]))
    return res, set(items["ticket_id"])


def test_killed_mid_batch_then_rerun_delivers_each_ticket_exactly_once(many_auto_sends, data_dir):
    res, expected = many_auto_sends
    folder = data_dir / "outbox"
    with WebhookServer() as hook:
        child = run_child(res, folder, hook.url, "slow", 0)
        seen = []
        for line in child.stdout:
            seen.append(line.split()[1])
            if len(seen) == 4:
                child.send_signal(signal.SIGKILL)  # really kill it, mid-batch
                break
        assert child.wait(timeout=30) == -signal.SIGKILL
        assert 4 <= len(outbox_files(folder)) < len(expected)

        report = Dispatcher(res["warehouse"].engine, folder, hook.url, lease_seconds=0).deliver(
            dispatch_candidates(res["warehouse"].read_table("routing_decisions"),
                                res["warehouse"].read_table("enriched_tickets"), read_review_decisions(res["warehouse"])))
        assert report.already_delivered >= 4 and not report.failed
        files = outbox_files(folder)
        assert len(files) == len(expected) == 12
        assert {json.loads(p.read_text())["ticket_id"] for p in files} == expected
        assert set(hook.keys) == {f"dispatch:{t}" for t in expected}
        # the kill landed while the child slept after a committed delivery: nothing was repeated
        assert len(hook.posts) == len(expected)
    ledger = read_ledger(res["warehouse"].engine)
    assert set(ledger["status"]) == {"delivered"} and len(ledger) == len(expected)


def test_crash_between_send_and_ledger_commit_is_recovered_without_a_second_file(many_auto_sends, data_dir):
    res, expected = many_auto_sends
    folder = data_dir / "outbox"
    with WebhookServer() as hook:
        child = run_child(res, folder, hook.url, "die-after-send", 3)
        out, _ = child.communicate(timeout=60)
        assert child.returncode == -signal.SIGKILL and out.count("delivered") == 2
        in_doubt = read_ledger(res["warehouse"].engine, status="claimed")
        assert len(in_doubt) == 1  # sent, but the ledger never heard back
        tid = in_doubt["ticket_id"].iloc[0]
        in_doubt_file = folder / f"{tid}.json"
        first_write = in_doubt_file.stat().st_mtime_ns

        report = Dispatcher(res["warehouse"].engine, folder, hook.url, lease_seconds=0).deliver(
            dispatch_candidates(res["warehouse"].read_table("routing_decisions"),
                                res["warehouse"].read_table("enriched_tickets"), read_review_decisions(res["warehouse"])))
        assert report.recovered == [tid] and report.already_delivered == 2
        assert in_doubt_file.stat().st_mtime_ns == first_write  # the folder delivery was not repeated
        assert len(outbox_files(folder)) == len(expected)
        # the webhook cannot say whether the first call arrived: it gets it again with the same key
        assert set(hook.keys) == {f"dispatch:{t}" for t in expected}
        assert hook.keys[f"dispatch:{tid}"] == 2 and len(hook.posts) == len(expected) + 1
    assert set(read_ledger(res["warehouse"].engine)["status"]) == {"delivered"}


def test_a_refusing_webhook_leaves_failures_for_the_next_run(data_dir, instance):
    with WebhookServer(fail_with=400) as down:
        res = review_resources(data_dir, webhook_url=down.url)
        seed_triage_tables(res["warehouse"], n=5)
        job = dispatch_defs(res).resolve_job_def("dispatch_job")
        result = job.execute_in_process(instance=instance)
        meta = result.asset_materializations_for_node("dispatched_responses")[0].metadata
        assert meta["failed"].value == 2 and meta["delivered"].value == 0
        check = [e for e in result.get_asset_check_evaluations() if e.check_name == "no_failed_deliveries"][0]
        assert not check.passed and check.metadata["failed"].value == 2
        errors = read_ledger(res["warehouse"].engine, status="failed")["error"]
        assert errors.str.contains("HTTP 400").all() and not errors.str.contains("s3cret").any()
    with WebhookServer() as up:
        res = review_resources(data_dir, webhook_url=up.url)
        result = dispatch_defs(res).resolve_job_def("dispatch_job").execute_in_process(instance=instance)
        assert result.asset_materializations_for_node("dispatched_responses")[0].metadata["delivered"].value == 2
        assert len(up.posts) == 2
        ledger = read_ledger(res["warehouse"].engine)
        assert set(ledger["status"]) == {"delivered"} and set(ledger["attempts"]) == {2}
