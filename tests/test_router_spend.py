"""What the router spends: budgets reserved before each call, the spend ledger, and secrets kept out of both."""

import json
import logging
import threading

import pytest
import sqlalchemy as sa

from resources.providers.definition import TaskDefinition
from resources.router import ledger_spend
from resources.router.routes import Budget
from tests.openai_server import OpenAICompatServer
from tests.router_fixtures import SECRET, budget_catalog, catalog, make_items, routed, router_for, session_for
from tests.router_fixtures import family, local, server, warehouse  # noqa: F401 - pytest fixtures


# ---- budget --------------------------------------------------------------------------------------


def test_budget_for_ten_calls_makes_exactly_ten(family, local, tmp_path, warehouse):
    per_call = 0.001
    with OpenAICompatServer(completion_tokens_from_max_tokens=True) as srv:
        router = router_for(tmp_path, budget_catalog(srv.url, per_call))
        session = session_for(router, local, routed("summary"), Budget(per_run_usd=10.5 * per_call),
                              warehouse=warehouse, run_id="budget-run", partition="b1")
        batch = session.run(family.tasks["summary"], make_items(25))

        assert srv.call_count == 10
        paths = [r.path for r in batch.results]
        assert paths.count("llm") == 10 and paths.count("fallback:budget") == 15
        assert all(r.output["summary"] for r in batch.results)
        stats = session.stats()
        assert stats.cost_usd == pytest.approx(10 * per_call) and stats.fallbacks_by_reason == {"budget": 15}
        assert stats.budget_remaining_usd == pytest.approx(0.5 * per_call)
        assert ledger_spend(warehouse, family="support_triage", run_id="budget-run").cost_usd == pytest.approx(10 * per_call)

        # a later batch of the same run finds the budget spent and makes no call
        assert session.run(family.tasks["summary"], make_items(3, "U")).stats.paths == {"fallback:budget": 3}
        assert srv.call_count == 10


def test_per_day_budget_is_the_familys_across_runs(family, local, tmp_path, warehouse):
    per_call = 0.001
    day = Budget(per_day_usd=4.5 * per_call)
    with OpenAICompatServer(completion_tokens_from_max_tokens=True) as srv:
        router = router_for(tmp_path, budget_catalog(srv.url, per_call))
        task = family.tasks["summary"]
        first = session_for(router, local, routed("summary"), day, warehouse=warehouse, run_id="day-1").run(
            task, make_items(3))
        assert first.stats.paths == {"llm": 3}
        # another family's spend the same day does not count against this one
        other = TaskDefinition(family="other", name="summary", spec=task.spec, text_fields=task.text_fields)
        session_for(router, local, routed("summary"), day, family="other", warehouse=warehouse, run_id="o-1").run(
            other, make_items(3, "O"))
        second = session_for(router, local, routed("summary"), day, warehouse=warehouse, run_id="day-2").run(
            task, make_items(3, "V"))
        assert second.stats.paths == {"llm": 1, "fallback:budget": 2} and srv.call_count == 7


def test_parallel_steps_of_a_family_share_its_budget(family, local, tmp_path, warehouse):
    """Two sessions of one run spending at the same time (parallel steps) make 10 calls together, not 20."""
    per_call = 0.001
    with OpenAICompatServer(completion_tokens_from_max_tokens=True, latency_s=0.02) as srv:
        router = router_for(tmp_path, budget_catalog(srv.url, per_call))
        budget = Budget(per_run_usd=10.5 * per_call)
        sessions = [session_for(router, local, routed("summary", "sentiment"), budget, warehouse=warehouse,
                                run_id="parallel-run") for _ in range(2)]
        batches: dict[int, object] = {}
        tasks = [family.tasks["summary"], family.tasks["sentiment"]]
        workers = [threading.Thread(target=lambda k=k: batches.setdefault(k, sessions[k].run(tasks[k], make_items(20, f"P{k}"))))
                   for k in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    llm = sum(b.stats.paths.get("llm", 0) for b in batches.values())
    assert srv.call_count == llm == 10
    assert all(len(b.results) == 20 for b in batches.values())
    spend = ledger_spend(warehouse, family="support_triage", run_id="parallel-run")
    assert spend.cost_usd == pytest.approx(10 * per_call) and spend.calls == 10
    with warehouse.engine.connect() as conn:  # every hold was released with its batch
        assert conn.execute(sa.text("SELECT COUNT(*) FROM llm_spend_holds")).scalar_one() == 0


def test_without_a_warehouse_the_budget_holds_within_the_session(family, local, tmp_path):
    per_call = 0.001
    with OpenAICompatServer(completion_tokens_from_max_tokens=True) as srv:
        router = router_for(tmp_path, budget_catalog(srv.url, per_call))
        session = session_for(router, local, routed("summary"), Budget(per_run_usd=3.5 * per_call))
        first = session.run(family.tasks["summary"], make_items(2))
        second = session.run(family.tasks["summary"], make_items(3, "W"))
    assert first.stats.paths == {"llm": 2} and second.stats.paths == {"llm": 1, "fallback:budget": 2}
    assert session.stats().budget_remaining_usd == pytest.approx(0.5 * per_call)


# ---- secrets, Dagster wiring ---------------------------------------------------------------------


def test_the_api_key_never_leaks(family, local, tmp_path, warehouse, caplog):
    caplog.set_level(logging.DEBUG)
    with OpenAICompatServer() as srv:
        router = router_for(tmp_path, catalog(srv.url))
        session = session_for(router, local, routed("category", "summary"), warehouse=warehouse, run_id="secret-run",
                              partition="s1")
        srv.fail("auth", times=2)  # the 401 body echoes the key, as real providers partly do
        srv.fail("rate_limit", times=1)
        srv.fail("server_error", times=1)
        results = (session.run(family.tasks["category"], make_items(6)).results
                   + session.run(family.tasks["summary"], make_items(3)).results)
        direct = router.remote_providers()["small"]
        srv.fail("auth", times=1)
        direct_results = direct.run(family.tasks["summary"], make_items(1))

    assert any(req.headers.get("authorization") == f"Bearer {SECRET}" for req in srv.chat_requests)
    assert direct_results[0].error and "auth" in direct_results[0].error
    haystacks = {
        "logs": caplog.text,
        "results": json.dumps([r.model_dump(mode="json") for r in results + direct_results]),
        "stats": session.stats().model_dump_json(),
        "metadata": json.dumps(session.stats().as_metadata()),
        "reprs": repr(router) + repr(session) + repr(direct),
    }
    with warehouse.engine.connect() as conn:
        for table in sa.inspect(warehouse.engine).get_table_names():
            rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            haystacks[f"table {table}"] = json.dumps([list(map(str, row)) for row in rows])
    assert "table llm_spend" in haystacks and "table llm_cache" in haystacks
    for where, text in haystacks.items():
        assert SECRET not in text, f"API key leaked into {where}"
        assert SECRET[8:] not in text, f"part of the API key leaked into {where}"


# ---- the ledger ----------------------------------------------------------------------------------


def test_a_ledger_from_before_families_gets_the_family_column(warehouse):
    with warehouse.engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE llm_spend (id INTEGER PRIMARY KEY, recorded_at TEXT, day TEXT, run_id TEXT, partition TEXT,"
            " task TEXT, endpoint TEXT, model_id TEXT, calls INT, tokens_in INT, tokens_out INT, cost_usd FLOAT)"))
        conn.execute(sa.text("INSERT INTO llm_spend VALUES (1, 'x', '2026-01-01', 'r', 'p', 't', 'e', 'm', 2, 1, 1, 0.5)"))
    assert ledger_spend(warehouse).cost_usd == 0.5 and ledger_spend(warehouse, family="f").rows == 0
    assert ledger_spend(warehouse, family="", day="2026-01-01").calls == 2
