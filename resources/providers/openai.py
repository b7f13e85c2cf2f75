"""The OpenAI-compatible provider: any chat-completions endpoint (OpenAI, Azure, vLLM, Ollama).

One HTTP call answers one task for one record. The prompt comes from the task definition
(:mod:`resources.providers.prompts`); the answer's shape is the task's ``output_model``, its JSON
schema sent with every request in the endpoint's structured-output dialect (``json_schema``,
llama.cpp's ``json_object_schema``, ``json_object`` or ``none``: see :mod:`resources.router.catalog`).
The answer is validated with the output model, then
:meth:`~resources.providers.definition.TaskDefinition.accept` (e.g. a draft may cite only the
documents it was given); any failure is a failed attempt of kind ``invalid_output``. An answer cut
off by ``max_tokens`` (``finish_reason: length``) is ``truncated``, one withheld by the server's
filter ``content_filter``: neither is worth sending again.

The model recorded on a result is the one configured (``model_id`` / ``model_version``); what the
response's ``model`` field says is kept apart as ``served_model``, as some servers echo any id.

It is ``external``: record text is PII-redacted before it leaves the process, and the count is
recorded on the result.

This module makes single attempts (:meth:`OpenAIProvider.acall`). Retries with backoff, rate
limits, cooldowns, cache and budgets belong to :mod:`resources.router`. The plain ``run()`` of the
provider interface makes one attempt per item and returns a result with ``error`` set for the items
that failed.

Why not ``dagster_openai.OpenAIResource``: it wraps the *sync* ``openai.Client`` only, has no
per-call timeout or ``max_retries`` setting, and records usage only inside an asset context. The
router needs the async client (bounded concurrency), ``max_retries=0`` with its own retry policy,
per-call timeouts and its own token/cost accounting, so it uses the ``openai`` SDK directly.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from pydantic import BaseModel, Field, ValidationError

from resources.concurrency import run_coroutine
from resources.providers.call_errors import (  # noqa: F401 - the provider's errors, re-exported
    DETERMINISTIC_FAILURES,
    ERROR_KINDS,
    ProviderCallError,
    classify_exception,
    parse_retry_after,
    scrub,
)
from resources.providers.base import Item, ModelProvider, TaskResult, content_hash, error_result
from resources.providers.definition import InvalidAnswer, TaskDefinition
from resources.providers.prompts import PROMPT_VERSION, record_payload, system_prompt, user_message
from resources.providers.tasks import TASK_TYPES

if TYPE_CHECKING:  # pragma: no cover
    from openai import AsyncOpenAI

    from resources.router.catalog import EndpointConfig, ModelConfig


class _Message(BaseModel):
    content: str | None = None


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatCompletionBody(BaseModel):
    """The part of a chat-completions response body the provider reads."""

    model: str | None = None
    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


# ---- calls ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskPrompt:
    """What every call of one task on one model shares."""

    system: str
    response_format: dict[str, Any] | None
    prompt_hash: str
    extra_chars: int  # UTF-8 bytes of the schema sent beside the messages (servers may put it in the prompt)


@dataclass
class PreparedCall:
    task: TaskDefinition
    item: Item
    prompt: TaskPrompt
    messages: list[dict[str, str]]
    redactions: int
    tokens_in_bound: int  # what the prompt cannot exceed (tokens_in_bound()); budgets and TPM reserve it

    def corrected(self, problem: str) -> "PreparedCall":
        """This call with a corrective message: a deterministic model is never sent the same request twice."""
        note = {"role": "user", "content": f"Your previous answer was not accepted: {problem}. Answer again "
                                           "with only a JSON object that matches the JSON schema."}
        messages = [*self.messages, note]
        return PreparedCall(self.task, self.item, self.prompt, messages, self.redactions,
                            tokens_in_bound(messages, self.prompt.extra_chars))


@dataclass
class CallOutcome:
    result: TaskResult
    tokens_in: int
    tokens_out: int
    latency_ms: float


# Chat-template overhead, in tokens: the role markers a server wraps around each message and the
# assistant prefix after the last one. ChatML spelled out byte by byte (a vocabulary without its
# special tokens) is ~30 bytes per message; llama-2's [INST] <<SYS>> ... [/INST] is less.
TEMPLATE_TOKENS_PER_MESSAGE = 32
TEMPLATE_TOKENS_PER_CALL = 32


def tokens_in_bound(messages: Sequence[dict[str, str]], extra_bytes: int = 0) -> int:
    """An upper bound on a prompt's tokens, for any tokenizer we may meet, without one at hand.

    No tokenizer makes more tokens than its input's UTF-8 bytes once it falls back to bytes:
    byte-level BPE (OpenAI's, Llama 3's) at most one per byte; SentencePiece with byte fallback
    (Llama 2's) the same, except that it first turns each space into "▁" (3 bytes), so spaces
    count 3. Plus the chat template's framing (``TEMPLATE_TOKENS_*``) and the schema (``extra_bytes``).
    A character estimate is no bound: a real server counted 3x chars/3.
    """
    size = extra_bytes
    for m in messages:
        text = m.get("content") or ""
        size += len(text.encode("utf-8")) + 2 * text.count(" ")
    return size + TEMPLATE_TOKENS_PER_MESSAGE * len(messages) + TEMPLATE_TOKENS_PER_CALL


# llama.cpp turns a schema into a grammar whose string rules repeat once per allowed character: a bound of a
# few thousand makes it give up on the grammar ("exceeds sane defaults") and the server then crashes
# mid-generation (seen with llama-cpp-python 0.3.36 and maxLength 2000). Larger bounds are left to the
# answer's own validation, which enforces every bound of the task's schema after the call anyway.
GRAMMAR_MAX_REPEAT = 500


def grammar_schema(schema: Any) -> Any:
    """The schema without string-length bounds above :data:`GRAMMAR_MAX_REPEAT` (for grammar-constrained servers)."""
    if isinstance(schema, dict):
        return {k: grammar_schema(v) for k, v in schema.items()
                if not (k in ("maxLength", "minLength") and isinstance(v, int) and v > GRAMMAR_MAX_REPEAT)}
    if isinstance(schema, list):
        return [grammar_schema(v) for v in schema]
    return schema


@functools.cache
def _shared_ssl_context() -> Any:
    """One TLS context per process: loading the CA bundle costs ~60 ms per client otherwise."""
    try:
        import httpx2

        return httpx2.create_ssl_context()
    except Exception:  # noqa: BLE001 - fall back to the SDK's own per-client default
        return None


async def _with_deadline(coro: Any, seconds: float) -> Any:
    """Await ``coro`` with a hard deadline (``asyncio.timeout``: no extra task per call)."""
    async with asyncio.timeout(seconds):
        return await coro


def _strip_fences(content: str) -> str:
    s = content.strip()
    m = re.match(r"^```(?:json)?\s*(.*?)\s*```$", s, re.S)
    return m.group(1) if m else s


class OpenAIProvider(ModelProvider):
    """One model on one OpenAI-compatible endpoint."""

    external = True

    def __init__(self, model: "ModelConfig", endpoint: "EndpointConfig", *, api_key: str | None,
                 endpoint_name: str = "openai", model_name: str | None = None) -> None:
        self.model = model
        self.endpoint = endpoint
        self.name = endpoint_name
        self.model_name = model_name or model.model
        self._api_key = api_key
        self._prompts: dict[int, tuple[TaskDefinition, TaskPrompt]] = {}

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIProvider(endpoint={self.name!r}, model={self.model.model!r})"

    @property
    def has_key(self) -> bool:
        return bool(self._api_key) or not self.endpoint.api_key_required

    def supports(self, task: TaskDefinition) -> bool:
        return task.type in TASK_TYPES

    def prompt(self, task: TaskDefinition) -> TaskPrompt:
        """The task's system prompt and response format on this model (computed once per task)."""
        hit = self._prompts.get(id(task))
        if hit is not None and hit[0] is task:  # holding the task keeps its id from being reused
            return hit[1]
        system = system_prompt(task)
        mode = self.structured_output
        response_format: dict[str, Any] | None = None
        if mode == "json_schema":
            response_format = {"type": "json_schema", "json_schema": {"name": task.name, "schema": task.json_schema(),
                                                                      "strict": False}}
        elif mode == "json_object_schema":
            response_format = {"type": "json_object", "schema": grammar_schema(task.json_schema())}
        elif mode == "json_object":
            response_format = {"type": "json_object"}
        schema_bytes = len(json.dumps(response_format).encode("utf-8")) if mode.endswith("schema") else 0
        prompt = TaskPrompt(
            system=system,
            response_format=response_format,
            prompt_hash=content_hash(PROMPT_VERSION, system, self.model.model, self.model.request_params, mode),
            extra_chars=schema_bytes,
        )
        self._prompts[id(task)] = (task, prompt)
        return prompt

    def prompt_hash(self, task: TaskDefinition) -> str:
        return self.prompt(task).prompt_hash

    @property
    def structured_output(self) -> str:
        """The structured-output dialect of this model: its own, else its endpoint's."""
        return self.model.structured_output or self.endpoint.structured_output

    def input_hash(self, task: TaskDefinition, item: Item) -> str:
        """Hash of everything about the record that reaches the prompt (before redaction)."""
        return content_hash(task.key, record_payload(task, item, redact=False)[0])

    def prepare(self, task: TaskDefinition, item: Item) -> PreparedCall:
        prompt = self.prompt(task)
        payload, redactions = record_payload(task, item, redact=True)
        messages = [{"role": "system", "content": prompt.system}, {"role": "user", "content": user_message(payload)}]
        return PreparedCall(task, item, prompt, messages, redactions, tokens_in_bound(messages, prompt.extra_chars))

    def estimate_cost(self, call: PreparedCall) -> float:
        """Upper-bound cost of one attempt: the prompt's token bound plus the full ``max_tokens`` output."""
        return self.model.cost(call.tokens_in_bound, self.model.max_tokens)

    def make_client(self) -> "AsyncOpenAI":
        """A new async client; create it inside the event loop that will use it."""
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        ssl_context = _shared_ssl_context()
        http_client = (
            DefaultAsyncHttpxClient(verify=ssl_context, timeout=self.endpoint.timeout_s) if ssl_context else None
        )
        return AsyncOpenAI(
            api_key=self._api_key or "not-needed",
            base_url=self.endpoint.base_url,
            timeout=self.endpoint.timeout_s,
            max_retries=0,
            default_headers=self.endpoint.headers or None,
            http_client=http_client,
        )

    async def acall(self, client: "AsyncOpenAI", call: PreparedCall) -> CallOutcome:
        """One attempt. Raises :class:`ProviderCallError` on any failure, including invalid output."""
        body: dict[str, Any] = {"model": self.model.model, "messages": call.messages, **self.model.request_params}
        if call.prompt.response_format is not None:
            body.setdefault("response_format", call.prompt.response_format)
        start = time.perf_counter()
        try:
            # client.post is the SDK's documented call for raw request bodies: the same auth, timeouts
            # and status-error mapping as chat.completions.create, minus re-walking our plain-dict
            # body through the SDK's TypedDict transform and building untyped-validated models (half
            # the client CPU per call at 32 in flight). The body is validated below with pydantic.
            raw = await _with_deadline(
                client.post("/chat/completions", body=body, cast_to=bytes,
                            options={"timeout": self.endpoint.timeout_s}),
                # a hard deadline on top of the SDK's per-read timeout, for servers that trickle bytes
                self.endpoint.timeout_s + 1.0,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a classified attempt error
            raise classify_exception(exc, [self._api_key]) from None
        latency_ms = (time.perf_counter() - start) * 1000
        try:
            response = ChatCompletionBody.model_validate_json(raw)
        except ValidationError as err:
            kind = "not JSON" if any(e["type"] == "json_invalid" for e in err.errors()) else "not a chat completion"
            raise ProviderCallError("malformed_response", f"response body is {kind}") from None
        usage = response.usage
        # without usage the bound is charged: what the server may have counted, never less
        tokens_in = usage.prompt_tokens if usage else call.tokens_in_bound
        tokens_out = usage.completion_tokens if usage else self.model.max_tokens
        choice = response.choices[0]
        if choice.finish_reason in ("length", "content_filter"):
            kind = "truncated" if choice.finish_reason == "length" else "content_filter"
            what = (f"cut off at max_tokens={self.model.max_tokens}" if kind == "truncated"
                    else "withheld by the server's filter")
            raise ProviderCallError(kind, f"{call.task.name} answer {what}", tokens_in=tokens_in, tokens_out=tokens_out)
        result = self.parse(call, choice.message.content or "", tokens_in, tokens_out, response.model)
        result.latency_ms = latency_ms
        return CallOutcome(result, tokens_in, tokens_out, latency_ms)

    def parse(self, call: PreparedCall, content: str, tokens_in: int, tokens_out: int,
              served_model: str | None) -> TaskResult:
        """The result of an answer's content; raises ``invalid_output`` unless it is a valid answer."""
        task, item = call.task, call.item
        try:
            answer = task.output_model.model_validate(json.loads(_strip_fences(content)))
            output, confidence = task.accept(answer, item)
        except (json.JSONDecodeError, ValidationError, InvalidAnswer) as err:
            if isinstance(err, json.JSONDecodeError):
                detail = "is not JSON"
            elif isinstance(err, ValidationError):  # name the key, never echo the (record) value
                errors = err.errors()
                where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
                detail = f"does not match the schema ({len(errors)} error(s); first: {where or 'top level'})"
            else:
                detail = f"was rejected: {err}"
            raise ProviderCallError("invalid_output", f"{task.name} answer {detail}", tokens_in=tokens_in,
                                    tokens_out=tokens_out) from None
        return TaskResult(
            record_id=item.id, task=task.name, output=output, confidence=confidence, provider=self.name,
            model_id=self.model.model, model_version=self.model.model, served_model=served_model,
            prompt_hash=call.prompt.prompt_hash, input_hash=item.input_hash,
            tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=self.model.cost(tokens_in, tokens_out),
            path="llm", redactions=call.redactions,
        )

    def error_result(self, task: TaskDefinition, item: Item, error: str, **extra: Any) -> TaskResult:
        return error_result(task, item, self.name, scrub(error, [self._api_key]), model_id=self.model.model,
                            model_version=self.model.model, prompt_hash=self.prompt_hash(task), path="llm", **extra)

    # ---- the plain provider interface: one attempt per item ----------------------------------
    def run(self, task: TaskDefinition, items: Sequence[Item]) -> list[TaskResult]:
        return run_coroutine(self._arun(task, list(items)))

    async def _arun(self, task: TaskDefinition, items: list[Item]) -> list[TaskResult]:
        sem = asyncio.Semaphore(self.endpoint.max_concurrency)
        client = self.make_client()

        async def one(item: Item) -> TaskResult:
            call = self.prepare(task, item)
            async with sem:
                try:
                    return (await self.acall(client, call)).result
                except ProviderCallError as err:
                    return self.error_result(
                        task, item, str(err), tokens_in=err.tokens_in, tokens_out=err.tokens_out,
                        cost_usd=self.model.cost(err.tokens_in, err.tokens_out), redactions=call.redactions,
                    )

        try:
            return list(await asyncio.gather(*(one(i) for i in items)))
        finally:
            await client.close()
