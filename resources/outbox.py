"""The outbox connector: approved outputs leave the platform here, exactly once per record.

Each family's outputs are written as JSON files to its folder under the outbox root (default
``<data dir>/outbox/<family>``) and, when a webhook URL is set, POSTed to it. One delivery ledger
table in the warehouse, keyed by (family, record id), makes delivery idempotent across re-runs,
concurrent runs and crashes:

1. **claim**: a row keyed by (family, record id) is committed with status ``claimed`` before
   anything is sent; a record already ``delivered`` is skipped, and a claim held by a live
   dispatcher is left alone;
2. **send**: the file is written atomically (temp file, fsync, rename) under a name derived
   from the record id; the webhook gets the payload with
   ``Idempotency-Key: dispatch:<family>:<record id>``;
3. **mark delivered**: the ledger row becomes ``delivered``.

A dispatcher that dies between 1 and 3 leaves an in-doubt claim. Once its lease has expired, the
next run takes it over: a file that is already in the folder is not written again, and the
webhook is called again with the same idempotency key (plain HTTP cannot tell whether the first
call arrived, so receivers dedupe on the key). Nothing is lost and nothing is sent twice to the
folder; the webhook sees at most one repeat, carrying the same key, per crashed item.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from .providers.base import content_hash
from .warehouse import Warehouse, data_dir

LEDGER_TABLE = "dispatch_ledger"
_meta = sa.MetaData()
ledger_table = sa.Table(
    LEDGER_TABLE,
    _meta,
    sa.Column("family", sa.String(100), primary_key=True),
    sa.Column("record_id", sa.String(200), primary_key=True),  # with the family: the exactly-once key
    sa.Column("status", sa.String(20), nullable=False),  # claimed / delivered / failed
    sa.Column("claim_token", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("source", sa.String(40), nullable=True),
    sa.Column("payload_hash", sa.String(64), nullable=True),
    sa.Column("file_path", sa.Text, nullable=True),
    sa.Column("webhook_status", sa.Integer, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("claimed_at", sa.String(40), nullable=False),
    sa.Column("delivered_at", sa.String(40), nullable=True),
)


class DeliveryError(RuntimeError):
    """A channel refused or could not take a delivery."""


@dataclass
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)  # sent by this call
    already_delivered: int = 0  # skipped: the ledger says they went out before
    recovered: list[str] = field(default_factory=list)  # in-doubt claims of a crashed dispatcher, completed now
    held_elsewhere: int = 0  # claimed by a dispatcher that is still within its lease
    failed: dict[str, str] = field(default_factory=dict)  # record id -> reason (retried by the next run)

    def as_metadata(self) -> dict[str, int]:
        return {
            "delivered": len(self.delivered),
            "already_delivered": self.already_delivered,
            "recovered_in_doubt": len(self.recovered),
            "held_elsewhere": self.held_elsewhere,
            "failed": len(self.failed),
        }


def ensure_ledger(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _meta.create_all(conn, tables=[ledger_table], checkfirst=True)


def read_ledger(engine: sa.Engine, status: str | None = None, family: str | None = None) -> pd.DataFrame:
    ensure_ledger(engine)
    stmt = sa.select(ledger_table).order_by(ledger_table.c.claimed_at, ledger_table.c.record_id)
    if status:
        stmt = stmt.where(ledger_table.c.status == status)
    if family:
        stmt = stmt.where(ledger_table.c.family == family)
    with engine.connect() as conn:
        return pd.read_sql(stmt, conn)


def safe_file_name(record_id: str) -> str:
    """A file name for a record id; ids with unsafe characters get a hash suffix so names stay unique."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", record_id)[:100]
    return f"{safe}.json" if safe == record_id else f"{safe}-{content_hash(record_id)[:8]}.json"


def atomic_write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON so a reader sees the whole file or none of it (temp file + fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, ensure_ascii=False, indent=2, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - platforms without directory fsync
        pass


def post_json(url: str, payload: Mapping[str, Any], *, idempotency_key: str, timeout: float,
              attempts: int = 3, backoff: float = 0.2) -> int:
    """POST ``payload``; retries connection errors and 5xx with backoff; returns the 2xx status."""
    import httpx  # only a deployment with a webhook pays for it

    body = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)
    headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            resp = httpx.post(url, content=body.encode("utf-8"), headers=headers, timeout=timeout)
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
    raise DeliveryError(f"webhook {_display_host(url)} did not accept the delivery: {last}")


def _display_host(url: str) -> str:
    """The URL without credentials, query or path (which may hold tokens), for messages."""
    import httpx

    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}{':' + str(parsed.port) if parsed.port else ''}"


def _now() -> str:
    return pd.Timestamp.now(tz="UTC").isoformat()


def _jsonable(v: Any) -> Any:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return v


class Dispatcher:
    """Delivers items through the ledger protocol; plain Python, used by the ``Outbox`` resource."""

    def __init__(self, engine: sa.Engine, family: str, folder: Path, webhook_url: str = "", *, timeout: float = 10.0,
                 lease_seconds: float = 60.0) -> None:
        self.engine = engine
        self.family = family
        self.folder = Path(folder)
        self.webhook_url = webhook_url
        self.timeout = timeout
        self.lease_seconds = lease_seconds
        ensure_ledger(engine)

    # ---- the protocol ------------------------------------------------------------------------
    def claim(self, record_id: str, *, run_id: str | None, source: str | None, payload_hash: str) -> tuple[str, str | None]:
        """('new' | 'recovered' | 'retry', token) when this dispatcher now owns the record, else ('delivered' | 'held', None)."""
        token = uuid.uuid4().hex
        now = _now()
        t = ledger_table
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(t).where(t.c.family == self.family, t.c.record_id == record_id)).mappings().first()
            if row is None:
                try:
                    conn.execute(sa.insert(t).values(
                        family=self.family, record_id=record_id, status="claimed", claim_token=token, run_id=run_id, source=source,
                        payload_hash=payload_hash, attempts=1, claimed_at=now))
                except sa.exc.IntegrityError:  # another dispatcher claimed it a moment ago
                    return "held", None
                return "new", token
            if row["status"] == "delivered":
                return "delivered", None
            if row["status"] == "claimed":
                age = (pd.Timestamp(now) - pd.Timestamp(row["claimed_at"])).total_seconds()
                if age < self.lease_seconds:
                    return "held", None
                outcome = "recovered"
            else:  # failed: retry
                outcome = "retry"
            taken = conn.execute(
                sa.update(t)
                .where(t.c.family == self.family, t.c.record_id == record_id, t.c.claim_token == row["claim_token"])
                .values(status="claimed", claim_token=token, run_id=run_id, claimed_at=now, error=None,
                        attempts=t.c.attempts + 1)
            ).rowcount
            return (outcome, token) if taken == 1 else ("held", None)

    def _finish(self, record_id: str, token: str, **values: Any) -> None:
        t = ledger_table
        with self.engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.family == self.family, t.c.record_id == record_id,
                                            t.c.claim_token == token).values(**values))

    def send(self, payload: Mapping[str, Any], *, in_doubt: bool) -> tuple[str, int | None]:
        """Write the file (unless an in-doubt claim already wrote it) and call the webhook; returns (path, status)."""
        path = self.folder / safe_file_name(str(payload["record_id"]))
        if not (in_doubt and path.exists()):
            atomic_write_json(path, payload)
        status = None
        if self.webhook_url:
            status = post_json(self.webhook_url, payload, idempotency_key=str(payload["delivery_id"]),
                               timeout=self.timeout)
        return str(path), status

    def deliver(self, items: pd.DataFrame | Iterable[Mapping[str, Any]], *, run_id: str | None = None,
                on_delivered: Callable[[str], None] | None = None) -> DeliveryReport:
        """Deliver each item (a mapping with ``record_id``) at most once, ever, per (family, record id)."""
        records = items.to_dict(orient="records") if isinstance(items, pd.DataFrame) else list(items)
        report = DeliveryReport()
        for item in records:
            tid = str(item["record_id"])
            payload = {k: _jsonable(v) for k, v in item.items()}
            payload["family"] = self.family
            payload["delivery_id"] = f"dispatch:{self.family}:{tid}"
            phash = content_hash(payload)
            outcome, token = self.claim(tid, run_id=run_id, source=payload.get("source"), payload_hash=phash)
            if token is None:
                if outcome == "delivered":
                    report.already_delivered += 1
                else:
                    report.held_elsewhere += 1
                continue
            payload["dispatched_at"] = _now()
            try:
                path, status = self.send(payload, in_doubt=outcome == "recovered")
            except (DeliveryError, OSError) as exc:
                self._finish(tid, token, status="failed", error=str(exc)[:2000])
                report.failed[tid] = str(exc)
                continue
            self._finish(tid, token, status="delivered", file_path=path, webhook_status=status,
                         delivered_at=payload["dispatched_at"])
            (report.recovered if outcome == "recovered" else report.delivered).append(tid)
            if on_delivered is not None:
                on_delivered(tid)
        return report


class Outbox(dg.ConfigurableResource):
    """Where approved outputs go: JSON files under ``folder`` (default ``<data dir>/outbox``), one
    sub-folder per family, and an HTTP POST per output when the family names a webhook URL
    variable. Exactly once per (family, record) (see module doc).
    """

    folder: str = ""
    timeout_seconds: float = 10.0
    lease_seconds: float = 60.0  # an unfinished claim older than this belongs to a crashed dispatcher

    @property
    def directory(self) -> Path:
        return Path(self.folder) if self.folder else data_dir() / "outbox"

    def dispatcher(self, warehouse: Warehouse, family: str, subfolder: str | None = None,
                   webhook_url: str = "") -> Dispatcher:
        return Dispatcher(warehouse.engine, family, self.directory / (subfolder or family), webhook_url,
                          timeout=self.timeout_seconds, lease_seconds=self.lease_seconds)

    def describe(self, family: str, subfolder: str | None = None, webhook_url: str = "") -> str:
        target = str(self.directory / (subfolder or family))
        return target + (f" + webhook {_display_host(webhook_url)}" if webhook_url else "")
