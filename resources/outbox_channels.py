"""The outbox's channels: a JSON file written atomically, and a webhook POST with an idempotency key."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

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


def file_json(payload: Mapping[str, Any]) -> str:
    """A delivery file's text: ``json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True, default=str)``.

    With ``indent`` the standard library encodes in pure Python (about 40 us for a payload); a
    flat payload of scalars, the common one, is laid out the same way from the C encoder's pieces.
    """
    if payload and all(type(k) is str for k in payload) and all(type(v) in _SCALARS for v in payload.values()):
        enc = _ONE_LINE.encode
        return "{\n" + ",\n".join(f"  {enc(k)}: {enc(payload[k])}" for k in sorted(payload)) + "\n}"
    return json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True, default=str)


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
