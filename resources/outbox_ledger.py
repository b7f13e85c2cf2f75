"""The delivery ledger: one row per (family, record id) that went out or is on its way (see :mod:`.outbox`)."""

from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd
import sqlalchemy as sa

from .providers.base import content_hash

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
    sa.Column("payload", sa.Text, nullable=True),  # JSON: stored when claimed, what went out once delivered
)


@dataclass(frozen=True)
class Claim:
    outcome: str  # new / recovered / retry when this dispatcher owns the record, else delivered / held
    token: str | None = None
    attempts: int = 1
    sent_before: dict[str, Any] | None = None  # an in-doubt claim's payload: it may be out already


def ensure_ledger(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _meta.create_all(conn, tables=[ledger_table], checkfirst=True)
        present = {c["name"] for c in sa.inspect(conn).get_columns(LEDGER_TABLE)}
    if "payload" not in present:  # a ledger from before payloads were kept: its old rows keep none
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"ALTER TABLE {LEDGER_TABLE} ADD COLUMN payload TEXT"))
        except sa.exc.DBAPIError:
            with engine.connect() as conn:  # another process added it a moment ago
                if "payload" not in {c["name"] for c in sa.inspect(conn).get_columns(LEDGER_TABLE)}:
                    raise


def read_ledger(engine: sa.Engine, status: str | None = None, family: str | None = None) -> pd.DataFrame:
    ensure_ledger(engine)
    stmt = sa.select(ledger_table).order_by(ledger_table.c.claimed_at, ledger_table.c.record_id)
    if status:
        stmt = stmt.where(ledger_table.c.status == status)
    if family:
        stmt = stmt.where(ledger_table.c.family == family)
    with engine.connect() as conn:
        return pd.read_sql(stmt, conn)


UNHASHED = "dispatched_at"  # when it went out: a replay of the same payload keeps its hash


def payload_hash(payload: Mapping[str, Any]) -> str:
    return content_hash({k: v for k, v in payload.items() if k != UNHASHED})
