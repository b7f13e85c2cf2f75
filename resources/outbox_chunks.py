"""Delivering a chunk of items at once through the ledger protocol of :mod:`.outbox` (files, no webhook).

Per item the protocol costs two ledger transactions and two fsyncs (the file, its folder): about
10 ms here, so a 100,000-record batch spent most of its run in dispatch. A chunk keeps every step
and its order, and pays for each once:

1. **claim**: one transaction inserts the ``claimed`` rows (with their payloads) of the chunk's new
   records; records the ledger already has (delivered, held, failed, in doubt) take the per-item path;
2. **send**: every file is written to its temp name, the file system is flushed once (``syncfs``;
   per-file fsync where the platform has none), the files are renamed and the folder is fsynced once;
3. **mark delivered**: one transaction; the ledger says ``delivered`` only for files already durable.

A crash anywhere leaves the chunk's claims in doubt, as a crash of the per-item loop leaves one:
the next run takes them over and writes no file that is already in the folder.
"""

import ctypes
import functools
import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import sqlalchemy as sa

from .outbox_channels import TEMP_SUFFIX, file_json, safe_file_name
from .outbox_ledger import Claim, ledger_table, payload_hash

CHUNK = 500  # items per ledger transaction and per flush


class ChunkInterrupted(RuntimeError):
    """An unexpected error stopped a chunk; its claims are in doubt."""

    def __init__(self, record_id: str, reason: str) -> None:
        super().__init__(reason)
        self.record_id, self.reason = record_id, reason


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn


def _flush(folder: Path, temps: list[Path]) -> None:
    """Make the written temp files durable: one ``syncfs`` of their file system, else an fsync each."""
    syncfs = _syncfs()
    if syncfs is not None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            if syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            os.close(fd)
        return
    for tmp in temps:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)  # as json.dumps, built once


def _dump(payload: dict[str, Any]) -> str:
    return _JSON.encode(payload)


class ChunkedDelivery:
    """The chunked path of :class:`~resources.outbox.Dispatcher` (which provides engine, family, folder,
    ``claim`` and ``_finish``)."""

    engine: sa.Engine
    family: str
    folder: Path

    def _claim_many(self, payloads: dict[str, dict[str, Any]], run_id: str | None, run_is_over,
                    encoded: dict[str, tuple[str, str]]) -> dict[str, Claim]:
        t, now = ledger_table, pd.Timestamp.now(tz="UTC").isoformat()
        ids, claims, rest = list(payloads), {}, []
        try:
            with self.engine.begin() as conn:
                known = dict(conn.execute(sa.select(t.c.record_id, t.c.status)
                                          .where(t.c.family == self.family, t.c.record_id.in_(ids))).all())
                rows = []
                for tid in ids:
                    status = known.get(tid)
                    if status is None:
                        token, p = uuid.uuid4().hex, payloads[tid]
                        claims[tid] = Claim("new", token)
                        rows.append(dict(family=self.family, record_id=tid, status="claimed", claim_token=token,
                                         run_id=run_id, source=p.get("source"), payload_hash=encoded[tid][1],
                                         payload=encoded[tid][0], attempts=1, claimed_at=now))
                    elif status == "delivered":
                        claims[tid] = Claim("delivered")
                    else:
                        rest.append(tid)
                if rows:
                    conn.execute(sa.insert(t), rows)
        except sa.exc.IntegrityError:  # another dispatcher claimed some of them a moment ago: one at a time
            claims, rest = {}, ids
        for tid in rest:
            claims[tid] = self.claim(tid, run_id=run_id, payload=payloads[tid], run_is_over=run_is_over)
        return claims

    def _write_many(self, owned: list[tuple[str, dict[str, Any], Claim]]) -> tuple[dict[str, str], dict[str, str]]:
        """Write the owned items' files durably; ({record id: path} written or already there, {record id: error})."""
        paths, failed, temps, fresh = {}, {}, {}, []
        self.folder.mkdir(parents=True, exist_ok=True)
        for tid, sent, claim in owned:
            path = self.folder / safe_file_name(tid)
            if claim.outcome == "recovered" and path.exists():  # it may have gone out already: not again
                paths[tid] = str(path)
                continue
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
            try:
                with open(tmp, "w", encoding="utf-8") as fh:  # as atomic_write_json lays it out
                    fh.write(file_json(sent))
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                failed[tid] = str(exc)
                continue
            except Exception as exc:
                tmp.unlink(missing_ok=True)
                raise ChunkInterrupted(tid, f"{type(exc).__name__}: {exc}") from None
            temps[tid] = tmp
            fresh.append((tid, tmp, path))
        if not fresh:
            return paths, failed
        try:
            _flush(self.folder, list(temps.values()))
            for tid, tmp, path in fresh:
                os.replace(tmp, path)
            fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:  # none of them is known durable: remove them all, so a retry writes them
            for tid, tmp, path in fresh:
                tmp.unlink(missing_ok=True)
                path.unlink(missing_ok=True)
                failed[tid] = str(exc)
            return paths, failed
        paths.update({tid: str(path) for tid, _, path in fresh})
        return paths, failed

    def _finish_many(self, rows: list[dict[str, Any]]) -> None:
        t = ledger_table
        stmt = (sa.update(t)
                .where(t.c.family == self.family, t.c.record_id == sa.bindparam("b_record"),
                       t.c.claim_token == sa.bindparam("b_token"))
                .values(status="delivered", file_path=sa.bindparam("b_path"), webhook_status=None,
                        delivered_at=sa.bindparam("b_at"), payload_hash=sa.bindparam("b_hash"),
                        payload=sa.bindparam("b_payload")))
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def _deliver_chunk(self, payloads: dict[str, dict[str, Any]], run_id: str | None, report,
                       delivered: Callable[[list[dict[str, Any]]], None], run_is_over) -> None:
        # each payload's ledger text and hash, computed once for its claim and its delivered row
        encoded = {tid: (_dump(p), payload_hash(p)) for tid, p in payloads.items()}
        claims = self._claim_many(payloads, run_id, run_is_over, encoded)
        owned = []
        for tid, claim in claims.items():
            if claim.token is not None:
                owned.append((tid, claim.sent_before or payloads[tid], claim))  # in doubt: replay what may be out
            elif claim.outcome == "delivered":
                report.already_delivered += 1
            else:
                report.held.append(tid)
        if not owned:
            return
        paths, failed = self._write_many(owned)
        for tid, error in failed.items():
            self._finish(tid, claims[tid].token, status="failed", error=error[:2000])
            report.failed[tid] = error
        at = pd.Timestamp.now(tz="UTC").isoformat()
        done = [(tid, sent, claim) for tid, sent, claim in owned if tid in paths]
        if not done:
            return
        def text_and_hash(tid: str, sent: dict[str, Any]) -> tuple[str, str]:
            return encoded[tid] if sent is payloads[tid] else (_dump(sent), payload_hash(sent))

        rows = []
        for tid, sent, claim in done:
            text, digest = text_and_hash(tid, sent)
            rows.append({"b_record": tid, "b_token": claim.token, "b_path": paths[tid], "b_at": at,
                         "b_hash": digest, "b_payload": text})
        self._finish_many(rows)
        for tid, _, claim in done:
            (report.recovered if claim.outcome == "recovered" else report.delivered).append(tid)
        delivered([{**sent, "record_id": tid, "file_path": paths[tid], "webhook_status": None,
                    "attempts": claim.attempts, "run_id": run_id, "delivered_at": at} for tid, sent, claim in done])
