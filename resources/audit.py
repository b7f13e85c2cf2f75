"""The audit log: one append-only warehouse table of every decision of every family, with its lineage.

Rows carry the family and are keyed by a natural key, so recording the same decision twice (a
re-materialized partition, a retried run) inserts nothing. The database itself refuses UPDATE and
DELETE on the table (triggers on SQLite and PostgreSQL), so history cannot be rewritten by accident.
Every row says which model and prompt version, which policy version and which actor decided.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import sqlalchemy as sa

from .warehouse import Warehouse, make_append_only

AUDIT_TABLE = "audit_log"

metadata = sa.MetaData()
audit_table = sa.Table(
    AUDIT_TABLE,
    metadata,
    sa.Column("audit_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("family", sa.String(100), nullable=True, index=True),  # null for platform events (alerts)
    sa.Column("event_type", sa.String(40), nullable=False),  # routing_decision, review_decision, dispatch, alert
    sa.Column("record_id", sa.String(200), nullable=True),
    sa.Column("decision", sa.String(40), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False, default="[]"),
    sa.Column("actor", sa.String(200), nullable=False),  # "policy", a reviewer, "dispatcher", "monitor"
    sa.Column("model_version", sa.String(64), nullable=True),
    sa.Column("prompt_version", sa.String(64), nullable=True),
    sa.Column("policy_version", sa.String(64), nullable=True),
    sa.Column("input_hash", sa.String(64), nullable=True),
    sa.Column("code_version", sa.String(64), nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("partition", sa.String(200), nullable=True),
    sa.Column("details", sa.Text, nullable=True),
    sa.Column("natural_key", sa.String(400), nullable=False, unique=True),
    sa.Column("recorded_at", sa.String(40), nullable=False),
)

COLUMNS = [c.name for c in audit_table.columns if c.name != "audit_id"]

def ensure_audit_table(warehouse: Warehouse) -> None:
    with warehouse.engine.begin() as conn:
        metadata.create_all(conn, tables=[audit_table], checkfirst=True)
        make_append_only(conn, AUDIT_TABLE)


def natural_key(family: str | None, event_type: str, record_id: Any, decision: str, *parts: Any) -> str:
    from .providers.base import content_hash

    return f"{family or '-'}:{event_type}:{record_id}:{decision}:{content_hash(*parts)}"


def record_events(warehouse: Warehouse, events: pd.DataFrame) -> int:
    """Append audit events; rows whose ``natural_key`` is already present are skipped. Returns inserted count."""
    if events.empty:
        return 0
    ensure_audit_table(warehouse)
    rows = events.copy()
    missing = [c for c in ("event_type", "decision", "actor", "natural_key", "recorded_at") if c not in rows]
    if missing:
        raise ValueError(f"audit events lack required column(s) {missing}")
    for col in COLUMNS:
        if col not in rows:
            rows[col] = None
    rows["reasons"] = rows["reasons"].map(lambda v: json.dumps(list(v) if v is not None else []))
    rows["details"] = rows["details"].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v, default=str, sort_keys=True))
    rows = rows.drop_duplicates("natural_key")[COLUMNS]
    records = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
    with warehouse.engine.begin() as conn:
        existing = set(
            conn.execute(
                sa.select(audit_table.c.natural_key).where(audit_table.c.natural_key.in_(rows["natural_key"].tolist()))
            ).scalars()
        ) if len(rows) <= 30000 else set(conn.execute(sa.select(audit_table.c.natural_key)).scalars())
        new = [r for r in records if r["natural_key"] not in existing]
        for start in range(0, len(new), 5000):
            conn.execute(sa.insert(audit_table), new[start : start + 5000])
    return len(new)


def read_audit(warehouse: Warehouse, **filters: Any) -> pd.DataFrame:
    ensure_audit_table(warehouse)
    stmt = sa.select(audit_table).order_by(audit_table.c.audit_id)
    for key, value in filters.items():
        stmt = stmt.where(audit_table.c[key] == value)
    with warehouse.engine.connect() as conn:
        df = pd.read_sql(stmt, conn)
    df["reasons"] = df["reasons"].map(json.loads)
    return df
