"""The reviewer inbox in a real Chromium, next to a real `dagster dev` (webserver + daemon): a reviewer
signs in, opens a family's queue, approves one item, edits and approves another, relabels a third, sees
them leave the queue, sees the review-decision sensor's dispatch deliver the approved ones, and signs out.

Screenshots of the queue, an item and the decided state go to ``$SCREENSHOT_DIR`` (default: the test's
temp folder)."""

import json
import os
import threading
import time
from pathlib import Path

import pytest

from orchestration_assets.core.review import read_review_decisions
from orchestration_assets.loading import load_families
from orchestration_assets.service import accounts
from resources.outbox import read_ledger
from resources.warehouse import Warehouse
from tests.e2e.dagster_server import DagsterServer
from tests.governance_fixtures import pending_ids, seed_batch
from tests.service_fixtures import PASSWORD, ServiceServer
from tests.workflow import DEFS

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(300)]
FAMILY = "support_triage"
EDITED = "Hello, your workspace access is restored; please sign in again."


def wait_until(check, timeout: float, what: str, page=None, poll: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if page is not None:
            page.reload()
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_a_reviewer_signs_in_decides_three_items_sees_them_dispatched_and_signs_out(page, tmp_path):
    family = next(f for f in load_families(DEFS) if f.name == FAMILY)
    shots = Path(os.getenv("SCREENSHOT_DIR") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    dagster = DagsterServer(daemon=True, startup_timeout=150)
    data = dagster.data_dir
    data.mkdir(parents=True, exist_ok=True)
    # dagster dev takes a while to load: it starts while the reviewer works
    started: dict = {}

    def start_dagster():
        try:
            dagster.start()
            started["ok"] = True
        except BaseException as exc:  # reported below, in the test's thread
            started["error"] = exc

    boot = threading.Thread(target=start_dagster, daemon=True)
    boot.start()
    try:
        url = f"sqlite:///{data / 'warehouse.db'}"
        wh = Warehouse(url=url)
        routing = seed_batch(wh, family, n=10)
        # a reviewer's part of the queue: the human_review items (escalations are for leads)
        reviewable = routing.loc[routing["decision"] == "human_review", "record_id"].tolist()
        first, second, third, fourth = reviewable[:4]
        assert set(pending_ids(routing)) - set(reviewable)  # escalations exist, and she does not see them
        accounts.add_user(wh, "alice", PASSWORD, {FAMILY: "reviewer"})
        label = family.tasks[family.spec.review.relabel_task].labels[-1]

        with ServiceServer(url, data) as service:
            assert f"review service: {service.url}/" in service.log()  # `serve` prints its URL

            page.goto(f"{service.url}/families/{FAMILY}")
            assert "/login" in page.url  # not signed in: the sign-in page
            page.fill("input[name=name]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{service.url}/families/{FAMILY}")
            queue = page.locator("table.queue")
            assert page.locator("#pending-count").inner_text() == str(len(reviewable))
            assert all(queue.get_by_text(r, exact=True).count() == 1 for r in reviewable)
            assert all(queue.get_by_text(r, exact=True).count() == 0 for r in set(pending_ids(routing)) - set(reviewable))
            page.screenshot(path=str(shots / "queue.png"), full_page=True)

            page.click(f"a.item-link:text-is('{first}')")
            page.wait_for_selector("button.action-approve")
            assert family.record.text[-1] in page.content() and "LOW_CONFIDENCE" in page.inner_text("dd.reasons")
            page.screenshot(path=str(shots / "item.png"), full_page=True)
            page.click("button.action-approve")
            page.wait_for_selector(f"h1:has-text('{second}')")  # the next item opens
            assert f"Recorded approve on {first}" in page.inner_text("p.flash")

            page.fill("textarea[name=edited_text]", EDITED)
            page.click("button.action-edit_and_approve")
            page.wait_for_selector(f"h1:has-text('{third}')")

            page.select_option("select[name=corrected_label]", label)
            page.click("button.action-relabel")
            page.wait_for_selector(f"h1:has-text('{fourth}')")

            page.goto(f"{service.url}/families/{FAMILY}")
            assert page.locator("#pending-count").inner_text() == str(len(reviewable) - 3)
            for rid in (first, second, third):  # they left the queue; they are listed as decided
                assert queue.get_by_text(rid, exact=True).count() == 0
                assert page.locator(f"table.recent tr[data-record='{rid}']").count() == 1
            stored = read_review_decisions(wh, FAMILY).set_index("record_id")
            assert stored.loc[[first, second, third], "decision"].tolist() == ["approve", "edit_and_approve", "relabel"]
            assert set(stored["reviewer"]) == {"alice"} and set(stored["channel"]) == {"web"}

            # the daemon's review-decision sensor runs the dispatch job; the page shows the ledger's status
            boot.join(timeout=180)

            if "error" in started:
                raise started["error"]
            assert started.get("ok"), "dagster dev did not start"

            def delivered():
                cells = {rid: page.locator(f"table.recent tr[data-record='{rid}'] td.delivery").inner_text()
                         for rid in (first, second, third)}
                return cells if all(cells[r].startswith("delivered") for r in (first, second)) else None

            cells = wait_until(delivered, 180, "the dispatch of the approved items", page, poll=2)
            assert cells[third] == "nothing goes out"  # a relabel sends nothing
            page.goto(f"{service.url}/families/{FAMILY}/items/{second}")
            assert page.inner_text("dd.delivery").startswith("delivered")
            page.screenshot(path=str(shots / "decided.png"), full_page=True)

            outbox = data / "outbox" / FAMILY
            sent = {rid: json.loads((outbox / f"{rid}.json").read_text()) for rid in (first, second)}
            assert sent[second]["text"] == EDITED and sent[first]["approved_by"] == "alice"
            assert not (outbox / f"{third}.json").exists()
            ledger = read_ledger(wh.engine, family=FAMILY)
            assert ledger["record_id"].tolist().count(first) == 1 and ledger["record_id"].tolist().count(second) == 1

            cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "review_session")
            page.click("header button:has-text('Sign out')")
            page.wait_for_url(f"{service.url}/login")
            assert "You are signed out" in page.content()
            page.goto(f"{service.url}/families/{FAMILY}")
            assert "/login" in page.url  # the queue is no longer reachable
            log = service.log()
        for secret in (PASSWORD, cookie):
            assert secret not in log and secret not in dagster.log_tail(10_000)
    finally:
        dagster.stop()  # also ends a start still waiting for the code location
        boot.join(timeout=120)
        dagster.stop()  # a start that had not launched the process yet at the first stop
        dagster.cleanup()
