"""The router against what a real third-party server does (the findings of a run against llama.cpp's).

Each test reproduces one finding with the project's fault-injecting server (tests/openai_server.py)
and checks the fix: the task's schema in the endpoint's dialect, no identical deterministic resend,
``finish_reason`` read, true upper bounds settled with ``usage``, invalid output toward cooldown and
cached, 5xx request errors, the configured model recorded, params checked at load, the cascade never
trading a surer local answer for a less sure one, and prices from genai-prices.
"""

import json
import logging
import math

import pytest
import sqlalchemy as sa
import yaml

from resources.providers.openai import GRAMMAR_MAX_REPEAT, tokens_in_bound
from resources.router import ledger_spend
from resources.router.catalog import CatalogError, load_catalog
from resources.router.routes import Budget, TaskRoute
from tests.openai_server import OpenAICompatServer
from tests.router_fixtures import SECRET, FakeLocal, catalog, make_items, routed, router_for, session_for
from tests.router_fixtures import family, local, server, warehouse  # noqa: F401 - pytest fixtures


def small(config: dict, **changes) -> dict:
    config["models"]["small"].update(changes)
    return config


# ---- 1. the task's schema, in the endpoint's dialect --------------------------------------------


def test_llama_cpp_dialect_sends_the_task_schema_and_its_500_is_a_request_error(family, local, tmp_path, caplog):
    with OpenAICompatServer(dialect="llama_cpp") as srv:
        task = family.tasks["category"]
        ok = router_for(tmp_path, catalog(srv.url, endpoint_overrides={"structured_output": "json_object_schema"}))
        batch = session_for(ok, local, routed("category")).run(task, make_items(3))
        assert batch.stats.paths == {"llm": 3}
        assert {json.dumps(r.response_format) for r in srv.chat_requests} == {
            json.dumps({"type": "json_object", "schema": task.json_schema()})}

        srv.reset()  # the OpenAI dialect against it: a 500 saying "not supported" is the request's fault
        strict = catalog(srv.url, endpoint_overrides={"cooldown": {"after_failures": 1, "seconds": 60}})
        bad = router_for(tmp_path, strict, name="strict.yaml")
        with caplog.at_level(logging.WARNING):
            batch = session_for(bad, local, routed("category")).run(task, make_items(4))
    assert batch.stats.paths == {"fallback:request_error": 4}
    assert srv.call_count == 4 and batch.stats.retries == 0 and batch.stats.cooldowns == 0  # no retry, no cooldown
    assert "endpoint 'testllm'" in caplog.text and "HTTP 500" in caplog.text and SECRET not in caplog.text


def test_the_llama_cpp_dialect_leaves_out_string_bounds_its_grammar_cannot_hold(family, local, tmp_path):
    # llama.cpp's server gave up on the grammar of maxLength 8000 and crashed (segfault) mid-generation
    task = family.tasks["reply"]
    full = task.json_schema()
    assert full["properties"]["text"]["maxLength"] > GRAMMAR_MAX_REPEAT
    with OpenAICompatServer(dialect="llama_cpp") as srv:
        r = router_for(tmp_path, catalog(srv.url, endpoint_overrides={"structured_output": "json_object_schema"}))
        session_for(r, local, routed("reply")).run(task, make_items(1))
        sent = srv.chat_requests[0].response_format["schema"]
    assert "maxLength" not in sent["properties"]["text"]
    assert sent["properties"]["text"]["minLength"] == full["properties"]["text"]["minLength"]  # small bounds stay
    assert sent["required"] == full["required"]
    # the answer itself is still held to the whole schema
    too_long = json.dumps({"text": "x" * (full["properties"]["text"]["maxLength"] + 1), "cited_ids": []})
    with pytest.raises(Exception):
        task.output_model.model_validate_json(too_long)


def test_a_models_structured_output_overrides_its_endpoints(family, local, server, tmp_path):
    config = small(catalog(server.url, endpoint_overrides={"structured_output": "json_object_schema"}),
                   structured_output="json_schema")
    session_for(router_for(tmp_path, config), local, routed("priority")).run(family.tasks["priority"], make_items(1))
    assert server.chat_requests[0].response_format["type"] == "json_schema"


# ---- 2. no identical deterministic resend; finish_reason ----------------------------------------


def test_a_wrong_answer_at_temperature_0_is_corrected_once_never_resent(family, local, server, tmp_path):
    server.fail("wrong_schema")
    batch = session_for(router_for(tmp_path, catalog(server.url)), local, routed("category")).run(
        family.tasks["category"], make_items(3))
    assert batch.stats.paths == {"fallback:invalid_output": 3}
    bodies = [r.raw for r in server.chat_requests]
    assert len(bodies) == 6 and len(set(bodies)) == 6  # two per item, never the same request twice
    corrections = [r for r in server.chat_requests if len(r.body["messages"]) == 3]
    assert len(corrections) == 3 and all("not accepted" in r.body["messages"][2]["content"] for r in corrections)


def test_the_corrected_request_can_succeed(family, local, tmp_path):
    def answers(rec, schema):  # wrong until the request says why
        return None if len(rec.body["messages"]) == 3 else {"label": "banana"}

    with OpenAICompatServer(answers=answers) as srv:
        batch = session_for(router_for(tmp_path, catalog(srv.url)), local, routed("category")).run(
            family.tasks["category"], make_items(2))
    assert batch.stats.paths == {"llm": 2} and all(r.attempts == 2 for r in batch.results)


@pytest.mark.parametrize("fault", ["truncated", "content_filter"])
def test_a_truncated_or_filtered_answer_is_not_retried(family, local, server, tmp_path, fault):
    server.fail(fault)
    session = session_for(router_for(tmp_path, small(catalog(server.url), params={"temperature": 0.7, "max_tokens": 100})),
                          local, routed("summary"))
    batch = session.run(family.tasks["summary"], make_items(3))
    assert batch.stats.paths == {f"fallback:{fault}": 3} and server.call_count == 3
    assert all(r.output["summary"].startswith("local summary") for r in batch.results)


# ---- 3. true upper bounds, settled with usage ---------------------------------------------------


def test_budget_holds_to_the_cent_when_usage_is_3x_the_character_estimate(family, local, tmp_path, warehouse):
    with OpenAICompatServer(prompt_tokens_per_char=1.0, completion_tokens_from_max_tokens=True) as srv:
        config = small(catalog(srv.url, cache={"enabled": False}), price={"input_per_1m": 5.0, "output_per_1m": 20.0})
        session = session_for(router_for(tmp_path, config), local, routed("summary"), Budget(per_run_usd=0.05),
                              warehouse=warehouse, run_id="three-x")
        batch = session.run(family.tasks["summary"], make_items(40))
        usage = [(math.floor(sum(len(m["content"]) for m in r.body["messages"])), 100) for r in srv.chat_requests]
    spend = ledger_spend(warehouse, family="support_triage", run_id="three-x")
    paid = sum(i * 5.0 + o * 20.0 for i, o in usage) / 1e6
    assert spend.cost_usd == pytest.approx(paid) and spend.cost_usd <= 0.05 + 1e-9  # real usage, within budget
    assert batch.stats.budget_overruns == 0 and batch.stats.fallbacks_by_reason.get("budget", 0) > 0
    assert 0.05 - spend.cost_usd < 2 * max(i * 5.0 + o * 20.0 for i, o in usage) / 1e6  # and used up


def test_tpm_is_not_exceeded_when_usage_is_3x_the_character_estimate(family, local, tmp_path):
    tpm = 240_000  # 4,000 tokens a second, a bucket of one second's worth
    with OpenAICompatServer(prompt_tokens_per_char=1.0) as srv:
        config = catalog(srv.url, cache={"enabled": False}, endpoint_overrides={"tpm": tpm},
                         rate_limits={"shared": "process"})
        batch = session_for(router_for(tmp_path, config), local, routed("summary")).run(
            family.tasks["summary"], make_items(16))
        reqs = srv.chat_requests
        sent = [(r.at, sum(len(m["content"]) for m in r.body["messages"]) + 100) for r in reqs]
    assert batch.stats.paths == {"llm": 16}
    elapsed = sent[-1][0] - sent[0][0]
    before_last = sum(tokens for _, tokens in sent[:-1])
    assert before_last <= tpm / 60 * (elapsed + 1) + max(t for _, t in sent), (before_last, elapsed)


def test_without_usage_the_bound_is_charged(family, local, tmp_path, warehouse):
    with OpenAICompatServer(send_usage=False) as srv:
        session = session_for(router_for(tmp_path, catalog(srv.url)), local, routed("summary"), warehouse=warehouse,
                              run_id="no-usage")
        (r,) = session.run(family.tasks["summary"], make_items(1)).results
        (req,) = srv.chat_requests
    schema_bytes = len(json.dumps(req.body["response_format"]).encode())
    assert r.tokens_in == tokens_in_bound(req.body["messages"], schema_bytes) and r.tokens_out == 100
    assert ledger_spend(warehouse, run_id="no-usage").tokens_in == r.tokens_in


# ---- 4. invalid output: cooldown and a cached failure -------------------------------------------


def test_invalid_output_counts_toward_the_cooldown(family, local, server, tmp_path):
    server.fail("wrong_schema")
    config = catalog(server.url, endpoint_overrides={"max_concurrency": 1, "cooldown": {"after_failures": 2, "seconds": 60}})
    session = session_for(router_for(tmp_path, config), local, routed("category"))
    session.catalog = session.catalog.model_copy(update={"concurrency": 1})
    batch = session.run(family.tasks["category"], make_items(5))
    assert server.call_count == 2 and batch.stats.cooldowns == 1  # two invalid answers in a row open it
    assert batch.stats.paths["fallback:cooldown"] >= 3 and sum(batch.stats.paths.values()) == 5


def test_a_deterministic_failure_is_cached_and_not_paid_for_again(family, local, server, tmp_path, warehouse):
    server.fail("wrong_schema")
    router, task, items = router_for(tmp_path, catalog(server.url)), family.tasks["category"], make_items(3)
    first = session_for(router, local, routed("category"), warehouse=warehouse, run_id="a").run(task, items)
    assert server.call_count == 6 and first.stats.paths == {"fallback:invalid_output": 3}

    again = session_for(router, local, routed("category"), warehouse=warehouse, run_id="b").run(task, items)
    assert server.call_count == 6 and again.stats.paths == {"fallback:invalid_output": 3}
    assert again.stats.cache_hits == again.stats.cached_failures == 3 and again.stats.cost_usd == 0
    assert ledger_spend(warehouse, run_id="b").calls == 0

    changed = router_for(tmp_path, small(catalog(server.url), params={"temperature": 0, "max_tokens": 120}), name="b.yaml")
    session_for(changed, local, routed("category"), warehouse=warehouse, run_id="c").run(task, items)
    assert server.call_count == 12  # other params: another request, another key


# ---- 6. the model recorded is the configured one ------------------------------------------------


def test_the_configured_model_is_recorded_and_the_served_one_kept_apart(family, local, tmp_path, warehouse):
    with OpenAICompatServer(model_version="gpt-4o") as srv:  # a server echoing whatever id it likes
        session = session_for(router_for(tmp_path, catalog(srv.url)), local, routed("category"), warehouse=warehouse,
                              run_id="prov")
        (r,) = session.run(family.tasks["category"], make_items(1)).results
        (cached,) = session_for(router_for(tmp_path, catalog(srv.url)), local, routed("category"),
                                warehouse=warehouse, run_id="prov2").run(family.tasks["category"], make_items(1)).results
    assert (r.model_id, r.model_version, r.served_model) == ("test-small", "test-small", "gpt-4o")
    assert cached.path == "cache" and cached.served_model == "gpt-4o" and cached.model_version == "test-small"
    assert family.tasks["category"].to_columns(r)["category_served_model"] == "gpt-4o"
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT model_id, served_model FROM llm_spend WHERE run_id = 'prov'")).all()
    assert rows == [("test-small", "gpt-4o")]


# ---- 7. params checked at load -----------------------------------------------------------------


@pytest.mark.parametrize("params, supported, expected", [
    ({"stream": True}, [], "models.small.params: 'stream': the router needs whole answers"),
    ({"max_completion_tokens": 50}, [], "models.small.params.max_completion_tokens: not a parameter endpoint 'testllm'"),
    ({"top_k": 40}, [], "declare it in endpoints.testllm.params_supported"),
    ({"n": 2}, [], "models.small.params: n must be 1 (the router takes one answer per call), got 2"),
    ({"temperature": 0}, ["stream"], "endpoints.testllm.params_supported: 'stream': the router needs whole answers"),
])
def test_unknown_or_unsupported_params_are_refused_at_load(tmp_path, params, supported, expected):
    config = small(catalog("http://127.0.0.1:9/v1", endpoint_overrides={"params_supported": supported}), params=params)
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value)


def test_declared_params_are_sent_and_a_missing_max_tokens_is_bounded(family, local, server, tmp_path):
    config = small(catalog(server.url, endpoint_overrides={"params_supported": ["max_completion_tokens", "top_k"]}),
                   params={"temperature": 0, "max_completion_tokens": 50, "top_k": 40})
    config["models"]["plain"] = {"endpoint": "testllm", "model": "plain", "params": {"temperature": 0}, "price": {}}
    router = router_for(tmp_path, config)
    session_for(router, local, routed("summary")).run(family.tasks["summary"], make_items(1))
    session_for(router, local, routed("summary", provider="plain")).run(family.tasks["summary"], make_items(1))
    declared, plain = (r.body for r in server.chat_requests)
    assert declared["max_completion_tokens"] == 50 and declared["top_k"] == 40 and "max_tokens" not in declared
    assert plain["max_tokens"] == 400  # the bound the budget reserved is one the server enforces


# ---- 8. the cascade keeps a surer local answer --------------------------------------------------


@pytest.mark.parametrize("llm_confidence, replace, path", [
    (0.0, False, "fallback:less_confident"), (0.0, True, "cascade:llm"), (0.93, False, "cascade:llm")])
def test_a_less_confident_llm_answer_never_replaces_the_local_one(family, tmp_path, llm_confidence, replace, path):
    with OpenAICompatServer(confidence=llm_confidence) as srv:
        route = {"category": TaskRoute(escalate_below_confidence=0.9, escalate_to=["small"],
                                       replace_less_confident=replace)}
        batch = session_for(router_for(tmp_path, catalog(srv.url)), FakeLocal(), route).run(
            family.tasks["category"], make_items(3, confidences=[0.5]))
    assert batch.stats.paths == {path: 3}
    for r in batch.results:
        assert r.confidence == (0.5 if path.startswith("fallback") else llm_confidence)
        assert r.cost_usd > 0  # the LLM call is paid for either way, and shows on the kept answer


# ---- 9. prices from genai-prices ----------------------------------------------------------------


def test_prices_come_from_genai_prices_unless_the_catalog_sets_one(family, local, server, tmp_path):
    config = catalog(server.url, endpoint_overrides={"price_provider": "openai"})
    config["models"] = {
        "mini": {"endpoint": "testllm", "model": "gpt-4o-mini", "params": {"temperature": 0, "max_tokens": 100}},
        "mine": {"endpoint": "testllm", "model": "gpt-4o", "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}},
    }
    router = router_for(tmp_path, config)
    models = router.catalog().models
    assert (models["mini"].price.input_per_1m, models["mini"].price.output_per_1m) == (0.15, 0.6)
    assert models["mini"].price_source.startswith("genai-prices 0.") and models["mine"].price_source == "catalog"
    session = session_for(router, local, routed("summary", provider="mini"))
    (r,) = session.run(family.tasks["summary"], make_items(1)).results
    assert r.cost_usd == pytest.approx((r.tokens_in * 0.15 + r.tokens_out * 0.6) / 1e6)
    assert session.stats().as_metadata()["llm.price_source.mini"] == models["mini"].price_source


def test_a_model_without_a_known_price_is_refused_at_load(tmp_path):
    config = catalog("http://127.0.0.1:9/v1", endpoint_overrides={"price_provider": "openai"})
    config["models"] = {"ghost": {"endpoint": "testllm", "model": "no-such-model-7"},
                        "local-box": {"endpoint": "other", "model": "gpt-4o-mini"}}
    config["endpoints"]["other"] = {"base_url": "http://127.0.0.1:9/v1"}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    lines = str(err.value).splitlines()
    assert any(line.startswith(f"{path}: models.ghost.price: no price, and genai-prices does not know it")
               for line in lines), lines
    assert any("models.local-box.price: no price, and the price table cannot tell who serves" in line
               and "endpoints.other.price_provider" in line for line in lines), lines
