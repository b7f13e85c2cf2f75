"""The outbox connector: approved outputs leave the platform here, exactly once per record.

Each family's outputs are written as JSON files to its folder under the outbox root (default
``<data dir>/outbox/<family>``) and, when a webhook URL is set, POSTed to it. One delivery ledger
table in the warehouse, keyed by (family, record id), makes delivery idempotent across re-runs,
concurrent runs and crashes:

1. **claim**: a row keyed by (family, record id) is committed with status ``claimed`` and the
   payload about to go out, before anything is sent; a record already ``delivered`` is skipped,
   and a claim held by a live dispatcher is left alone;
2. **send**: the file is written atomically (temp file, fsync, rename) under a name derived
   from the record id; the webhook gets the payload with
   ``Idempotency-Key: dispatch:<family>:<record id>``;
3. **mark delivered**: the ledger row becomes ``delivered``; its payload is what went out.

A dispatcher that dies between 1 and 3 leaves an in-doubt claim: :meth:`Dispatcher.in_doubt`
lists the claims held past their lease or by a run that has ended, so they can be reported. The
next run takes such a claim over and replays the stored payload: a file that is already in the
folder is not written again, and the webhook is called again with the same idempotency key and
body (plain HTTP cannot tell whether the first call arrived, so receivers dedupe on the key).
Nothing is lost and nothing is sent twice to the folder; the webhook sees at most one repeat,
carrying the same key, per crashed item. Temp files a crashed write left behind are removed by
the next delivery. Without a webhook the same three steps run a chunk of items at a time
(:mod:`.outbox_chunks`): one transaction and one file-system flush per chunk instead of per item.
"""

import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa

from .outbox_channels import (  # noqa: F401 - the notifier sends through the same channels
    TEMP_SUFFIX,
    DeliveryError,
    atomic_write_json,
    display_host,
    post_json,
    safe_file_name,
)
from .outbox_chunks import CHUNK, ChunkedDelivery, ChunkInterrupted
from .outbox_ledger import LEDGER_TABLE, Claim, ensure_ledger, ledger_table, payload_hash, read_ledger  # noqa: F401
from .warehouse import Warehouse, data_dir

@dataclass
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)  # sent by this call
    already_delivered: int = 0  # skipped: the ledger says they went out before
    recovered: list[str] = field(default_factory=list)  # in-doubt claims of a crashed dispatcher, completed now
    held: list[str] = field(default_factory=list)  # claimed by a dispatcher that is still within its lease
    failed: dict[str, str] = field(default_factory=dict)  # record id -> reason (retried by the next run)
    temp_files_removed: int = 0  # left in the folder by a write that crashed

    @property
    def held_elsewhere(self) -> int:
        return len(self.held)

    def as_metadata(self) -> dict[str, int]:
        return {
            "delivered": len(self.delivered),
            "already_delivered": self.already_delivered,
            "recovered_in_doubt": len(self.recovered),
            "held_elsewhere": self.held_elsewhere,
            "failed": len(self.failed),
            "temp_files_removed": self.temp_files_removed,
        }


class DispatchInterrupted(RuntimeError):
    """An unexpected error stopped the delivery loop; the record in flight is in doubt."""

    def __init__(self, record_id: str, reason: str, report: DeliveryReport) -> None:
        done = len(report.delivered) + len(report.recovered)
        super().__init__(f"delivery of {record_id!r} stopped by an unexpected error ({reason}); the {done} "
                         f"deliveries before it are recorded, {record_id!r} is in doubt and the next run retries it")
        self.record_id, self.report = record_id, report


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


def payload_of(family: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON document that goes out for one item (``dispatched_at`` is added when it is sent)."""
    return _addressed(family, {k: _jsonable(v) for k, v in item.items()})


def _addressed(family: str, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with the family it belongs to and its delivery id (one per record, ever)."""
    payload["family"] = family
    payload["delivery_id"] = f"dispatch:{family}:{payload['record_id']}"
    return payload


def payloads_of(family: str, items: pd.DataFrame | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """:func:`payload_of` of each item; a frame's values are converted a column at a time."""
    if not isinstance(items, pd.DataFrame):
        return [payload_of(family, item) for item in items]
    names, columns = list(items.columns), [_json_column(items.iloc[:, i]) for i in range(items.shape[1])]
    return [_addressed(family, dict(zip(names, row))) for row in zip(*columns)]


def _json_column(col: pd.Series) -> list[Any]:
    """The column's values as ``to_dict(orient="records")`` gives them, through :func:`_jsonable`."""
    values = col.tolist()  # Python scalars, Timestamps for datetimes
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iub":
        return values
    if isinstance(col.dtype, np.dtype) and col.dtype.kind == "f":
        return [None if v != v else v for v in values]
    # object and extension columns: to_dict turns NA into None and a numpy datetime into a Timestamp
    return [v if type(v) is str else None if v is pd.NA else
            _jsonable(pd.Timestamp(v) if isinstance(v, np.datetime64) else v) for v in values]


RunIsOver = Callable[[str], bool]  # run id -> has that run ended (so a claim it holds is in doubt)


class Dispatcher(ChunkedDelivery):
    """Delivers items through the ledger protocol; plain Python, used by the ``Outbox`` resource."""

    def __init__(self, engine: sa.Engine, family: str, folder: Path, webhook_url: str = "", *, timeout: float = 10.0,
                 lease_seconds: float = 60.0) -> None:
        self.engine = engine
        self.family = family
        self.folder = Path(folder)
        self.webhook_url = webhook_url
        self.timeout = timeout
        self.lease_seconds = lease_seconds
        self._client: Any = None  # one HTTP client per delivery loop
        ensure_ledger(engine)

    # ---- the protocol ------------------------------------------------------------------------
    def claim(self, record_id: str, *, run_id: str | None, payload: Mapping[str, Any],
              run_is_over: RunIsOver | None = None) -> Claim:
        """Own the record (outcome new / recovered / retry, with a token) or learn why not (delivered / held)."""
        token = uuid.uuid4().hex
        now = _now()
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)
        t = ledger_table
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(t).where(t.c.family == self.family, t.c.record_id == record_id)).mappings().first()
            if row is None:
                try:
                    conn.execute(sa.insert(t).values(
                        family=self.family, record_id=record_id, status="claimed", claim_token=token, run_id=run_id,
                        source=payload.get("source"), payload_hash=payload_hash(payload), payload=body, attempts=1,
                        claimed_at=now))
                except sa.exc.IntegrityError:  # another dispatcher claimed it a moment ago
                    return Claim("held")
                return Claim("new", token)
            if row["status"] == "delivered":
                return Claim("delivered")
            values: dict[str, Any] = dict(status="claimed", claim_token=token, run_id=run_id, claimed_at=now,
                                          error=None, attempts=t.c.attempts + 1)
            sent_before = None
            if row["status"] == "claimed":
                if not self._abandoned(row["claimed_at"], row["run_id"], run_is_over, now):
                    return Claim("held")
                outcome = "recovered"
                sent_before = json.loads(row["payload"]) if row["payload"] else None
            else:  # failed: a channel refused it, so the current payload goes out
                outcome = "retry"
            if sent_before is None:
                values.update(source=payload.get("source"), payload_hash=payload_hash(payload), payload=body)
            taken = conn.execute(
                sa.update(t)
                .where(t.c.family == self.family, t.c.record_id == record_id, t.c.claim_token == row["claim_token"])
                .values(**values)
            ).rowcount
            return Claim(outcome, token, int(row["attempts"]) + 1, sent_before) if taken == 1 else Claim("held")

    def _abandoned(self, claimed_at: str, run_id: str | None, run_is_over: RunIsOver | None, now: str) -> bool:
        """A claim nobody will complete: older than the lease, or held by a run that has ended."""
        age = (pd.Timestamp(now) - pd.Timestamp(claimed_at)).total_seconds()
        return age >= self.lease_seconds or bool(run_is_over and run_id and run_is_over(run_id))

    def in_doubt(self, run_is_over: RunIsOver | None = None) -> pd.DataFrame:
        """Claims held past their lease or by an ended run: their output may or may not have gone out."""
        claimed = read_ledger(self.engine, status="claimed", family=self.family)
        now = _now()
        keep = [self._abandoned(at, rid if isinstance(rid, str) else None, run_is_over, now)
                for at, rid in zip(claimed["claimed_at"], claimed["run_id"])]
        return claimed[pd.Series(keep, index=claimed.index, dtype=bool)].reset_index(drop=True)

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
                               timeout=self.timeout, client=self._client)
        return str(path), status

    def remove_leftover_temp_files(self) -> int:
        """Delete temp files that crashed writes left; a live write holds its own for far less than the lease."""
        if not self.folder.is_dir():
            return 0
        cutoff, removed = time.time() - self.lease_seconds, 0
        for tmp in self.folder.glob(f".*{TEMP_SUFFIX}"):
            try:
                if tmp.stat().st_mtime <= cutoff:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:  # its write finished, or another dispatcher removed it
                pass
        return removed

    def deliver(self, items: pd.DataFrame | Iterable[Mapping[str, Any]], *, run_id: str | None = None,
                on_delivered: Callable[[dict[str, Any]], None] | None = None,
                run_is_over: RunIsOver | None = None,
                on_delivered_many: Callable[[list[dict[str, Any]]], None] | None = None) -> DeliveryReport:
        """Deliver each item (a mapping with ``record_id``) at most once, ever, per (family, record id).

        ``on_delivered`` gets each delivery as soon as the ledger has it (the payload sent plus the
        ledger's ``source``, ``file_path``, ``webhook_status``, ``attempts``, ``run_id``, ``delivered_at``),
        so what it records survives a crash later in the loop; ``on_delivered_many`` gets the same
        deliveries a ledger commit at a time. ``run_is_over`` lets a claim held by an ended run be
        taken over before its lease expires.

        Without a webhook, items go out a chunk at a time: one ledger transaction claims the chunk,
        its files are written and made durable with one flush of the file system, and one transaction
        marks them delivered. A crash mid-chunk leaves the chunk's claims in doubt; the next run takes
        them over and writes no file twice. With a webhook (one round trip per item anyway), item by
        item, so a crash leaves at most the call in flight in doubt.
        """
        payloads = payloads_of(self.family, items)
        report = DeliveryReport(temp_files_removed=self.remove_leftover_temp_files())

        def delivered(deliveries: list[dict[str, Any]]) -> None:
            if on_delivered is not None:
                for d in deliveries:
                    on_delivered(d)
            if on_delivered_many is not None:
                on_delivered_many(deliveries)

        with self._http():
            if self.webhook_url:
                for payload in payloads:
                    self._deliver_one(payload, run_id, report, delivered, run_is_over)
            else:
                for start in range(0, len(payloads), CHUNK):
                    self._deliver_items(payloads[start:start + CHUNK], run_id, report, delivered, run_is_over)
        return report

    def _deliver_items(self, items: list[dict[str, Any]], run_id: str | None, report: DeliveryReport,
                       delivered: Callable[[list[dict[str, Any]]], None], run_is_over: RunIsOver | None) -> None:
        """Deliver a chunk of :func:`payload_of` payloads."""
        payloads: dict[str, dict[str, Any]] = {}
        repeated = []  # an id twice in one chunk goes after it, through the per-item path
        now = _now()
        for item in items:
            tid = str(item["record_id"])
            if tid in payloads:
                repeated.append(item)
                continue
            payloads[tid] = {**item, "dispatched_at": now}
        try:
            self._deliver_chunk(payloads, run_id, report, delivered, run_is_over)
        except ChunkInterrupted as exc:
            raise DispatchInterrupted(exc.record_id, self._scrub(exc.reason)[:500], report) from None
        for item in repeated:
            self._deliver_one(item, run_id, report, delivered, run_is_over)

    def _deliver_one(self, item: dict[str, Any], run_id: str | None, report: DeliveryReport,
                     delivered: Callable[[list[dict[str, Any]]], None], run_is_over: RunIsOver | None) -> None:
        """Deliver one :func:`payload_of` payload."""
        tid = str(item["record_id"])
        payload = {**item, "dispatched_at": _now()}
        claim = self.claim(tid, run_id=run_id, payload=payload, run_is_over=run_is_over)
        if claim.token is None:
            if claim.outcome == "delivered":
                report.already_delivered += 1
            else:
                report.held.append(tid)
            return
        sent = claim.sent_before or payload  # an in-doubt claim replays what may have gone out
        try:
            path, status = self.send(sent, in_doubt=claim.outcome == "recovered")
        except (DeliveryError, OSError) as exc:
            self._finish(tid, claim.token, status="failed", error=self._scrub(str(exc))[:2000])
            report.failed[tid] = self._scrub(str(exc))
            return
        except Exception as exc:  # unknown whether it went out: the claim stays, in doubt
            raise DispatchInterrupted(tid, self._scrub(f"{type(exc).__name__}: {exc}")[:500], report) from None
        delivered_at = _now()
        self._finish(tid, claim.token, status="delivered", file_path=path, webhook_status=status,
                     delivered_at=delivered_at, payload_hash=payload_hash(sent),
                     payload=json.dumps(sent, ensure_ascii=False, sort_keys=True, default=str))
        (report.recovered if claim.outcome == "recovered" else report.delivered).append(tid)
        delivered([{**sent, "record_id": tid, "file_path": path, "webhook_status": status,
                    "attempts": claim.attempts, "run_id": run_id, "delivered_at": delivered_at}])

    @contextlib.contextmanager
    def _http(self):
        if not self.webhook_url or self._client is not None:
            yield
            return
        import httpx

        with httpx.Client() as client:
            self._client = client
            try:
                yield
            finally:
                self._client = None

    def _scrub(self, message: str) -> str:
        """The message without the webhook URL (its path or query may hold a token)."""
        if not self.webhook_url:
            return message
        return message.replace(self.webhook_url, display_host(self.webhook_url))


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
        return target + (f" + webhook {display_host(webhook_url)}" if webhook_url else "")
