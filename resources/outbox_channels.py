"""The outbox's channels: a JSON file written atomically, and a webhook POST with an idempotency key."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from json.encoder import encode_basestring  # the C encoder json.dumps uses for a str
from pathlib import Path
from typing import Any, Mapping

from .outbox_ledger import UNHASHED, payload_hash
from .providers.base import content_hash

TEMP_SUFFIX = ".tmp"


class DeliveryError(RuntimeError):
    """A channel refused or could not take a delivery."""


def safe_file_name(record_id: str) -> str:
    """A file name for a record id; ids with unsafe characters get a hash suffix so names stay unique."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", record_id)[:100]
    return f"{safe}.json" if safe == record_id else f"{safe}-{content_hash(record_id)[:8]}.json"


_SCALARS = (str, int, float, bool, type(None))
_ONE_LINE = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)


def _scalar(v: Any) -> str:
    # a string straight to the C string encoder: JSONEncoder.encode builds a C encoder per call for the rest
    return encode_basestring(v) if type(v) is str else _ONE_LINE.encode(v)


def _pieces(payload: Mapping[str, Any]) -> list[tuple[str, str, str, str]] | None:
    """Sorted (key, encoded key, compact value, indented value) JSON pieces of a payload whose values are
    scalars or lists of scalars; None for anything else (the standard library lays that out)."""
    if not payload or not all(type(k) is str for k in payload):
        return None
    out = []
    for k in sorted(payload):
        v = payload[k]
        if type(v) in _SCALARS:
            text = _scalar(v)
            out.append((k, encode_basestring(k), text, text))
        elif type(v) is list and all(type(x) in _SCALARS for x in v):
            items = [_scalar(x) for x in v]
            out.append((k, encode_basestring(k), "[" + ", ".join(items) + "]",
                        "[\n    " + ",\n    ".join(items) + "\n  ]" if items else "[]"))
        else:
            return None
    return out


def _indented(pieces: list[tuple[str, str, str, str]]) -> str:
    return "{\n" + ",\n".join(f"  {ek}: {i}" for _, ek, _, i in pieces) + "\n}"


def file_json(payload: Mapping[str, Any]) -> str:
    """A delivery file's text: ``json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True, default=str)``.

    With ``indent`` the standard library encodes in pure Python (about 40 us for a payload); a
    payload of scalars and lists of scalars, the common one, is laid out the same way from the C
    encoder's pieces.
    """
    pieces = _pieces(payload)
    if pieces is not None:
        return _indented(pieces)
    return json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def delivery_texts(payload: Mapping[str, Any]) -> tuple[str, str, str]:
    """(ledger text, payload hash, file text) of one delivery, each value encoded once.

    The same strings as ``json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)``,
    :func:`~resources.outbox_ledger.payload_hash` and :func:`file_json`.
    """
    pieces = _pieces(payload)
    if pieces is None:
        return (json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str), payload_hash(payload),
                file_json(payload))
    pairs = [(k, f"{ek}: {c}") for k, ek, c, _ in pieces]
    hashed = "[{" + ", ".join(p for k, p in pairs if k != UNHASHED) + "}]"  # as content_hash lays out (payload,)
    digest = hashlib.sha256(hashed.encode("utf-8")).hexdigest()[:16]
    return "{" + ", ".join(p for _, p in pairs) + "}", digest, _indented(pieces)


def atomic_write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON so a reader sees the whole file or none of it (temp file + fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(file_json(payload))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - platforms without directory fsync
        pass


def post_json(url: str, payload: Mapping[str, Any], *, idempotency_key: str, timeout: float,
              attempts: int = 3, backoff: float = 0.2, client: Any = None) -> int:
    """POST ``payload``; retries connection errors and 5xx with backoff; returns the 2xx status.

    ``client``: an open ``httpx.Client`` to reuse (a new one per call costs ~0.1 s of TLS set-up).
    """
    import httpx  # only a deployment with a webhook pays for it

    body = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)
    headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            resp = (client or httpx).post(url, content=body.encode("utf-8"), headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if resp.status_code < 300:
                return resp.status_code
            last = f"HTTP {resp.status_code}"
            if resp.status_code < 500 and resp.status_code != 429:
                break  # the receiver refused it; retrying will not help
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    raise DeliveryError(f"webhook {display_host(url)} did not accept the delivery: {last}")


def display_host(url: str) -> str:
    """The URL without credentials, query or path (which may hold tokens), for messages."""
    import httpx

    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}{':' + str(parsed.port) if parsed.port else ''}"
