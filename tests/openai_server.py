"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks ``POST /v1/chat/completions`` (with ``usage``) and answers from the request itself, for
any task of any family: it reads the answer's JSON schema from ``response_format.json_schema.schema``
(or, for ``json_object`` / no response format, from the ``JSON schema:`` line of the system prompt),
the record from the JSON user message, and returns a valid, deterministic instance of the schema:

- an enum (``label``): :func:`label_for` (the first label whose name appears in the record text,
  else the first label), or a per-test ``label_for=`` / ``answers=`` hook;
- ``confidence``: the ``confidence`` setting; a sentiment ``score``: from a few keywords;
- strings mention the record id (``summary`` is ``"[<id>] <first text field>"``);
- ``cited_ids``: the first document id given; a list of enum values (flags): the values whose name
  appears in the text; an optional number: the first number in the text, else null.

Faults can be injected per request: ``server_error`` (500), ``unavailable`` (503), ``rate_limit``
(429 with ``Retry-After``), ``hang`` (no answer for ``hang_s``: the client times out),
``malformed_json`` (a 200 whose body is not JSON), ``wrong_schema`` (valid JSON content of the wrong
shape), ``truncated`` (a 200 cut off at ``max_tokens``: ``finish_reason: length``),
``content_filter`` (``finish_reason: content_filter``, no content), ``bad_request_500`` (llama.cpp's
500 for a request it cannot take: ``"1 validation error: ..."``) and ``auth`` (a 401 whose message echoes
the bearer key, the worst case for leaking secrets).

``dialect="llama_cpp"`` answers like llama-cpp-python's server: a ``json_schema`` response format
is refused with that 500, the schema is read from ``{"type": "json_object", "schema": ...}``.
``prompt_tokens_per_char`` makes ``usage.prompt_tokens`` that many per character of the messages
(1.0 is three times the old chars/3 estimate, what a byte-level tokenizer on a tiny vocabulary
reports); ``send_usage=False`` leaves ``usage`` out.

Every request is recorded (path, headers, JSON body, arrival time) so tests can assert what the
model saw. Use it in-process (``with OpenAICompatServer() as server: server.url``) or as a separate
process (``python tests/openai_server.py --latency 0.2``; prints ``READY <url>``; ``GET /_stats``
returns request counts).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Sequence

if __package__ in (None, ""):  # run as a script (python tests/openai_server.py): make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.openai_answers import SchemaAnswer, label_for  # noqa: E402

FAULT_KINDS = ("server_error", "unavailable", "rate_limit", "hang", "malformed_json", "wrong_schema", "auth",
               "truncated", "content_filter", "bad_request_500")
# llama-cpp-python's server's answer to a response_format it does not take (an HTTP 500: its route
# handler turns the request's validation error into an internal_server_error)
LLAMA_CPP_REFUSAL = ("1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                     "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}")
SCHEMA_MARKER = "JSON schema: "  # as resources/providers/prompts.py writes it

_TASK_RE = re.compile(r"^Task:\s*(\w+)", re.M)
# the content of a `wrong_schema` answer: valid JSON, wrong shape for every task type
WRONG_SCHEMA = {"answer": "I think it is fine", "label": "banana", "flags": "all of them", "confidence": "high"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    at: float  # time.monotonic() on arrival
    fault: str | None = None

    def _message(self, role: str) -> str | None:
        for msg in (self.body or {}).get("messages", []) if isinstance(self.body, dict) else []:
            if msg.get("role") == role:
                return msg.get("content") or ""
        return None

    @property
    def system(self) -> str:
        return self._message("system") or ""

    @property
    def task(self) -> str | None:
        """The task name from the system prompt's ``Task: <name>`` line."""
        m = _TASK_RE.search(self.system)
        return m.group(1) if m else None

    @property
    def response_format(self) -> dict[str, Any] | None:
        rf = self.body.get("response_format") if isinstance(self.body, dict) else None
        return rf if isinstance(rf, dict) else None

    @property
    def schema(self) -> dict[str, Any] | None:
        """The answer's JSON schema: from ``response_format``, else from the system prompt."""
        rf = self.response_format or {}
        if rf.get("type") == "json_schema":
            return (rf.get("json_schema") or {}).get("schema")
        if rf.get("type") == "json_object" and isinstance(rf.get("schema"), dict):
            return rf["schema"]
        for line in self.system.splitlines():
            if line.startswith(SCHEMA_MARKER):
                try:
                    return json.loads(line[len(SCHEMA_MARKER):])
                except json.JSONDecodeError:
                    return None
        return None

    @property
    def user_payload(self) -> dict[str, Any]:
        content = self._message("user")
        if content is None:
            return {}
        try:
            payload = json.loads(content)
        except json.JSONDecodeError:
            return {"text": {"text": content}}
        return payload if isinstance(payload, dict) else {}

    @property
    def record_id(self) -> str | None:
        return self.user_payload.get("id")

    @property
    def text(self) -> str:
        """The record's text fields joined by newlines."""
        text = self.user_payload.get("text") or {}
        return "\n".join(str(v) for v in text.values()) if isinstance(text, dict) else str(text)


AnswerHook = Callable[[RecordedRequest, dict], "dict | None"]


@dataclass
class _Fault:
    kind: str
    remaining: int | None  # None = every request until cleared


@dataclass
class ServerSettings:
    latency_s: float = 0.0
    retry_after_s: float = 0.0
    hang_s: float = 30.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ("server_error",)
    seed: int = 0
    confidence: float = 0.93
    # fixed (prompt, completion) usage for every answer; None = derived from the text
    usage: tuple[int, int] | None = None
    # report completion_tokens = the request's max_tokens (makes cost exactly predictable)
    completion_tokens_from_max_tokens: bool = False
    # the served model version in the response (None = echo the requested model)
    model_version: str | None = None
    # usage.prompt_tokens per character of the messages (None: chars/4 + 1)
    prompt_tokens_per_char: float | None = None
    send_usage: bool = True
    dialect: str = "openai"  # or "llama_cpp" (see the module doc)
    fault_when: Callable[[RecordedRequest], str | None] | None = None
    # answers(request, schema) -> content dict, or None for the generic answer
    answers: AnswerHook | None = None
    label_for: Callable[[str, Sequence[str]], str] = label_for
    extra: dict[str, Any] = field(default_factory=dict)


class OpenAICompatServer:
    """Threaded HTTP/1.1 server with keep-alive; one handler thread per connection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **settings: Any) -> None:
        self.settings = ServerSettings(**settings)
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._rng = random.Random(self.settings.seed)
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> "OpenAICompatServer":
        server = self

        class Handler(_Handler):
            owner = server

        httpd = _Server((self._host, self._port), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "OpenAICompatServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The ``base_url`` for the OpenAI SDK."""
        return f"http://{self._host}:{self.port}/v1"

    # ---- faults and records --------------------------------------------------------------
    def fail(self, kind: str, times: int | None = None) -> None:
        """Inject ``kind`` for the next ``times`` chat requests (every request when ``None``)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(_Fault(kind, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self.settings.fault_rate = 0.0
            self.settings.fault_when = None

    def reset(self) -> None:
        """Forget recorded requests (faults stay)."""
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def call_count(self) -> int:
        return len(self.chat_requests)

    def _choose_fault(self, rec: RecordedRequest) -> str | None:
        with self._lock:
            if self._faults:
                fault = self._faults[0]
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.popleft()
                return fault.kind
            if self.settings.fault_when is not None:
                kind = self.settings.fault_when(rec)
                if kind:
                    return kind
            if self.settings.fault_rate > 0 and self._rng.random() < self.settings.fault_rate:
                return self._rng.choice(self.settings.fault_kinds)
        return None

    # ---- answers ---------------------------------------------------------------------------
    def answer_content(self, rec: RecordedRequest) -> dict[str, Any]:
        """The answer to a request: the test's ``answers`` hook, else a generic instance of the schema."""
        schema = rec.schema
        if schema is None:
            return {"error": "no JSON schema in the request"}
        if self.settings.answers is not None:
            custom = self.settings.answers(rec, schema)
            if custom is not None:
                return custom
        return SchemaAnswer(rec, self.settings).build(schema)

    def completion(self, rec: RecordedRequest, content: str, finish_reason: str = "stop") -> dict[str, Any]:
        body = rec.body if isinstance(rec.body, dict) else {}
        prompt_chars = sum(len(m.get("content") or "") for m in body.get("messages", []))
        if self.settings.usage is not None:
            prompt_tokens, completion_tokens = self.settings.usage
        else:
            prompt_tokens = prompt_chars // 4 + 1
            completion_tokens = len(content) // 4 + 1
        if self.settings.prompt_tokens_per_char is not None:
            prompt_tokens = int(prompt_chars * self.settings.prompt_tokens_per_char)
        if self.settings.completion_tokens_from_max_tokens:
            completion_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or completion_tokens)
        n = len(self.requests)
        out = {
            "id": f"chatcmpl-test-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.settings.model_version or body.get("model", "test-model"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        if not self.settings.send_usage:
            del out["usage"]
        return out


class _Server(ThreadingHTTPServer):
    # the default listen backlog of 5 drops SYNs when 32 clients connect at once (1 s retransmit)
    request_queue_size = 256


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAICompatServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm plus
        # the client's delayed ACK add ~40 ms to every keep-alive response
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        return

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def do_GET(self) -> None:  # noqa: N802
        owner = self.owner
        if self.path.rstrip("/").endswith("/_stats"):
            with owner._lock:
                n = len(owner.requests)
                faults = sum(1 for r in owner.requests if r.fault)
            self._json(200, {"requests": n, "faults": faults})
        elif self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:  # noqa: N802
        owner = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = None
        rec = RecordedRequest(
            method="POST",
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=raw,
            at=time.monotonic(),
        )
        if not self.path.rstrip("/").endswith("/chat/completions"):
            with owner._lock:
                owner.requests.append(rec)
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        if not isinstance(body, dict) or not body.get("messages"):
            with owner._lock:
                owner.requests.append(rec)
            self._json(400, {"error": {"message": "messages required", "type": "invalid_request_error"}})
            return
        rec.fault = owner._choose_fault(rec)
        with owner._lock:
            owner.requests.append(rec)
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
        try:
            self._answer(rec)
        finally:
            with owner._lock:
                owner.in_flight -= 1

    def _answer(self, rec: RecordedRequest) -> None:
        owner = self.owner
        settings = owner.settings
        if settings.latency_s:
            time.sleep(settings.latency_s)
        fault = rec.fault
        rf = rec.response_format or {}
        if fault is None and settings.dialect == "llama_cpp" and rf.get("type") == "json_schema":
            fault = "bad_request_500"
        if fault == "bad_request_500":
            self._json(500, {"error": {"message": LLAMA_CPP_REFUSAL, "type": "internal_server_error"}})
        elif fault == "truncated":
            answer = json.dumps(owner.answer_content(rec))
            self._json(200, owner.completion(rec, answer[: len(answer) // 2], finish_reason="length"))
        elif fault == "content_filter":
            self._json(200, owner.completion(rec, "", finish_reason="content_filter"))
        elif fault == "server_error":
            self._json(500, {"error": {"message": "injected server error", "type": "server_error"}})
        elif fault == "unavailable":
            self._json(503, {"error": {"message": "injected unavailable", "type": "server_error"}})
        elif fault == "rate_limit":
            self._json(
                429,
                {"error": {"message": "injected rate limit", "type": "rate_limit_exceeded"}},
                {"Retry-After": f"{settings.retry_after_s:g}"},
            )
        elif fault == "hang":
            owner._stopping.wait(settings.hang_s)
            self.close_connection = True
            self._json(200, owner.completion(rec, json.dumps(owner.answer_content(rec))))
        elif fault == "malformed_json":
            self._send(200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "mess')
        elif fault == "auth":
            key = rec.headers.get("authorization", "").removeprefix("Bearer ")
            self._json(401, {"error": {"message": f"Incorrect API key provided: {key}", "type": "invalid_request_error",
                                       "code": "invalid_api_key"}})
        elif fault == "wrong_schema":
            self._json(200, owner.completion(rec, json.dumps(WRONG_SCHEMA)))
        else:
            self._json(200, owner.completion(rec, json.dumps(owner.answer_content(rec))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-kinds", default="server_error,rate_limit,malformed_json,wrong_schema")
    parser.add_argument("--retry-after", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--confidence", type=float, default=0.93, help="confidence in every answer that has one")
    args = parser.parse_args(argv)
    server = OpenAICompatServer(
        args.host,
        args.port,
        latency_s=args.latency,
        fault_rate=args.fault_rate,
        fault_kinds=tuple(k for k in args.fault_kinds.split(",") if k),
        retry_after_s=args.retry_after,
        seed=args.seed,
        confidence=args.confidence,
    ).start()
    print(f"READY {server.url}", flush=True)
    try:
        sys.stdin.read()  # serve until stdin closes (the parent exits or closes the pipe)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
