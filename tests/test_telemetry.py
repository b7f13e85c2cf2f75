"""OpenTelemetry spans of model calls: GenAI attributes on remote and local calls, content only when enabled."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from resources import telemetry
from tests.openai_server import OpenAICompatServer
from tests.router_fixtures import SECRET, catalog, make_items, routed, router_for, session_for
from tests.router_fixtures import family, local, warehouse  # noqa: F401 - pytest fixtures


@pytest.fixture
def spans(monkeypatch):
    monkeypatch.delenv(telemetry.CAPTURE_ENV, raising=False)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        telemetry.set_tracer_provider(None)
        provider.shutdown()


def everything_in(span) -> str:
    return json.dumps({"attrs": dict(span.attributes), "events": [(e.name, dict(e.attributes)) for e in span.events]})


def test_remote_calls_emit_genai_spans_without_content(family, local, tmp_path, warehouse, spans):
    with OpenAICompatServer(usage=(120, 30), model_version="test-small-2026-01") as srv:
        router = router_for(tmp_path, catalog(srv.url))
        items = make_items(2)
        session_for(router, local, routed("summary"), warehouse=warehouse).run(family.tasks["summary"], items)
        first = spans.get_finished_spans()
        session_for(router, local, routed("summary"), warehouse=warehouse).run(family.tasks["summary"], items)
        again = spans.get_finished_spans()[len(first):]

    assert [s.name for s in first] == ["chat test-small", "chat test-small"]
    a = dict(first[0].attributes)
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "test-small" and a["gen_ai.response.model"] == "test-small-2026-01"
    assert a["gen_ai.usage.input_tokens"] == 120 and a["gen_ai.usage.output_tokens"] == 30
    assert a["aiop.family"] == "support_triage" and a["aiop.task"] == "summary" and a["aiop.endpoint"] == "testllm"
    assert a["aiop.cost_usd"] == pytest.approx((120 * 1.0 + 30 * 4.0) / 1e6) and a["aiop.cache_hit"] is False
    assert a["aiop.prompt_version"] and "error.type" not in a and first[0].kind == trace.SpanKind.CLIENT
    # the second run is answered from the cache: a span says so, with nothing spent
    assert [dict(s.attributes)["aiop.cache_hit"] for s in again] == [True, True]
    assert all(dict(s.attributes)["aiop.cost_usd"] == 0 for s in again)
    # no message content, no key, no header by default
    for s in first:
        assert not s.events
        text = everything_in(s)
        assert "jane.doe" not in text and "charged twice" not in text and SECRET not in text
        assert "authorization" not in text.lower()


def test_local_batches_emit_one_span_each(family, local, spans):
    from resources.router.catalog import ModelCatalog
    from resources.router.session import RouterSession
    from resources.router.routes import Budget

    session = RouterSession(ModelCatalog(), family="support_triage", routes={}, budget=Budget(), local=local, remote={})
    session.run(family.tasks["category"], make_items(5))
    (span,) = spans.get_finished_spans()
    a = dict(span.attributes)
    assert span.name == "predict fake-local-1"
    assert a["gen_ai.operation.name"] == "predict" and a["gen_ai.provider.name"] == "local"
    assert a["gen_ai.request.model"] == "fake-local-1" and a["gen_ai.response.model"] == "1"
    assert a["aiop.items"] == 5 and a["aiop.errors"] == 0 and a["aiop.task"] == "category"
    assert a["gen_ai.usage.input_tokens"] == 0 and a["aiop.cost_usd"] == 0 and not span.events


def test_content_is_captured_redacted_only_when_enabled(family, local, tmp_path, warehouse, spans, monkeypatch):
    monkeypatch.setenv(telemetry.CAPTURE_ENV, "true")
    with OpenAICompatServer() as srv:
        router = router_for(tmp_path, catalog(srv.url))
        session_for(router, local, routed("summary"), warehouse=warehouse).run(family.tasks["summary"], make_items(1))
    (span,) = spans.get_finished_spans()
    events = {e.name: e.attributes[e.name] for e in span.events}
    assert set(events) == {"gen_ai.input.messages", "gen_ai.output.messages"}
    sent = json.loads(events["gen_ai.input.messages"])
    assert "charged twice" in sent[1]["content"] and "[EMAIL]" in sent[1]["content"]
    assert "jane.doe0@example.com" not in everything_in(span) and SECRET not in everything_in(span)
    assert "[T-0000]" in json.loads(events["gen_ai.output.messages"])[0]["content"]["summary"]


def test_a_failing_call_has_error_type_and_its_fallback_is_traced(family, local, tmp_path, warehouse, spans):
    with OpenAICompatServer() as srv:
        srv.fail("server_error")
        router = router_for(tmp_path, catalog(srv.url))
        session_for(router, local, routed("summary"), warehouse=warehouse).run(family.tasks["summary"], make_items(1))
    remote, fallback = sorted(spans.get_finished_spans(), key=lambda s: s.attributes["gen_ai.provider.name"] != "openai")
    a = dict(remote.attributes)
    assert a["error.type"] == "server_error" and a["aiop.fallback_reason"] == "server_error"
    assert a["aiop.attempts"] == 3 and remote.status.status_code == trace.StatusCode.ERROR
    assert dict(fallback.attributes)["gen_ai.provider.name"] == "local" and "error.type" not in fallback.attributes


class _Collector(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers.get("Content-Type"), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_export_is_set_up_only_by_the_otel_variables(monkeypatch):
    for name in (*telemetry.ENDPOINT_ENVS, "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    telemetry.set_tracer_provider(None)
    assert telemetry.configure_from_env({}) is None
    assert telemetry.configure_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}) is None
    assert not telemetry.enabled() and telemetry.start_remote(None) is None
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert not [t for t in threading.enumerate() if "Otel" in t.name or "BatchSpan" in t.name]

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    provider = None
    try:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{httpd.server_address[1]}", "OTEL_SERVICE_NAME": "t"}
        provider = telemetry.configure_from_env(env)
        provider.get_tracer("t").start_span("chat test-small").end()
        assert provider.force_flush(5000)
        (path, kind, body) = _Collector.received[-1]
        assert path == "/v1/traces" and kind == "application/x-protobuf" and b"chat test-small" in body
    finally:
        if provider is not None:
            provider.shutdown()
        httpd.shutdown()
        httpd.server_close()
