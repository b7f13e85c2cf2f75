"""The model router against a real OpenAI-compatible HTTP server, with a fake local provider as fallback."""

import asyncio
import json
import threading
import time

import pytest
import sqlalchemy as sa

from resources.providers.base import Document, Item
from resources.providers.definition import TaskDefinition
from resources.providers.tasks import ClassifyTask
from resources.router import ledger_spend
from resources.router.routes import TaskRoute
from tests.openai_answers import label_for
from tests.openai_server import OpenAICompatServer
from tests.router_fixtures import (
    SECRET,
    FakeLocal,
    catalog,
    endpoint,
    make_items,
    routed,
    router_for,
    session_for,
)
from tests.router_fixtures import family, local, server, warehouse  # noqa: F401 - pytest fixtures


# ---- answers, cost, redaction, schema ----------------------------------------------------------


def test_llm_answers_are_checkable_costed_and_redacted(family, local, server, tmp_path, warehouse):
    router = router_for(tmp_path, catalog(server.url))
    session = session_for(router, local, routed("category", "summary"), warehouse=warehouse, run_id="r1", partition="p1")
    task, items = family.tasks["category"], make_items(9)
    batch = session.run(task, items)

    assert [r.record_id for r in batch.results] == [i.id for i in items]
    for item, r in zip(items, batch.results):
        assert r.path == "llm" and r.provider == "testllm" and r.model_id == "test-small" and r.ok
        assert r.output["label"] == label_for(item.text, task.labels) and r.confidence == 0.93
        assert r.cost_usd == pytest.approx((r.tokens_in * 1.0 + r.tokens_out * 4.0) / 1e6) and r.tokens_in > 0
        assert r.redactions >= 2  # the email and the phone never left the process
    assert {r.output["label"] for r in batch.results} >= {"refund", "billing", "privacy", "security", "shipping"}
    assert server.call_count == 9
    for req in server.chat_requests:
        sent = json.dumps(req.body)
        assert "@example.com" not in sent and "555 01" not in sent
        assert req.body["model"] == "test-small" and req.body["max_tokens"] == 100
        assert req.body["response_format"] == {
            "type": "json_schema", "json_schema": {"name": "category", "schema": task.json_schema(), "strict": False}}
        assert req.headers["authorization"] == f"Bearer {SECRET}"
    assert batch.stats.calls == 9 and batch.stats.paths == {"llm": 9}
    assert batch.stats.cost_usd == pytest.approx(sum(r.cost_usd for r in batch.results))
    md = session.stats().as_metadata()
    assert md["llm.calls"] == 9 and md["llm.cost_usd"] > 0 and md["llm.redactions"] >= 18 and md["llm.paths.llm"] == 9
    spend = ledger_spend(warehouse, family="support_triage", run_id="r1", partition="p1")
    assert spend.calls == 9 and spend.cost_usd == pytest.approx(batch.stats.cost_usd)

    summaries = session.run(family.tasks["summary"], items[:3]).results
    assert [s.output["summary"] for s in summaries] == [f"[{i.id}] {i.fields['subject']}" for i in items[:3]]


def test_every_task_type_gets_its_own_schema_and_a_valid_answer(family, local, server, tmp_path):
    router = router_for(tmp_path, catalog(server.url))
    session = session_for(router, local, routed(*family.tasks))
    for name, task in family.tasks.items():
        server.reset()
        batch = session.run(task, make_items(2))
        assert batch.stats.paths == {"llm": 2}, name
        (req, _) = server.chat_requests
        assert req.task == name and req.response_format["json_schema"]["schema"] == task.json_schema()
        for r in batch.results:  # what the router returns is a valid answer of the task's type
            task.output_model.model_validate({**r.output, **({"confidence": r.confidence} if task.has_confidence else {})})
    assert session.stats().calls == 2 * len(family.tasks)


def test_inline_task_definition_of_another_family(local, server, tmp_path, warehouse):
    topic = TaskDefinition(family="f", name="topic", spec=ClassifyTask(type="classify", labels=["spam", "ham"]),
                           labels=("spam", "ham"), text_fields=("body",))
    router = router_for(tmp_path, catalog(server.url))
    items = [Item(id="x1", text="", fields={"body": "this is ham"}), Item(id="x2", text="", fields={"body": "neither"})]
    batch = session_for(router, local, routed("topic"), family="f", warehouse=warehouse, run_id="rf").run(topic, items)
    assert [r.output["label"] for r in batch.results] == ["ham", "spam"]
    sent = sorted((req.record_id, req.user_payload["text"]) for req in server.chat_requests)
    assert sent == [("x1", {"body": "this is ham"}), ("x2", {"body": "neither"})]
    assert ledger_spend(warehouse, family="f").calls == 2 and ledger_spend(warehouse, family="support_triage").calls == 0


# ---- fallback, retries, cooldown ----------------------------------------------------------------


@pytest.mark.parametrize(
    "fault, reason",
    [("server_error", "server_error"), ("unavailable", "server_error"), ("rate_limit", "rate_limited"),
     ("hang", "timeout"), ("malformed_json", "malformed_response"), ("wrong_schema", "invalid_output"),
     ("auth", "auth")],
)
def test_every_fault_kind_ends_in_a_local_answer_with_its_reason(family, local, server, tmp_path, fault, reason):
    server.settings.hang_s = 5
    router = router_for(tmp_path, catalog(server.url, endpoint_overrides={"timeout_s": 0.3, "max_attempts": 2}))
    server.fail(fault)  # every request
    session = session_for(router, local, routed("category", "refund"))
    for task in (family.tasks["category"], family.tasks["refund"]):
        server.reset()
        batch = session.run(task, make_items(2))
        for r in batch.results:
            assert r.ok and r.provider == "fake-local" and r.path == f"fallback:{reason}"
            assert r.attempts == (1 if reason == "auth" else 2) + 1  # remote attempts + the local answer
        assert server.call_count == 2 * (1 if reason == "auth" else 2)  # auth is not retried
        assert batch.stats.fallbacks_by_reason == {reason: 2}
    assert session.stats().as_metadata()[f"llm.fallbacks.{reason}"] == 4


def test_a_draft_citing_a_document_it_was_not_given_is_invalid_output(family, local, tmp_path):
    def cite_unknown(rec, schema):
        return {"text": f"Reply about {rec.record_id}", "cited_ids": ["DOC-404"]}

    with OpenAICompatServer(answers=cite_unknown) as srv:
        router = router_for(tmp_path, catalog(srv.url, endpoint_overrides={"max_attempts": 1}))
        items = [Item(id=i.id, text=i.text, fields=i.fields, documents=[Document("KB-1", "t", "b")]) for i in make_items(2)]
        batch = session_for(router, local, routed("reply")).run(family.tasks["reply"], items)
    assert {r.path for r in batch.results} == {"fallback:invalid_output"} and srv.call_count == 2
    assert all(r.output["text"].startswith("local draft") for r in batch.results)


def test_retry_recovers_and_waits_for_retry_after(family, local, server, tmp_path):
    server.settings.retry_after_s = 0.4
    router = router_for(tmp_path, catalog(server.url))
    server.fail("rate_limit", times=1)
    batch = session_for(router, local, routed("summary")).run(family.tasks["summary"], make_items(1))
    r = batch.results[0]
    assert r.path == "llm" and r.attempts == 2 and r.output["summary"].startswith("[T-0000]")
    first, second = server.chat_requests
    assert second.at - first.at >= 0.38  # honored Retry-After, not the 10 ms backoff
    assert batch.stats.retries == 1 and batch.stats.calls == 2


def test_a_retry_after_beyond_the_cap_is_not_waited_for(family, local, server, tmp_path):
    server.settings.retry_after_s = 30
    router = router_for(tmp_path, catalog(server.url, endpoint_overrides={"max_retry_after_s": 1}))
    server.fail("rate_limit")
    start = time.perf_counter()
    batch = session_for(router, local, routed("summary")).run(family.tasks["summary"], make_items(2))
    assert time.perf_counter() - start < 2 and batch.stats.paths == {"fallback:rate_limited": 2}
    assert server.call_count == 2


def test_cooldown_stops_calls_then_releases(family, local, server, tmp_path):
    overrides = {"max_attempts": 1, "max_concurrency": 1, "cooldown": {"after_failures": 3, "seconds": 0.5}}
    router = router_for(tmp_path, catalog(server.url, endpoint_overrides=overrides))
    session, task = session_for(router, local, routed("category")), family.tasks["category"]
    server.fail("server_error")
    batch = session.run(task, make_items(8))
    assert server.call_count == 3  # the 4th..8th item were never sent
    paths = [r.path for r in batch.results]
    assert paths.count("fallback:server_error") == 3 and paths.count("fallback:cooldown") == 5
    assert batch.stats.cooldowns == 1

    server.clear_faults()
    assert session.run(task, make_items(2)).stats.paths == {"fallback:cooldown": 2}
    assert server.call_count == 3
    time.sleep(0.55)
    released = session.run(task, make_items(2))
    assert released.stats.paths == {"llm": 2} and server.call_count == 5


def test_fallback_chain_tries_the_next_model_before_local(family, local, tmp_path):
    with OpenAICompatServer() as broken, OpenAICompatServer() as healthy:
        broken.fail("server_error")
        config = {
            "endpoints": {"a": endpoint(broken.url, max_attempts=2), "b": endpoint(healthy.url)},
            "models": {"big": {"endpoint": "a", "model": "big-1", "price": {}}, "small": {"endpoint": "b", "model": "small-1", "price": {}}},
        }
        routes = {"summary": TaskRoute(provider="big", fallbacks=["small", "local"])}
        batch = session_for(router_for(tmp_path, config), local, routes).run(family.tasks["summary"], make_items(3))
        assert {r.path for r in batch.results} == {"fallback:server_error"}
        assert {(r.provider, r.model_id) for r in batch.results} == {("b", "small-1")}
        assert broken.call_count == 6 and healthy.call_count == 3
        assert all(r.attempts == 3 for r in batch.results)


def test_low_confidence_llm_answer_falls_back(family, local, tmp_path):
    with OpenAICompatServer(confidence=0.4) as srv:
        routes = {"category": TaskRoute(provider="small", min_confidence=0.7)}
        batch = session_for(router_for(tmp_path, catalog(srv.url)), local, routes).run(family.tasks["category"],
                                                                                         make_items(4))
        assert {r.path for r in batch.results} == {"fallback:low_confidence"}
        assert {r.provider for r in batch.results} == {"fake-local"}
        assert batch.stats.cost_usd > 0  # the LLM call was paid for even though its answer was not used


def test_a_failing_local_provider_gives_every_item_an_error_never_a_raise(family, tmp_path, server, caplog):
    router = router_for(tmp_path, catalog(server.url))
    server.fail("server_error")
    batch = session_for(router, FakeLocal(fail=True), routed("summary")).run(family.tasks["summary"], make_items(3))
    assert len(batch.results) == 3 and all(r.error and r.output is None for r in batch.results)
    assert batch.stats.errors == 3 and SECRET not in caplog.text + json.dumps([r.error for r in batch.results])


# ---- cascade -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_name", ["category", "refund"])
def test_cascade_sends_only_unsure_items_to_the_llm(family, local, server, tmp_path, task_name):
    task = family.tasks[task_name]
    items = make_items(12, confidences=[0.95, 0.3, 0.8, 0.5])
    routes = {task_name: TaskRoute(escalate_below_confidence=0.6, escalate_to=["small"])}
    batch = session_for(router_for(tmp_path, catalog(server.url)), local, routes).run(task, items)

    unsure = {i.id for i in items if i.fields["local_confidence"] < 0.6}
    assert len(unsure) == 6 and {req.record_id for req in server.chat_requests} == unsure
    assert local.calls == [(task_name, [i.id for i in items])]  # local answered everything once
    for item, r in zip(items, batch.results):
        if item.id in unsure:
            assert r.path == "cascade:llm" and r.provider == "testllm" and r.confidence == 0.93
        else:
            assert r.path == "cascade:local" and r.confidence == item.fields["local_confidence"]


def test_a_failed_escalation_keeps_the_local_answer_without_asking_again(family, local, server, tmp_path):
    server.fail("server_error")
    routes = {"category": TaskRoute(escalate_below_confidence=0.6, escalate_to=["small"])}
    router = router_for(tmp_path, catalog(server.url, endpoint_overrides={"max_attempts": 1}))
    batch = session_for(router, local, routes).run(family.tasks["category"], make_items(4, confidences=[0.2, 0.9]))
    assert [r.path for r in batch.results] == ["fallback:server_error", "cascade:local"] * 2
    assert len(local.calls) == 1 and batch.results[0].confidence == 0.2


# ---- cache ---------------------------------------------------------------------------------------


def test_cache_means_zero_calls_on_an_unchanged_rerun_across_sessions(family, local, server, tmp_path, warehouse):
    config, task, items = catalog(server.url), family.tasks["reply"], make_items(8)
    first = session_for(router_for(tmp_path, config), local, routed("reply"), warehouse=warehouse,
                        run_id="run-1").run(task, items)
    assert server.call_count == 8 and {r.path for r in first.results} == {"llm"}

    server.reset()
    second_session = session_for(router_for(tmp_path, config), local, routed("reply"), warehouse=warehouse,
                                 run_id="run-2")
    second = second_session.run(task, items)
    assert server.call_count == 0 and {r.path for r in second.results} == {"cache"}
    assert second.stats.cache_hits == 8 and second.stats.cost_usd == 0
    assert [r.output for r in second.results] == [r.output for r in first.results]

    changed = items[:7] + [Item(id=items[7].id, text="new", fields={**items[7].fields, "body": "A new question."})]
    third = second_session.run(task, changed)
    assert server.call_count == 1 and third.stats.cache_hits == 7

    # the same task name in another family never reads this family's answers
    other = TaskDefinition(family="other", name="reply", spec=task.spec, labels=task.labels, text_fields=task.text_fields,
                           family_description=task.family_description)
    session_for(router_for(tmp_path, config), local, routed("reply"), family="other", warehouse=warehouse).run(other, items)
    assert server.call_count == 1 + 8
    with warehouse.engine.connect() as conn:
        fams = dict(conn.execute(sa.text("SELECT family, COUNT(*) FROM llm_cache GROUP BY family")).all())
    assert fams == {"support_triage": 9, "other": 8}


# ---- concurrency, rate limits, event loops ---------------------------------------------------------


def test_concurrency_is_bounded(family, local, tmp_path):
    with OpenAICompatServer(latency_s=0.1) as srv:
        router = router_for(tmp_path, catalog(srv.url, concurrency=4))
        start = time.perf_counter()
        batch = session_for(router, local, routed("summary")).run(family.tasks["summary"], make_items(16))
        wall = time.perf_counter() - start
        assert batch.stats.paths == {"llm": 16} and srv.max_in_flight == 4
        assert wall >= 0.4  # 16 calls of 100 ms, 4 at a time


def test_requests_per_minute_limit(family, local, tmp_path):
    with OpenAICompatServer() as srv:
        router = router_for(tmp_path, catalog(srv.url, endpoint_overrides={"rpm": 600}))  # 10/s, burst 10
        session = session_for(router, local, routed("summary"))
        start = time.monotonic()  # (from the start, not the first arrival: that one may come late on a busy machine)
        session.run(family.tasks["summary"], make_items(15))
        times = sorted(r.at for r in srv.chat_requests)
        assert len(times) == 15 and times[-1] - start >= 0.45  # the 5 beyond the burst were spaced 100 ms apart


def test_run_works_from_a_thread_and_inside_a_running_loop(family, local, server, tmp_path):
    session = session_for(router_for(tmp_path, catalog(server.url)), local, routed("summary"))
    task, out = family.tasks["summary"], {}
    worker = threading.Thread(target=lambda: out.setdefault("thread", session.run(task, make_items(2))))
    worker.start()
    worker.join()

    async def inside_loop():
        return session.run(task, make_items(2, "L"))

    out["loop"] = asyncio.run(inside_loop())
    assert out["thread"].stats.paths == {"llm": 2} and out["loop"].stats.paths == {"llm": 2}
    assert session.stats().calls == 4
