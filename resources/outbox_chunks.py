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
import os
import uuid
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import sqlalchemy as sa

from .outbox_channels import TEMP_SUFFIX, delivery_texts, safe_file_name
from .outbox_ledger import Claim, ledger_table

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


def _flush(folder: str, temps: list[str]) -> None:
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


def _write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # as open(path, "w")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


class ChunkedDelivery:
    """The chunked path of :class:`~resources.outbox.Dispatcher` (which provides engine, family, folder,
    ``claim`` and ``_finish``)."""

    engine: sa.Engine
    family: str
    folder: Path

    def _claim_many(self, payloads: dict[str, dict[str, Any]], run_id: str | None, run_is_over,
                    encoded: dict[str, tuple[str, str, str]]) -> dict[str, Claim]:
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

    def _write_many(self, owned: list[tuple[str, str, Claim]]) -> tuple[dict[str, str], dict[str, str]]:
        """Write the owned items' files (record id, file text, claim) durably; ({record id: path} written or
        already there, {record id: error})."""
        paths, failed, fresh = {}, {}, []
        folder = os.fspath(self.folder)
        os.makedirs(folder, exist_ok=True)
        # one random tag per chunk: the record's file name already tells the chunk's temp files apart
        tag = f".{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"
        for tid, text, claim in owned:
            name = safe_file_name(tid)
            path = os.path.join(folder, name)
            if claim.outcome == "recovered" and os.path.exists(path):  # it may have gone out already: not again
                paths[tid] = path
                continue
            tmp = os.path.join(folder, f".{name}{tag}")
            try:
                _write_file(tmp, text.encode("utf-8"))  # as atomic_write_json lays it out
            except OSError as exc:
                _unlink(tmp)
                failed[tid] = str(exc)
                continue
            except Exception as exc:
                _unlink(tmp)
                raise ChunkInterrupted(tid, f"{type(exc).__name__}: {exc}") from None
            fresh.append((tid, tmp, path))
        if not fresh:
            return paths, failed
        try:
            _flush(folder, [tmp for _, tmp, _ in fresh])
            for tid, tmp, path in fresh:
                os.replace(tmp, path)
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:  # none of them is known durable: remove them all, so a retry writes them
            for tid, tmp, path in fresh:
                _unlink(tmp)
                _unlink(path)
                failed[tid] = str(exc)
            return paths, failed
        paths.update({tid: path for tid, _, path in fresh})
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
        # each payload encoded once: its ledger text and hash (claim, delivered row) and its file text
        encoded = {tid: delivery_texts(p) for tid, p in payloads.items()}
        claims = self._claim_many(payloads, run_id, run_is_over, encoded)
        owned = []
        for tid, claim in claims.items():
            if claim.token is not None:
                sent = claim.sent_before or payloads[tid]  # in doubt: replay what may be out
                if sent is not payloads[tid]:
                    encoded[tid] = delivery_texts(sent)
                owned.append((tid, sent, claim))
            elif claim.outcome == "delivered":
                report.already_delivered += 1
            else:
                report.held.append(tid)
        if not owned:
            return
        paths, failed = self._write_many([(tid, encoded[tid][2], claim) for tid, _, claim in owned])
        for tid, error in failed.items():
            self._finish(tid, claims[tid].token, status="failed", error=error[:2000])
            report.failed[tid] = error
        at = pd.Timestamp.now(tz="UTC").isoformat()
        done = [(tid, sent, claim) for tid, sent, claim in owned if tid in paths]
        if not done:
            return
        self._finish_many([{"b_record": tid, "b_token": claim.token, "b_path": paths[tid], "b_at": at,
                            "b_hash": encoded[tid][1], "b_payload": encoded[tid][0]} for tid, _, claim in done])
        for tid, _, claim in done:
            (report.recovered if claim.outcome == "recovered" else report.delivered).append(tid)
        delivered([{**sent, "record_id": tid, "file_path": paths[tid], "webhook_status": None,
                    "attempts": claim.attempts, "run_id": run_id, "delivered_at": at} for tid, sent, claim in done])


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
