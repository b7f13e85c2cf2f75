"""One ingest request as a batch: validated like a dropped file, deduplicated, written atomically to the inbox.

Records are checked by the file ingestion's own parser (:func:`~orchestration_assets.core.records.parse_bytes`
on the request's records as JSON Lines, one record per line), so a rejected row carries the same field
and reason as it would in ``quarantined_records``. The accepted records are written as one JSON Lines
file into the family's inbox, where its inbox sensor takes it and the normal workflow run follows.

Nothing accepted is lost and nothing is taken twice: inside one warehouse transaction the request is
looked up by its key (the ``Idempotency-Key`` header, else the body's SHA-256, per family and source),
record ids accepted before are set aside as duplicates, the request and its record ids are inserted
(unique constraints, so of two concurrent identical requests one fails and is answered as a replay),
and the batch file is written, fsynced and renamed into place; only then is the transaction committed
and the response sent. A crash before the commit leaves at most a batch the retried request
does not repeat (its ids are refused by the batch run as already ingested); a crash after it loses nothing.
"""

import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..core.records import ParseResult, parse_bytes
from ..family import Family
from ..spec_inputs import MAX_ID_LENGTH
from .tokens import ensure_schema, now_iso

REQUESTS_TABLE = "service_ingest_requests"
RECORDS_TABLE = "service_ingest_records"
_IN_CHUNK = 500  # ids per IN (...) lookup: well under every database's parameter limit

metadata = sa.MetaData()
requests_table = sa.Table(
    REQUESTS_TABLE,
    metadata,
    sa.Column("family", sa.String(100), primary_key=True),
    sa.Column("source", sa.String(40), primary_key=True),
    sa.Column("request_key", sa.String(300), primary_key=True),  # "key:<Idempotency-Key>" or "body:<sha256>"
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("batch_file", sa.String(200), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)
records_table = sa.Table(
    RECORDS_TABLE,
    metadata,
    sa.Column("family", sa.String(100), primary_key=True),
    sa.Column("record_id", sa.String(MAX_ID_LENGTH), primary_key=True),
    sa.Column("batch_file", sa.String(200), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)


class Conflict(Exception):
    """The request reuses an Idempotency-Key with another body; nothing was written."""


@dataclass
class Outcome:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


def record_lines(records: list[Any]) -> list[str]:
    """Each record as one JSON Lines line; a lone surrogate (legal in JSON text) stays \\u-escaped."""
    lines = []
    for r in records:
        line = json.dumps(r, ensure_ascii=False, separators=(",", ":"))
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            line = json.dumps(r, ensure_ascii=True, separators=(",", ":"))
        lines.append(line)
    return lines


def validate(lines: list[str], family: Family, request_name: str) -> ParseResult:
    """The request's records parsed exactly as a dropped ``.jsonl`` file of these lines would be."""
    return parse_bytes("\n".join(lines).encode("utf-8") + b"\n", request_name, family.record)


def rejected_rows(parsed: ParseResult) -> list[dict[str, Any]]:
    return [
        {"index": int(r["source_row"]) - 1, "row": int(r["source_row"]), "record_id": r["record_id"],
         "field": r["field"], "reason": r["reason"]}
        for r in parsed.quarantined.astype(object).where(parsed.quarantined.notna(), None).to_dict(orient="records")
    ]


def batch_name(source: str) -> str:
    """Oldest first by name, as the inbox sensor takes files; unique without coordination."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"api-{stamp}-{source}-{secrets.token_hex(3)}.jsonl"


def write_atomically(folder: Path, name: str, data: bytes) -> Path:
    """``data`` as ``folder/name``, complete or not at all, and durable once this returns."""
    tmp = folder / f".{name}.tmp"  # a temporary name the inbox sensor skips
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        final = folder / name
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)
    return final


def _seen(conn: sa.Connection, family: Family, ids: list[str]) -> dict[str, str]:
    """id -> batch for ids already accepted by the API or ingested from a file."""
    seen: dict[str, str] = {}
    raw = family.table("raw_records")
    has_raw = sa.inspect(conn).has_table(raw)
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start:start + _IN_CHUNK]
        rows = conn.execute(sa.select(records_table.c.record_id, records_table.c.batch_file).where(
            records_table.c.family == family.name, records_table.c.record_id.in_(chunk))).all()
        seen.update(dict(rows))
        if has_raw:
            rows = conn.execute(sa.text(f'SELECT record_id, "_partition" FROM "{raw}" WHERE record_id IN :ids')
                                .bindparams(sa.bindparam("ids", expanding=True)), {"ids": chunk}).all()
            for rid, batch in rows:
                seen.setdefault(rid, batch)
    return seen


def _prior(conn: sa.Connection, family: str, source: str, key: str, body_sha: str) -> Outcome | None:
    row = conn.execute(sa.select(requests_table).where(
        requests_table.c.family == family, requests_table.c.source == source,
        requests_table.c.request_key == key)).first()
    if row is None:
        return None
    if row.body_sha256 != body_sha:
        raise Conflict(f"Idempotency-Key {key.removeprefix('key:')!r} was already used by source {source!r} for "
                       "a request with another body; send a new key for new records")
    return Outcome(row.status_code, {**json.loads(row.response), "replayed": True}, replayed=True)


def ingest(engine: sa.Engine, family: Family, folder: Path, source: str, records: list[Any], *,
           idempotency_key: str | None, body_sha: str) -> Outcome:
    """Validate, deduplicate and write one request's records; the response to send, or the first one's."""
    ensure_schema(engine, metadata)
    key = f"key:{idempotency_key}" if idempotency_key else f"body:{body_sha}"
    lines = record_lines(records)
    name = batch_name(source)
    parsed = validate(lines, family, name)
    for attempt in range(3):
        try:
            return _ingest_once(engine, family, folder, source, lines, parsed, name, key, body_sha)
        except sa.exc.IntegrityError:
            # a concurrent request committed the same key or ids first: look again, it is a replay or duplicates
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _ingest_once(engine: sa.Engine, family: Family, folder: Path, source: str, lines: list[str],
                 parsed: ParseResult, name: str, key: str, body_sha: str) -> Outcome:
    written: Path | None = None
    with engine.connect() as conn:
        tx = conn.begin()  # BEGIN IMMEDIATE on SQLite: identical requests queue here, one at a time
        try:
            good = parsed.records
            seen = _seen(conn, family, list(good["record_id"]))
            # looked up after the ids: on PostgreSQL each statement sees what committed before it, so a
            # concurrent twin that committed in between shows here as a replay, not as duplicates
            prior = _prior(conn, family.name, source, key, body_sha)
            if prior is not None:
                tx.rollback()
                return prior
            dup = good["record_id"].isin(seen.keys())
            accepted = good[~dup]
            body = {
                "family": family.name, "source": source, "received": parsed.rows_in,
                "batch": name if len(accepted) else None,
                "accepted": list(accepted["record_id"]),
                "rejected": rejected_rows(parsed),
                "duplicates": [{"index": int(r["source_row"]) - 1, "record_id": r["record_id"],
                                "reason": f"{family.id_field} {r['record_id']!r} was already accepted in batch "
                                          f"{seen[r['record_id']]!r}"}
                               for r in good[dup].to_dict(orient="records")],
                "replayed": False,
            }
            status = 422 if not len(accepted) and body["rejected"] else 200
            if not len(accepted):  # nothing written: answering it again gives the same answer
                tx.rollback()
                return Outcome(status, body)
            created = now_iso()
            conn.execute(sa.insert(requests_table), {
                "family": family.name, "source": source, "request_key": key, "body_sha256": body_sha,
                "status_code": status, "response": json.dumps(body, ensure_ascii=False), "batch_file": name,
                "created_at": created})
            conn.execute(sa.insert(records_table), [
                {"family": family.name, "record_id": rid, "batch_file": name, "created_at": created}
                for rid in body["accepted"]])
            rows = accepted["source_row"].astype(int).tolist()
            data = "".join(lines[r - 1] + "\n" for r in rows).encode("utf-8")
            written = write_atomically(folder, name, data)
            tx.commit()
            return Outcome(status, body)
        except BaseException:
            if tx.is_active:
                tx.rollback()
            if written is not None:  # not committed: the retry (or the client's) writes it again
                written.unlink(missing_ok=True)
            raise
