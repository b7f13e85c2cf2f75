"""A SIMULATED LLM behind a real OpenAI-compatible HTTP server, for bench/cascade.py.

It answers ``POST /v1/chat/completions`` for classify tasks and knows the right label of every
record from a golden file the bench writes (JSON ``{record_id: label}``): that is the simulation.
Its answer is right with probability ``--accuracy`` (default 0.95) and otherwise a uniformly chosen
other label of the request's schema. Both draws come from a seeded hash of the record id, so a
re-run (or another threshold of the same sweep) gets the same answer for the same record, and the
errors do not depend on the order or the concurrency of the calls.

What a client sees is the real protocol: the answer's JSON schema is read from the request
(``response_format`` ``json_schema``, llama.cpp's ``json_object`` + ``schema``, or the ``JSON schema:``
line of the system prompt), the latency is an ``asyncio.sleep`` per call (many calls wait at once, as
against a hosted API), and each answer carries ``usage``. Token counts are those of a word and
punctuation tokenizer (``\\w+|[^\\w\\s]``, plus 4 tokens per message, OpenAI's chat overhead): an
approximation of a BPE tokenizer, which this machine cannot download; the price per token is the
bench's. A record the golden file does not have gets a 400 naming it.

    python bench/sim_llm_server.py --golden FILE [--accuracy 0.95] [--latency-ms 300] [--seed 20261201]

prints ``READY <base_url>`` once it listens on 127.0.0.1 (a free port unless ``--port``) and serves
until SIGTERM / SIGINT.
"""


import argparse
import asyncio
import hashlib
import json
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

SCHEMA_MARKER = "JSON schema: "  # the last line of resources/providers/prompts.py's system prompt
_TOKEN = re.compile(r"\w+|[^\w\s]")
MESSAGE_OVERHEAD_TOKENS = 4


def unit_draw(seed: int, record_id: str, salt: str) -> float:
    """A deterministic number in [0, 1) for (seed, record, salt)."""
    digest = hashlib.sha256(f"{seed}\x1f{salt}\x1f{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def simulated_label(record_id: str, truth: str, labels: list[str], accuracy: float, seed: int) -> str:
    """The simulated model's label: ``truth`` with probability ``accuracy``, else another label, uniformly."""
    if unit_draw(seed, record_id, "right") < accuracy:
        return truth
    others = sorted(label for label in labels if label != truth)
    if not others:
        return truth
    return others[int(unit_draw(seed, record_id, "other") * len(others))]


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def request_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    rf = body.get("response_format")
    if isinstance(rf, dict):
        if rf.get("type") == "json_schema":
            return (rf.get("json_schema") or {}).get("schema")
        if isinstance(rf.get("schema"), dict):  # llama.cpp's dialect
            return rf["schema"]
    for msg in body.get("messages") or []:
        if msg.get("role") == "system":
            for line in str(msg.get("content") or "").splitlines():
                if line.startswith(SCHEMA_MARKER):
                    try:
                        return json.loads(line[len(SCHEMA_MARKER):])
                    except json.JSONDecodeError:
                        return None
    return None


def label_enum(schema: dict[str, Any]) -> list[str] | None:
    prop = (schema.get("properties") or {}).get("label") or {}
    if "$ref" in prop:
        prop = (schema.get("$defs") or {}).get(prop["$ref"].rsplit("/", 1)[-1], {})
    enum = prop.get("enum")
    return [str(v) for v in enum] if isinstance(enum, list) and enum else None


def record_id_of(body: dict[str, Any]) -> str | None:
    for msg in body.get("messages") or []:
        if msg.get("role") == "user":
            try:
                payload = json.loads(msg.get("content") or "")
            except json.JSONDecodeError:
                return None
            return str(payload.get("id")) if isinstance(payload, dict) and payload.get("id") is not None else None
    return None


class Simulation:
    def __init__(self, golden: dict[str, str], accuracy: float, latency_s: float, confidence: float, seed: int):
        self.golden, self.accuracy, self.latency_s = golden, accuracy, latency_s
        self.confidence, self.seed = confidence, seed
        self.calls = 0

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for one chat completion request."""
        if not isinstance(body, dict) or not body.get("messages"):
            return 400, _error("messages required")
        schema = request_schema(body)
        labels = label_enum(schema) if schema else None
        if not labels:
            return 400, _error("the simulated LLM answers classify tasks only: no label enum in the answer's schema")
        record_id = record_id_of(body)
        truth = self.golden.get(record_id or "")
        if truth is None:
            return 400, _error(f"record {record_id!r} is not in the simulation's golden file")
        label = simulated_label(record_id, truth, labels, self.accuracy, self.seed)
        content = json.dumps({"label": label, "confidence": self.confidence})
        prompt_tokens = sum(count_tokens(str(m.get("content") or "")) + MESSAGE_OVERHEAD_TOKENS
                            for m in body["messages"]) + 3
        completion_tokens = count_tokens(content)
        self.calls += 1
        return 200, {
            "id": f"chatcmpl-sim-{self.calls}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "sim-llm"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error"}}


def build_app(sim: Simulation):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(title="simulated LLM (bench)")

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return JSONResponse(_error("the body is not JSON"), status_code=400)
        await asyncio.sleep(sim.latency_s)
        status, payload = sim.answer(body)
        return JSONResponse(payload, status_code=status)

    @app.get("/_stats")
    async def stats() -> dict[str, int]:
        return {"calls": sim.calls}

    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", required=True, help="JSON file {record_id: right label}")
    ap.add_argument("--accuracy", type=float, default=0.95, help="probability that an answer is right")
    ap.add_argument("--latency-ms", type=float, default=300.0)
    ap.add_argument("--confidence", type=float, default=0.99, help="the confidence every answer states")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    if not 0.0 <= args.accuracy <= 1.0:
        print(f"error: --accuracy must be from 0 to 1, got {args.accuracy}", file=sys.stderr)
        return 2
    golden = json.loads(Path(args.golden).read_text(encoding="utf-8"))
    sim = Simulation(golden, args.accuracy, args.latency_ms / 1000.0, args.confidence, args.seed)

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    # the client opens up to its concurrency of keep-alive connections at once
    config = uvicorn.Config(build_app(sim), log_level="warning", access_log=False, backlog=512,
                            timeout_keep_alive=30, lifespan="off")
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            print(f"READY http://127.0.0.1:{port}/v1", flush=True)
        await task

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
