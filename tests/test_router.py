"""The model router against a real OpenAI-compatible HTTP server, with the real local provider as fallback."""

import asyncio
import json
import logging
import threading
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from resources.providers.base import CATEGORIES, Task, TicketInput
from resources.router import ModelRouter, ledger_spend
from resources.routing_config import RoutingConfigError, load_config
from resources.warehouse import Warehouse
from tests.openai_server import OpenAICompatServer, expected_category

SECRET = "sk-test-DISTINCTIVE-7f3a9c1e5b"

TEXTS = [
    ("Refund for double charge", "I was charged twice for my subscription, please refund the second payment."),
    ("Cannot log in", "I reset my password three times and still cannot log in to my account."),
    ("Where is my package", "My delivery was supposed to arrive last week; the tracking has not moved."),
    ("App crashes on start", "Since the update the app shows an error and crashes every time I open it."),
    ("Invoice address", "Please change the billing address on my last invoice to our new office."),
    ("Question about plans", "How do I add more seats to the team plan? Just a question."),
    ("Account hacked?", "I got a phishing email and now there are logins from another country."),
    ("Delete my data", "Under GDPR please delete my data and confirm when done."),
    ("Hello", "Something is off, can you look?"),
    ("Shipping to Canada", "Do you ship to Canada and how long does shipping take?"),
    ("Export broken", "The CSV export has a bug: columns are shifted by one."),
    ("Charged after cancel", "I cancelled in March but was charged again in April. I want a refund."),
]


def make_tickets(n: int, prefix: str = "T") -> list[TicketInput]:
    out = []
    for i in range(n):
        subject, body = TEXTS[i % len(TEXTS)]
        out.append(
            TicketInput(
                ticket_id=f"{prefix}-{i:04d}",
                subject=subject,
                body=f"{body} Reach me at jane.doe{i}@example.com or +1 415 555 01{i % 100:02d}.",
                channel="email",
            )
        )
    return out


@pytest.fixture(scope="session")
def local(model_dir):
    """The real embedded local provider (trained once per test session)."""
    from resources.providers.local import LocalModelStore

    return LocalModelStore(model_dir=str(model_dir)).provider()


@pytest.fixture
def server():
    with OpenAICompatServer() as srv:
        yield srv


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")


def endpoint(url: str, **overrides) -> dict:
    cfg = {
        "base_url": url,
        "timeout_s": 2.0,
        "max_attempts": 3,
        "backoff": {"initial_s": 0.01, "max_s": 0.05, "jitter_s": 0.01},
        "cooldown": {"after_failures": 1000, "seconds": 60},
    }
    cfg.update(overrides)
    return cfg


def write_config(tmp_path: Path, config: dict, name: str = "routing.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(path)


def llm_config(url: str, *, tasks: dict | None = None, endpoint_overrides: dict | None = None, **extra) -> dict:
    cfg = {
        "endpoints": {"testllm": endpoint(url, **(endpoint_overrides or {}))},
        "models": {
            "small": {
                "endpoint": "testllm",
                "model": "test-small",
                "params": {"temperature": 0, "max_tokens": 100},
                "price": {"input_per_1m": 1.0, "output_per_1m": 4.0},
            }
        },
        "tasks": tasks
        or {"classify": {"provider": "small"}, "summarize": {"provider": "small"}, "draft_reply": {"provider": "small"}},
    }
    cfg.update(extra)
    return cfg


def router_for(tmp_path: Path, config: dict, api_key: str | None = SECRET) -> ModelRouter:
    return ModelRouter(config_path=write_config(tmp_path, config), api_key=api_key)


# ---- configuration --------------------------------------------------------------------------


def test_default_routing_is_all_local_and_needs_no_key(local, warehouse):
    router = ModelRouter()
    assert not router.load_config().uses_remote
    session = router.session(local=local, warehouse=warehouse, run_id="r-default")
    batch = session.run(Task.classify, make_tickets(6))
    assert [r.ticket_id for r in batch.results] == [t.ticket_id for t in make_tickets(6)]
    assert {r.path for r in batch.results} == {"local"}
    assert all(r.category in CATEGORIES for r in batch.results)
    stats = session.stats()
    assert stats.calls == 0 and stats.cost_usd == 0 and stats.budget_remaining_usd is None


def test_example_config_is_valid_and_without_a_key_falls_back(local, tmp_path):
    example = load_config("resources/routing.example-openai.yaml")
    assert example.is_cascade(Task.classify) and example.remote_chain(Task.draft_reply) == ["gpt-4o", "gpt-4o-mini"]
    session = ModelRouter(config_path="resources/routing.example-openai.yaml").session(local=local)
    batch = session.run(Task.draft_reply, make_tickets(3))
    assert {r.path for r in batch.results} == {"fallback:no_api_key"}
    assert all(r.draft for r in batch.results) and session.stats().calls == 0


@pytest.mark.parametrize(
    "content, expected",
    [
        ("tasks:\n  classify: {provider: gpt-9}\n", "tasks.classify.provider: unknown model 'gpt-9'; known: local"),
        ("tasks:\n  clasify: {provider: local}\n", "tasks.clasify"),
        ("budget: {per_run_usd: -1}\n", "budget.per_run_usd: Input should be greater than or equal to 0"),
        ("endpoints: {e: {timeout: 3}}\n", "endpoints.e.timeout: unknown key (typo?)"),
        ("models: {m: {endpoint: nowhere, model: x}}\n", "models.m.endpoint: unknown endpoint 'nowhere'"),
        ("tasks:\n  summarize: {provider: local, escalate_below_confidence: 0.5}\n", "cannot cascade"),
        ("tasks: [unclosed\n", "not valid YAML at line"),
    ],
)
def test_bad_config_names_file_key_and_reason(tmp_path, content, expected):
    path = tmp_path / "bad-routing.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RoutingConfigError) as err:
        load_config(str(path))
    assert "bad-routing.yaml" in str(err.value)
    assert expected in str(err.value)


def test_missing_config_file_is_named():
    with pytest.raises(RoutingConfigError, match="nope.yaml: routing config file not found"):
        ModelRouter(config_path="/tmp/definitely/nope.yaml").load_config()


# ---- answers, cost, redaction ------------------------------------------------------------------


def test_llm_answers_are_checkable_costed_and_redacted(local, server, tmp_path, warehouse):
    router = router_for(tmp_path, llm_config(server.url))
    session = router.session(local=local, warehouse=warehouse, run_id="r1", partition="p1")
    tickets = make_tickets(12)
    batch = session.run(Task.classify, tickets)

    assert [r.ticket_id for r in batch.results] == [t.ticket_id for t in tickets]
    for ticket, r in zip(tickets, batch.results):
        assert r.path == "llm" and r.provider == "testllm" and r.model_id == "test-small"
        assert r.category == expected_category(ticket.text)
        assert r.cost_usd == pytest.approx((r.tokens_in * 1.0 + r.tokens_out * 4.0) / 1e6)
        assert r.redactions >= 1  # the email (and phone) never left the process
    assert server.call_count == 12
    for req in server.chat_requests:
        sent = json.dumps(req.body)
        assert "@example.com" not in sent and "555 01" not in sent
        assert req.body["model"] == "test-small" and req.body["max_tokens"] == 100
        assert req.body["response_format"] == {"type": "json_object"}
        assert req.headers["authorization"] == f"Bearer {SECRET}"
    stats = batch.stats
    assert stats.calls == 12 and stats.paths == {"llm": 12}
    assert stats.cost_usd == pytest.approx(sum(r.cost_usd for r in batch.results))
    md = session.stats().as_metadata()
    assert md["llm.calls"] == 12 and md["llm.cost_usd"] > 0 and md["llm.redactions"] >= 12
    assert ledger_spend(warehouse, run_id="r1", partition="p1").calls == 12

    summaries = session.run(Task.summarize, tickets[:3]).results
    assert [s.summary for s in summaries] == [f"[{t.ticket_id}] {t.subject}" for t in tickets[:3]]


# ---- fallback, retries, cooldown ----------------------------------------------------------------


@pytest.mark.parametrize(
    "fault, reason",
    [
        ("server_error", "server_error"),
        ("unavailable", "server_error"),
        ("rate_limit", "rate_limited"),
        ("hang", "timeout"),
        ("malformed_json", "malformed_response"),
        ("wrong_schema", "invalid_output"),
        ("auth", "auth"),
    ],
)
def test_every_fault_kind_ends_in_a_valid_local_answer(local, server, tmp_path, fault, reason):
    server.settings.hang_s = 5
    router = router_for(tmp_path, llm_config(server.url, endpoint_overrides={"timeout_s": 0.3, "max_attempts": 2}))
    server.fail(fault)  # every request
    session = router.session(local=local)
    tickets = make_tickets(2)
    batch = session.run(Task.classify, tickets)

    for r in batch.results:
        assert r.ok and r.category in CATEGORIES
        assert r.path == f"fallback:{reason}" and r.provider != "testllm"
    attempts_per_ticket = 1 if reason == "auth" else 2  # auth errors are not retried
    assert server.call_count == 2 * attempts_per_ticket  # retries are bounded by max_attempts
    assert batch.stats.fallbacks_by_reason == {reason: 2}
    assert session.stats().as_metadata()[f"llm.fallbacks.{reason}"] == 2


def test_retry_recovers_and_waits_for_retry_after(local, server, tmp_path):
    server.settings.retry_after_s = 0.4
    router = router_for(tmp_path, llm_config(server.url))
    server.fail("rate_limit", times=1)
    batch = router.session(local=local).run(Task.summarize, make_tickets(1))
    r = batch.results[0]
    assert r.path == "llm" and r.attempts == 2 and r.summary.startswith("[T-0000]")
    first, second = server.chat_requests
    assert second.at - first.at >= 0.38  # honored Retry-After, not the 10 ms backoff
    assert batch.stats.retries == 1


def test_cooldown_stops_calls_then_releases(local, server, tmp_path):
    router = router_for(
        tmp_path,
        llm_config(
            server.url,
            endpoint_overrides={"max_attempts": 1, "max_concurrency": 1, "cooldown": {"after_failures": 3, "seconds": 0.5}},
        ),
    )
    session = router.session(local=local)
    server.fail("server_error")
    batch = session.run(Task.classify, make_tickets(8))
    assert server.call_count == 3  # the 4th..8th ticket were never sent
    assert [r.path for r in batch.results].count("fallback:server_error") == 3
    assert [r.path for r in batch.results].count("fallback:cooldown") == 5
    assert batch.stats.cooldowns == 1

    server.clear_faults()
    assert session.run(Task.classify, make_tickets(2)).stats.paths == {"fallback:cooldown": 2}
    assert server.call_count == 3
    time.sleep(0.55)
    released = session.run(Task.classify, make_tickets(2))
    assert released.stats.paths == {"llm": 2} and server.call_count == 5


def test_fallback_chain_tries_the_next_model_before_local(local, tmp_path):
    with OpenAICompatServer() as broken, OpenAICompatServer() as healthy:
        broken.fail("server_error")
        config = {
            "endpoints": {"a": endpoint(broken.url, max_attempts=2), "b": endpoint(healthy.url)},
            "models": {"big": {"endpoint": "a", "model": "big-1"}, "small": {"endpoint": "b", "model": "small-1"}},
            "tasks": {"summarize": {"provider": "big", "fallbacks": ["small", "local"]}},
        }
        batch = router_for(tmp_path, config).session(local=local).run(Task.summarize, make_tickets(3))
        assert {r.path for r in batch.results} == {"fallback:server_error"}
        assert {(r.provider, r.model_id) for r in batch.results} == {("b", "small-1")}
        assert broken.call_count == 6 and healthy.call_count == 3
        assert all(r.attempts == 3 for r in batch.results)


def test_low_confidence_llm_answer_falls_back(local, tmp_path):
    with OpenAICompatServer(classify_confidence=0.4) as srv:
        config = llm_config(srv.url, tasks={"classify": {"provider": "small", "min_confidence": 0.7}})
        batch = router_for(tmp_path, config).session(local=local).run(Task.classify, make_tickets(4))
        assert {r.path for r in batch.results} == {"fallback:low_confidence"}
        assert all(r.provider != "testllm" and r.category in CATEGORIES for r in batch.results)
        assert batch.stats.cost_usd > 0  # the LLM call was paid for even though its answer was not used


# ---- cascade ---------------------------------------------------------------------------------------


def test_cascade_sends_only_low_confidence_tickets_to_the_llm(local, server, tmp_path):
    tickets = make_tickets(24)
    local_conf = {r.ticket_id: r.confidence for r in local.run(Task.classify, tickets)}
    values = sorted(set(local_conf.values()))
    assert len(values) > 2, "need spread in local confidences"
    threshold = values[len(values) // 2]
    config = llm_config(
        server.url, tasks={"classify": {"provider": "local", "escalate_below_confidence": threshold, "escalate_to": ["small"]}}
    )
    batch = router_for(tmp_path, config).session(local=local).run(Task.classify, tickets)

    low = {tid for tid, c in local_conf.items() if c < threshold}
    assert 0 < len(low) < len(tickets)
    assert {req.ticket_id for req in server.chat_requests} == low
    for t, r in zip(tickets, batch.results):
        if t.ticket_id in low:
            assert r.path == "cascade:llm" and r.category == expected_category(t.text)
        else:
            assert r.path == "cascade:local" and r.confidence == pytest.approx(local_conf[t.ticket_id])


# ---- cache -----------------------------------------------------------------------------------------


def test_cache_means_zero_http_calls_on_an_unchanged_rerun_across_sessions(local, server, tmp_path, warehouse):
    config = llm_config(server.url)
    tickets = make_tickets(10)
    first = router_for(tmp_path, config).session(local=local, warehouse=warehouse, run_id="run-1").run(Task.draft_reply, tickets)
    assert server.call_count == 10 and {r.path for r in first.results} == {"llm"}

    server.reset()
    second_session = router_for(tmp_path, config).session(local=local, warehouse=warehouse, run_id="run-2")
    second = second_session.run(Task.draft_reply, tickets)
    assert server.call_count == 0
    assert {r.path for r in second.results} == {"cache"} and second.stats.cache_hits == 10
    assert [r.draft for r in second.results] == [r.draft for r in first.results]
    assert second.stats.cost_usd == 0

    changed = tickets[:9] + [tickets[9].model_copy(update={"body": "A brand new question about refunds."})]
    third = second_session.run(Task.draft_reply, changed)
    assert server.call_count == 1 and third.stats.cache_hits == 9


# ---- budget ----------------------------------------------------------------------------------------


def budget_config(url: str, per_call: float, **budget) -> dict:
    # price only the output and report completion_tokens = max_tokens, so each call costs exactly `per_call`
    config = llm_config(url, tasks={"summarize": {"provider": "small"}}, budget=budget)
    config["models"]["small"]["price"] = {"input_per_1m": 0.0, "output_per_1m": per_call * 1e6 / 100}
    return config


def test_budget_for_ten_calls_makes_exactly_ten(local, tmp_path, warehouse):
    per_call = 0.001
    with OpenAICompatServer(completion_tokens_from_max_tokens=True) as srv:
        router = router_for(tmp_path, budget_config(srv.url, per_call, per_run_usd=10.5 * per_call))
        session = router.session(local=local, warehouse=warehouse, run_id="budget-run", partition="b1")
        batch = session.run(Task.summarize, make_tickets(25))

        assert srv.call_count == 10
        paths = [r.path for r in batch.results]
        assert paths.count("llm") == 10 and paths.count("fallback:budget") == 15
        assert all(r.summary for r in batch.results)
        stats = session.stats()
        assert stats.cost_usd == pytest.approx(10 * per_call)
        assert stats.fallbacks_by_reason == {"budget": 15}
        assert stats.budget_remaining_usd == pytest.approx(0.5 * per_call)
        assert ledger_spend(warehouse, run_id="budget-run").cost_usd == pytest.approx(10 * per_call)

        # a later batch of the same run finds the budget spent and makes no call
        assert session.run(Task.summarize, make_tickets(3, "U")).stats.paths == {"fallback:budget": 3}
        assert srv.call_count == 10


def test_per_day_budget_holds_across_runs(local, tmp_path, warehouse):
    per_call = 0.001
    with OpenAICompatServer(completion_tokens_from_max_tokens=True) as srv:
        router = router_for(tmp_path, budget_config(srv.url, per_call, per_day_usd=4.5 * per_call))
        first = router.session(local=local, warehouse=warehouse, run_id="day-1").run(Task.summarize, make_tickets(3))
        assert first.stats.paths == {"llm": 3}
        second = router.session(local=local, warehouse=warehouse, run_id="day-2").run(
            Task.summarize, make_tickets(3, "V")
        )
        assert second.stats.paths == {"llm": 1, "fallback:budget": 2} and srv.call_count == 4


# ---- concurrency, rate limits, event loops ------------------------------------------------------------


def test_concurrency_is_bounded(local, tmp_path):
    with OpenAICompatServer(latency_s=0.1) as srv:
        router = router_for(tmp_path, llm_config(srv.url, concurrency=4))
        start = time.perf_counter()
        batch = router.session(local=local).run(Task.summarize, make_tickets(16))
        wall = time.perf_counter() - start
        assert batch.stats.paths == {"llm": 16}
        assert srv.max_in_flight == 4
        assert wall >= 0.4  # 16 calls of 100 ms, 4 at a time


def test_requests_per_minute_limit(local, tmp_path):
    with OpenAICompatServer() as srv:
        router = router_for(tmp_path, llm_config(srv.url, endpoint_overrides={"rpm": 600}))  # 10/s, burst 10
        router.session(local=local).run(Task.summarize, make_tickets(15))
        times = sorted(r.at for r in srv.chat_requests)
        assert len(times) == 15
        assert times[-1] - times[0] >= 0.4  # the 5 beyond the burst were spaced 100 ms apart


def test_run_works_from_a_thread_and_inside_a_running_loop(local, server, tmp_path):
    router = router_for(tmp_path, llm_config(server.url))
    session = router.session(local=local)
    out: dict[str, object] = {}
    worker = threading.Thread(target=lambda: out.setdefault("thread", session.run(Task.summarize, make_tickets(2))))
    worker.start()
    worker.join()

    async def inside_loop():
        return session.run(Task.summarize, make_tickets(2, "L"))

    out["loop"] = asyncio.run(inside_loop())
    assert out["thread"].stats.paths == {"llm": 2} and out["loop"].stats.paths == {"llm": 2}
    assert session.stats().calls == 4


# ---- secrets ---------------------------------------------------------------------------------------


def test_the_api_key_never_leaks(local, tmp_path, warehouse, caplog):
    caplog.set_level(logging.DEBUG)
    with OpenAICompatServer(retry_after_s=0.0) as srv:
        config = llm_config(srv.url, tasks={"classify": {"provider": "small"}, "summarize": {"provider": "small"}})
        router = router_for(tmp_path, config)
        session = router.session(local=local, warehouse=warehouse, run_id="secret-run", partition="s1")
        srv.fail("auth", times=2)  # the 401 body echoes the key, as real providers partly do
        srv.fail("rate_limit", times=1)
        srv.fail("server_error", times=1)
        results = session.run(Task.classify, make_tickets(6)).results + session.run(Task.summarize, make_tickets(3)).results
        direct = router.remote_providers()["small"]
        srv.fail("auth", times=1)
        direct_results = direct.run(Task.summarize, make_tickets(1))

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


# ---- the blocking spend check ---------------------------------------------------------------------


def test_spend_check_blocks_a_partition_over_budget(local, tmp_path, warehouse):
    from checks.spend import llm_spend_within_budget
    from orchestration_assets.ingestion import ticket_batches

    per_call = 0.001
    tickets = make_tickets(6)

    def materialize(instance, per_partition_usd: float, partition: str):
        @dg.asset(name="enriched_tickets", partitions_def=ticket_batches)
        def enriched_tickets(context: dg.AssetExecutionContext, router: ModelRouter, warehouse: Warehouse) -> None:
            session = router.session(
                local=local, warehouse=warehouse, run_id=context.run.run_id, partition=context.partition_key
            )
            batch = session.run(Task.summarize, tickets)
            context.add_output_metadata(session.stats().as_metadata())
            assert batch.stats.calls == 6

        with OpenAICompatServer(completion_tokens_from_max_tokens=True) as srv:
            config = budget_config(srv.url, per_call, per_run_usd=1.0, per_partition_usd=per_partition_usd)
            config["cache"] = {"enabled": False}
            router = router_for(tmp_path, config)
            instance.add_dynamic_partitions("ticket_batches", [partition])
            result = dg.materialize(
                [enriched_tickets, llm_spend_within_budget],
                partition_key=partition,
                instance=instance,
                resources={"router": router, "warehouse": warehouse},
                raise_on_error=False,
            )
        (evaluation,) = result.get_asset_check_evaluations()
        return result, evaluation

    with dg.instance_for_test() as instance:
        result, ok = materialize(instance, per_partition_usd=0.01, partition="batch-a")
        result, over = materialize(instance, per_partition_usd=0.004, partition="batch-b")
    assert ok.passed and ok.partition == "batch-a"
    assert ok.metadata["spend_usd"].value == pytest.approx(6 * per_call)
    assert ok.metadata["calls"].value == 6 and ok.metadata["budget_usd"].value == 0.01
    assert not over.passed and over.severity == dg.AssetCheckSeverity.ERROR and over.partition == "batch-b"
    assert over.metadata["spend_usd"].value == pytest.approx(6 * per_call)
    assert over.metadata["budget_used_pct"].value == pytest.approx(150.0)

    # run on its own later (another run id), the check reads the partition's stored cost_usd
    from checks.spend import partition_spend

    warehouse.replace_partition("enriched_tickets", pd.DataFrame({"ticket_id": ["a", "b"], "cost_usd": [0.003, 0.002]}),
                                "batch-c")
    later = partition_spend(warehouse, "batch-c", run_id="another-run", budget_usd=0.004)
    assert later.source == "enriched_tickets.cost_usd" and later.spend.cost_usd == pytest.approx(0.005)
    assert not later.passed
