"""OpenTelemetry spans of model calls, following the GenAI semantic conventions.

Every model call the router makes emits one span: each remote model tried for an item (cache hits
included, ``aiop.cache_hit``), and each batch the local provider answers. Span names are
``"{gen_ai.operation.name} {gen_ai.request.model}"``:

==========================  =====================================  ==============================
attribute                   remote (OpenAI-compatible endpoint)    local (embedded models)
==========================  =====================================  ==============================
``gen_ai.operation.name``   ``chat``                               ``predict`` (custom value: no
                                                                   chat happens in-process)
``gen_ai.provider.name``    ``openai``                             ``local``
``gen_ai.request.model``    the model configured in the catalog    the local model id
``gen_ai.response.model``   the model the server says it served    the model version
``gen_ai.usage.*_tokens``   the usage the endpoint reported        0
``error.type``              the failure reason (``timeout`` ...)   the exception's type
==========================  =====================================  ==============================

plus ours: ``aiop.family``, ``aiop.task``, ``aiop.cost_usd``, ``aiop.cache_hit``,
``aiop.fallback_reason``, ``aiop.prompt_version``, ``aiop.endpoint``, ``aiop.attempts`` and, on
local batch spans, ``aiop.items`` / ``aiop.errors``. Local models answer in batches: one span per
batch (a span per item would cost more than the batch itself; ``bench/telemetry_overhead.py``
measures both).

Message content is not captured unless ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``;
then it is attached as span events (``gen_ai.input.messages`` / ``gen_ai.output.messages``), every
string PII-redacted with :func:`resources.redaction.redact`. Keys and headers are never attributes.

Export is configured only by the standard ``OTEL_*`` variables: OTLP over HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set and
``OTEL_SDK_DISABLED`` is not true (the exporter reads the other ``OTEL_EXPORTER_OTLP_*`` variables
itself, the resource reads ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``). Otherwise nothing
is set up: no provider, no exporter, no thread, and each hook returns after one check. A process
that already installed a tracer provider (``opentelemetry-instrument``) gets its spans there.
"""

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from opentelemetry import trace

TRACER_NAME = "aiop.router"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
REMOTE_OPERATION, LOCAL_OPERATION = "chat", "predict"
REMOTE_PROVIDER, LOCAL_PROVIDER = "openai", "local"

_lock = threading.Lock()
_state: dict[str, Any] = {"provider": None, "env_checked": False, "tracer": None}


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def configure_from_env(environ: Mapping[str, str] | None = None) -> Any:
    """A tracer provider exporting OTLP over HTTP, when the ``OTEL_*`` variables ask for one; else None."""
    env = os.environ if environ is None else environ
    if _true(env.get("OTEL_SDK_DISABLED")) or not any(env.get(k) for k in ENDPOINT_ENVS):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "aiop"}))
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not traces:  # the base endpoint gets the signal path, as the spec says
        traces = env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces)))
    return provider


def set_tracer_provider(provider: Any) -> None:
    """Send the platform's spans to ``provider`` (an app or a test owning its own); None: back to the env."""
    with _lock:
        _state["provider"] = provider
        _state["tracer"] = None
        _state["env_checked"] = provider is not None


def _provider() -> Any:
    """The provider spans go to, or None when tracing is off (the common case: one dict read)."""
    provider = _state["provider"]
    if provider is not None:
        return provider
    glob = trace.get_tracer_provider()
    if not isinstance(glob, trace.ProxyTracerProvider) and not isinstance(glob, trace.NoOpTracerProvider):
        return glob
    if _state["env_checked"]:
        return None
    with _lock:
        if not _state["env_checked"]:
            configured = configure_from_env()
            if configured is not None:
                trace.set_tracer_provider(configured)  # other instrumentations of the process share it
            _state["env_checked"] = True
    provider = trace.get_tracer_provider()
    return None if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)) else provider


def enabled() -> bool:
    return _provider() is not None


def _tracer() -> Any:
    provider = _provider()
    if provider is None:
        return None
    cached = _state.get("tracer")
    if cached is None or cached[0] is not provider:  # one tracer per provider, not one per span
        cached = _state["tracer"] = (provider, provider.get_tracer(TRACER_NAME))
    return cached[1]


def capture_content() -> bool:
    return _true(os.environ.get(CAPTURE_ENV))


def clock() -> int:
    """Now, in the nanoseconds spans are stamped with."""
    return time.time_ns()


def _redacted(value: Any) -> Any:
    from resources.redaction import redact

    if isinstance(value, str):
        return redact(value).text
    if isinstance(value, Mapping):
        return {str(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


def _content_event(span: Any, name: str, value: Any) -> None:
    span.add_event(name, {name: json.dumps(_redacted(value), ensure_ascii=False, default=str)})


def _bound_prompt(task: Any) -> str | None:
    """The registered prompt version the task answers with, when it is bound to one."""
    try:
        from resources.providers.prompts import prompt_version
    except ImportError:  # a platform without prompt versions: the prompt hash stands for it
        return None
    try:
        return prompt_version(task)
    except Exception:  # noqa: BLE001 - a span never fails a call
        return None


def _common(family: str, task: Any, result: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {"aiop.family": family, "aiop.task": task.name}
    prompt = (_bound_prompt(task) or getattr(result, "prompt_version", None)
              or getattr(result, "prompt_hash", None))
    if prompt:
        attrs["aiop.prompt_version"] = str(prompt)
    return attrs


# ---- remote calls ------------------------------------------------------------------------


@dataclass
class RemoteMark:
    """One model of an item's chain, from its start: what the item's trace held before it."""

    tracer: Any
    started_ns: int
    attempts: int
    tokens_in: int
    tokens_out: int
    cost_usd: float


def start_remote(trace_: Any) -> RemoteMark | None:
    """Mark the start of one chain model's turn for an item (None, at no cost, when tracing is off)."""
    tracer = _tracer()
    if tracer is None:
        return None
    return RemoteMark(tracer, time.time_ns(), trace_.attempts, trace_.tokens_in, trace_.tokens_out, trace_.cost_usd)


def end_remote(mark: RemoteMark | None, family: str, task: Any, provider: Any, item: Any, trace_: Any,
               result: Any = None, reason: str | None = None) -> None:
    """The span of one chain model's turn: ``result`` when it answered, else the failure ``reason``."""
    if mark is None:
        return
    model = provider.model.model
    cache_hit = bool(result is not None and trace_.cache_hit)
    attrs = {
        "gen_ai.operation.name": REMOTE_OPERATION, "gen_ai.provider.name": REMOTE_PROVIDER,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": int(trace_.tokens_in - mark.tokens_in),
        "gen_ai.usage.output_tokens": int(trace_.tokens_out - mark.tokens_out),
        "aiop.cost_usd": round(float(trace_.cost_usd - mark.cost_usd), 10),
        "aiop.cache_hit": cache_hit, "aiop.endpoint": str(provider.name),
        "aiop.attempts": int(trace_.attempts - mark.attempts),
        **_common(family, task, result),
    }
    if result is not None:
        served = getattr(result, "served_model", None) or getattr(result, "model_version", None)
        if served:
            attrs["gen_ai.response.model"] = str(served)
        if trace_.reason:  # an earlier model of the chain failed: this one answered in its place
            attrs["aiop.fallback_reason"] = trace_.reason
    else:
        attrs["error.type"] = reason or "unavailable"
        attrs["aiop.fallback_reason"] = reason or "unavailable"
    if "aiop.prompt_version" not in attrs:
        try:
            attrs["aiop.prompt_version"] = str(provider.prompt_hash(task))
        except Exception:  # noqa: BLE001 - a span never fails a call
            pass
    span = mark.tracer.start_span(f"{REMOTE_OPERATION} {model}", kind=trace.SpanKind.CLIENT,
                                  start_time=mark.started_ns, attributes=attrs)
    if result is None:
        span.set_status(trace.Status(trace.StatusCode.ERROR, reason or "unavailable"))
    if capture_content():
        try:
            _content_event(span, "gen_ai.input.messages", provider.prepare(task, item).messages)
        except Exception:  # noqa: BLE001
            pass
        if result is not None:
            _content_event(span, "gen_ai.output.messages", [{"role": "assistant", "content": result.output}])
    span.end()


# ---- local batches -----------------------------------------------------------------------


def local_batch(family: str, task: Any, provider: Any, items: Sequence[Any], results: Sequence[Any] | None,
                started_ns: int, error: BaseException | None = None) -> None:
    """The span of one batch the local provider answered (``error``: it raised for the whole batch)."""
    tracer = _tracer()
    if tracer is None:
        return
    first = results[0] if results else None
    model = str(getattr(first, "model_id", "") or getattr(provider, "name", "local"))
    tokens_in = tokens_out = errors = 0
    for r in results or ():  # one pass: a batch span must cost little next to the batch
        tokens_in += r.tokens_in
        tokens_out += r.tokens_out
        errors += r.error is not None
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": LOCAL_OPERATION, "gen_ai.provider.name": LOCAL_PROVIDER,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": int(tokens_in), "gen_ai.usage.output_tokens": int(tokens_out),
        "aiop.cost_usd": 0.0, "aiop.cache_hit": False, "aiop.endpoint": LOCAL_PROVIDER,
        "aiop.items": len(items), "aiop.errors": int(errors),
        **_common(family, task, first),
    }
    if first is not None and getattr(first, "model_version", None):
        attrs["gen_ai.response.model"] = str(first.model_version)
    if error is not None:
        attrs["error.type"] = type(error).__name__
    span = tracer.start_span(f"{LOCAL_OPERATION} {model}", kind=trace.SpanKind.INTERNAL, start_time=started_ns,
                             attributes=attrs)
    if error is not None:
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
    if capture_content():
        _content_event(span, "gen_ai.input.messages",
                       [{"role": "user", "id": getattr(i, "id", ""), "content": getattr(i, "text", "")} for i in items])
        if results:
            _content_event(span, "gen_ai.output.messages",
                           [{"role": "assistant", "id": r.record_id, "content": r.output} for r in results])
    span.end()
