"""The OpenAI-compatible provider through the real SDK against the local test server."""

import email.utils
import json
import time

import pytest

from resources.providers.base import KBArticle, Task, TicketInput
from resources.providers.openai import (
    OpenAIProvider,
    PreparedCall,
    ProviderCallError,
    parse_retry_after,
    system_prompt,
)
from resources.routing_config import EndpointConfig, ModelConfig, Price
from tests.openai_server import OpenAICompatServer, expected_priority, expected_sentiment

KEY = "sk-provider-test-91c2d"


def provider(url: str, **model_overrides) -> OpenAIProvider:
    fields = dict(
        endpoint="test",
        model="test-model",
        params={"temperature": 0, "max_tokens": 64},
        price=Price(input_per_1m=2.0, output_per_1m=8.0),
    )
    model = ModelConfig(**{**fields, **model_overrides})
    return OpenAIProvider(
        model, EndpointConfig(base_url=url, timeout_s=1.0), api_key=KEY, endpoint_name="test"
    )


def ticket(i: int = 1, **kw) -> TicketInput:
    base = dict(
        ticket_id=f"P-{i}",
        subject="Outage: everything is down",
        body="This is unacceptable, my team cannot work. Call me on +44 20 7946 0958, mail ops@acme.example.",
        channel="chat",
    )
    base.update(kw)
    return TicketInput(**base)


@pytest.fixture
def server():
    with OpenAICompatServer() as srv:
        yield srv


def test_every_task_round_trips_through_the_sdk(server):
    p = provider(server.url)
    articles = [KBArticle(article_id="KB-7", title="Status page", body="See status.example for outages.")]
    t = ticket(articles=articles, category="technical_issue")
    out = {task: p.run(task, [t])[0] for task in Task}

    assert all(r.ok and r.path == "llm" for r in out.values())
    assert out[Task.prioritize].priority == expected_priority(t.text) == "urgent"
    assert out[Task.sentiment].sentiment == expected_sentiment(t.text)[0] == "negative"
    assert out[Task.summarize].summary.startswith("[P-1] ")
    assert out[Task.draft_reply].cited_article_ids == ["KB-7"]
    assert "P-1" in out[Task.draft_reply].draft
    r = out[Task.classify]
    assert r.cost_usd == pytest.approx((r.tokens_in * 2 + r.tokens_out * 8) / 1e6) and r.tokens_in > 0
    assert r.model_version == "test-model" and r.prompt_hash == p.prompt_hash(Task.classify)
    assert server.call_count == 5 and {req.task for req in server.chat_requests} == {t.value for t in Task}


def test_external_text_is_redacted_and_counted(server):
    p = provider(server.url)
    result = p.run(Task.summarize, [ticket()])[0]
    sent = server.chat_requests[0].user_payload
    assert "ops@acme.example" not in json.dumps(sent) and "7946" not in json.dumps(sent)
    assert result.redactions >= 2
    # the draft task sees account tier and articles, the classify task does not need them
    call = p.prepare(Task.classify, ticket())
    assert set(json.loads(call.messages[1]["content"])) == {"ticket_id", "subject", "body", "channel"}


def test_invalid_answers_are_failed_attempts(server):
    p = provider(server.url)
    call = p.prepare(Task.classify, ticket())
    with pytest.raises(ProviderCallError) as err:
        p._parse(call, '{"category": "weather", "confidence": 0.9}', 10, 5, None)
    assert err.value.kind == "invalid_output" and err.value.retryable and err.value.tokens_out == 5
    with pytest.raises(ProviderCallError, match="not JSON"):
        p._parse(call, "Sure! The category is billing.", 10, 5, None)
    fenced = p._parse(call, '```json\n{"category": "billing", "confidence": 0.8}\n```', 10, 5, None)
    assert fenced.category == "billing" and fenced.probabilities == {"billing": 0.8}

    draft_call = p.prepare(Task.draft_reply, ticket(articles=[KBArticle(article_id="KB-1", title="t", body="b")]))
    with pytest.raises(ProviderCallError, match="unknown article"):
        p._parse(draft_call, '{"draft": "Hi", "cited_article_ids": ["KB-999"]}', 10, 5, None)


def test_plain_run_makes_one_attempt_and_reports_the_error(server):
    server.fail("server_error", times=1)
    results = provider(server.url).run(Task.classify, [ticket(1)])
    assert server.call_count == 1
    assert results[0].error.startswith("server_error: HTTP 500") and results[0].category is None


def test_prompt_hash_changes_with_the_prompt_or_params(server):
    a = provider(server.url)
    b = provider(server.url, params={"temperature": 0.7, "max_tokens": 64})
    assert a.prompt_hash(Task.classify) != a.prompt_hash(Task.summarize)
    assert a.prompt_hash(Task.classify) != b.prompt_hash(Task.classify)
    assert "Task: classify" in system_prompt(Task.classify)


def test_cost_estimate_is_an_upper_bound(server):
    p = provider(server.url)
    call: PreparedCall = p.prepare(Task.summarize, ticket())
    result = p.run(Task.summarize, [ticket()])[0]
    assert p.estimate_cost(call) >= result.cost_usd


def test_retry_after_parsing():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after({"retry-after": date}) <= 31
    assert parse_retry_after({}) is None and parse_retry_after({"retry-after": "soon"}) is None
