"""The record-ingest API: ``POST /api/families/{family}/records`` with a per-source bearer token.

The body is one JSON record, a JSON array of records, or ``{"records": [...]}``. The answer lists the
accepted ids, the rejected rows (index, field, reason: the reasons of file quarantine) and the ids
already accepted before (duplicates, not written again). Status: 200 when at least one record was
accepted, or when every valid record was a duplicate; 422 when no record was accepted and some were
rejected; 400 for a body that is not JSON of those shapes; 401 for a missing, unknown or revoked
token; 403 for a family the token is not scoped to; 404 for an unknown family; 413 for a body over
``max_request_bytes`` (refused from Content-Length before reading, or while streaming a chunked body)
or more than ``max_batch_records`` records. Every error is a JSON object with an ``error`` message
naming the request; none carries a stack trace or the token.
"""

import hashlib
import json
import logging
import os
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from resources.sources import Inbox
from resources.warehouse import engine_for

from ..family import Family
from ..ingestion import inbox_folder
from ..loading import load_families
from .ingest_batches import Conflict, ingest
from .settings import ServiceSettings
from .tokens import authenticate

log = logging.getLogger(__name__)
MAX_KEY_CHARS = 200


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "request": f"{request.method} {request.url.path}"}, status_code=status,
                        headers=headers)


def _bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _Refused(401, "missing API token: send the header 'Authorization: Bearer <token>' "
                            "(tokens come from `workflow-service token create`)", {"WWW-Authenticate": "Bearer"})
    return value.strip()


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes (never read whole first)."""
    too_big = f"request body over the limit of {limit} bytes; send the records in smaller batches"
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise _Refused(400, f"Content-Length {declared[:40]!r} is not a number of bytes")
        if int(declared) > limit:
            raise _Refused(413, too_big)
    buf = bytearray()
    async for chunk in request.stream():  # a chunked body has no Content-Length: count as it arrives
        buf += chunk
        if len(buf) > limit:
            raise _Refused(413, too_big)
    return bytes(buf)


def _records(body: bytes, max_records: int) -> list[Any]:
    if not body.strip():
        raise _Refused(400, "empty request body; send a JSON record, an array of records or {\"records\": [...]}")
    try:
        doc = json.loads(body)
    except UnicodeDecodeError:
        raise _Refused(400, "request body is not UTF-8 text; send JSON encoded as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _Refused(400, f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if isinstance(doc, dict) and set(doc) == {"records"} and isinstance(doc["records"], list):
        records = doc["records"]
    elif isinstance(doc, list):
        records = doc
    elif isinstance(doc, dict):
        records = [doc]
    else:
        raise _Refused(400, f"request body is a JSON {type(doc).__name__}; send a JSON record (an object), "
                            "an array of records or {\"records\": [...]}")
    if not records:
        raise _Refused(400, "the request holds no records")
    if len(records) == 1 and not isinstance(records[0], dict):  # as one line, the file parser would call it an array
        raise _Refused(400, f"the request's record is a JSON {type(records[0]).__name__}, not an object")
    if len(records) > max_records:
        raise _Refused(413, f"{len(records)} records in one request; at most {max_records} are accepted, "
                            "send them in smaller batches")
    return records


def _fingerprint(records: list[Any]) -> str:
    """The records' SHA-256 in a canonical spelling: a resent body is the same request whatever its whitespace."""
    canonical = json.dumps(records, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_CHARS or not key.isascii() or not key.isprintable():
        raise _Refused(400, f"Idempotency-Key must be 1-{MAX_KEY_CHARS} printable ASCII characters")
    return key


def ingest_router(settings: ServiceSettings, inbox: Inbox | None = None,
                  families: dict[str, Family] | None = None) -> APIRouter:
    """The ingest endpoints over ``settings``' warehouse and families; batches go to ``inbox`` (default INBOX_DIR).

    ``families`` (name -> family) saves loading the defs folder again when the app has loaded it.
    """
    families = families if families is not None else {f.name: f for f in load_families(settings.defs_folder)}
    inbox = inbox or Inbox(root=os.getenv("INBOX_DIR", ""))
    router = APIRouter(tags=["ingest"])

    @router.post("/api/families/{family}/records")
    async def post_records(family: str, request: Request):
        try:
            return await _post(family, request)
        except _Refused as refused:
            return _error(request, refused.status, refused.message, refused.headers)
        except Exception:  # the operator's log has the traceback; the caller gets no internals
            log.exception("ingest request to family %r failed", family[:100])
            return _error(request, 500, "internal error while ingesting; no record of this request was accepted, "
                                        "send it again (a replay is never accepted twice)")

    async def _post(name: str, request: Request) -> JSONResponse:
        token = await run_in_threadpool(authenticate, settings.warehouse_url, _bearer(request))
        if token is None:
            raise _Refused(401, "API token not recognised or revoked", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        family = families.get(name)
        if family is None:
            raise _Refused(404, f"no family named {name[:100]!r}; families: {', '.join(sorted(families))}")
        if name not in token.families:
            raise _Refused(403, f"the API token of source {token.source!r} may not post to family {name!r} "
                                f"(it is scoped to {', '.join(token.families)})")
        if "jsonl" not in family.spec.source.formats:
            raise _Refused(409, f"family {name!r} takes no JSON Lines batches (source.formats in its defs.yaml), "
                                "and the ingest API writes its batches as JSON Lines")
        content_type = request.headers.get("content-type", "application/json")
        if "json" not in content_type.lower():
            raise _Refused(415, f"Content-Type {content_type[:80]!r}: send application/json")
        key = _idempotency_key(request)
        body = await _read_body(request, settings.max_request_bytes)
        records = _records(body, settings.max_batch_records)
        try:
            outcome = await run_in_threadpool(
                ingest, engine_for(settings.warehouse_url), family, inbox_folder(family, inbox), token.source,
                records, idempotency_key=key, body_sha=_fingerprint(records))
        except Conflict as exc:
            raise _Refused(422, str(exc)) from None
        b = outcome.body
        log.info("%s: source %s%s: %d accepted, %d rejected, %d duplicate(s)%s", name, token.source,
                 " (replayed)" if outcome.replayed else "", len(b["accepted"]), len(b["rejected"]),
                 len(b["duplicates"]), f" -> {b['batch']}" if b["batch"] else "")
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
        return JSONResponse(b, status_code=outcome.status_code, headers=headers)

    return router
