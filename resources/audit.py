"""The audit log: one append-only warehouse table of every decision of every family, with its lineage.

Rows carry the family and are keyed by a natural key, so recording the same decision twice (a
re-materialized partition, a retried run) inserts nothing; :func:`record_changes` goes further and
appends an event only when it changes what the log last said about its record. The database
itself refuses UPDATE and DELETE on the table (triggers on SQLite and PostgreSQL), so history
cannot be rewritten by accident.
Every row says which model and prompt version, which policy version and which actor decided.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
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
by_record = sa.Index("ix_audit_log_record", audit_table.c.family, audit_table.c.event_type, audit_table.c.record_id)
_ready: set[str] = set()  # databases whose table, triggers and index this process has ensured


def ensure_audit_table(warehouse: Warehouse) -> None:
    # once per process and database: on PostgreSQL the trigger DDL locks the table, and dispatch audits each delivery
    engine = warehouse.engine
    with engine.begin() as conn:
        if str(engine.url) in _ready and sa.inspect(conn).has_table(AUDIT_TABLE):
            return
        metadata.create_all(conn, tables=[audit_table], checkfirst=True)
        make_append_only(conn, AUDIT_TABLE)
        by_record.create(conn, checkfirst=True)
    _ready.add(str(engine.url))


def natural_key(family: str | None, event_type: str, record_id: Any, decision: str, *parts: Any) -> str:
    return natural_keys(family, event_type, [record_id], [decision], *([p] for p in parts))[0]


def natural_keys(family: str | None, event_type: str, record_ids: Sequence[Any], decisions: Sequence[Any],
                 *parts: Sequence[Any]) -> list[str]:
    """:func:`natural_key` of each row of these columns; the hash is computed once per distinct ``parts``
    (a batch shares its model, prompt and policy versions)."""
    from .providers.base import content_hash

    hashes: dict[tuple, str] = {}
    out = []
    for rid, decision, *state in zip(record_ids, decisions, *parts):
        key = tuple(state)
        digest = hashes.get(key)
        if digest is None:
            digest = hashes[key] = content_hash(*state)
        out.append(f"{family or '-'}:{event_type}:{rid}:{decision}:{digest}")
    return out


REQUIRED = ("event_type", "decision", "actor", "natural_key", "recorded_at")


def record_events(warehouse: Warehouse, events: pd.DataFrame) -> int:
    """Append audit events; rows whose ``natural_key`` is already present are skipped. Returns inserted count."""
    if events.empty:
        return 0
    ensure_audit_table(warehouse)
    missing = [c for c in REQUIRED if c not in events]
    if missing:
        raise ValueError(f"audit events lack required column(s) {missing}")
    rows = events.drop_duplicates("natural_key")
    # column by column, then zipped into the rows the insert takes: a frame's to_dict boxes every cell
    values = []
    for col in COLUMNS:
        if col not in rows:
            values.append([None] * len(rows))
        elif col == "reasons":
            values.append([_reasons_json(v) for v in rows[col].tolist()])
        elif col == "details":
            values.append([_details_json(v) for v in rows[col].tolist()])
        else:
            values.append(_cells(rows[col]))
    return _insert_new(warehouse, [dict(zip(COLUMNS, vals)) for vals in zip(*values)])


def _cells(column: pd.Series) -> list[Any]:
    """A column's values as the insert takes them: missing ones None, numpy scalars python ones."""
    cells = column.astype(object).where(column.notna(), None).tolist()
    return [_plain(v) for v in cells] if column.dtype == object else cells


def record_event(warehouse: Warehouse, event: Mapping[str, Any]) -> int:
    """Append one event (a mapping of audit columns) unless its natural key is recorded; returns 0 or 1.

    The cheap path for one event at a time (dispatch audits each delivery as it happens).
    """
    missing = [c for c in REQUIRED if event.get(c) is None]
    if missing:
        raise ValueError(f"audit event lacks required field(s) {missing}")
    ensure_audit_table(warehouse)
    row = {c: _plain(event.get(c)) for c in COLUMNS}
    row["reasons"], row["details"] = _reasons_json(event.get("reasons")), _details_json(event.get("details"))
    return _insert_new(warehouse, [row])


def _insert_new(warehouse: Warehouse, records: list[dict[str, Any]]) -> int:
    keys = [r["natural_key"] for r in records]
    with warehouse.engine.begin() as conn:
        existing: set[str] = set()
        for start in range(0, len(keys), 500):  # by the unique index, never the whole log of every family
            existing.update(conn.execute(sa.select(audit_table.c.natural_key)
                                         .where(audit_table.c.natural_key.in_(keys[start:start + 500]))).scalars())
        new = [r for r in records if r["natural_key"] not in existing]
        for start in range(0, len(new), 5000):
            conn.execute(sa.insert(audit_table), new[start : start + 5000])
    return len(new)


def _reasons_json(v: Any) -> str:
    return json.dumps(list(v) if v is not None else [])


def _details_json(v: Any) -> str | None:
    return v if v is None or isinstance(v, str) else json.dumps(v, default=str, sort_keys=True)


def _plain(v: Any) -> Any:
    if v is None or v is pd.NaT or (isinstance(v, float) and pd.isna(v)):
        return None
    return v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v


def record_changes(warehouse: Warehouse, events: pd.DataFrame, state: Sequence[str]) -> int:
    """Append the events that change what the log last said about their record; returns inserted count.

    An event whose ``state`` columns equal those of the latest event of its (family, event type,
    record) adds nothing, whatever else differs (run, time, reasons, details). A record that returns
    to an earlier state is recorded again: its natural key then names the row it follows.
    """
    if events.empty:
        return 0
    ensure_audit_table(warehouse)
    out = []
    for (family, event_type), group in events.groupby(["family", "event_type"], dropna=False, sort=False):
        ids = group["record_id"].astype(str)
        seen = _recorded(warehouse, family, event_type, ids.unique().tolist(), state)
        if seen.empty:  # nothing recorded yet for these records (a new batch): every event is a change
            out.append(group)
            continue
        latest = seen.drop_duplicates("record_id", keep="last").set_index("record_id")
        known = ids.isin(latest.index).to_numpy()
        last = latest.reindex(ids.to_numpy())
        same = known.copy()
        for c in state:  # compared as text, None and NaN alike, as _same does
            mine = _texts(group[c]) if c in group else [None] * len(group)
            same &= np.array([a == b for a, b in zip(mine, _texts(last[c]))], dtype=bool)
        keys = set(seen["natural_key"])
        changed = group.loc[~same].copy()
        earlier = np.array([k in keys for k in changed["natural_key"].tolist()], dtype=bool) & known[~same]
        if earlier.any():  # the state of an earlier row: key it after the latest one
            after = last["audit_id"].to_numpy()[~same][earlier]
            changed.loc[changed.index[earlier], "natural_key"] = [
                f"{k}:after:{int(a)}" for k, a in zip(changed["natural_key"].to_numpy()[earlier], after)]
        out.append(changed)
    rows = pd.concat(out) if out else events.iloc[:0]
    return record_events(warehouse, rows[list(events.columns)]) if len(rows) else 0


def _texts(column: pd.Series) -> list[str | None]:
    """:func:`_same`'s view of each value: None for a missing one, else its text."""
    return [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in column.tolist()]


def _recorded(warehouse: Warehouse, family: Any, event_type: str, record_ids: list[str],
              state: Sequence[str]) -> pd.DataFrame:
    """Recorded events of these records, oldest first: audit id, record id, natural key and ``state``."""
    t = audit_table
    fam = t.c.family.is_(None) if _same(family, None) else t.c.family == family
    cols = [t.c.audit_id, t.c.record_id, t.c.natural_key, *[t.c[c] for c in state]]
    frames = []
    with warehouse.engine.connect() as conn:
        for start in range(0, len(record_ids), 500):  # bound the bound parameters (SQLite allows 999 on old builds)
            stmt = sa.select(*cols).where(fam, t.c.event_type == event_type,
                                          t.c.record_id.in_(record_ids[start : start + 500]))
            frames.append(pd.read_sql(stmt, conn))
    seen = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[c.name for c in cols])
    return seen.sort_values("audit_id").reset_index(drop=True)


def _same(a: Any, b: Any) -> bool:
    def norm(v: Any) -> str | None:
        return None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)

    return norm(a) == norm(b)


def count_audit(warehouse: Warehouse, **filters: Any) -> int:
    """How many audit rows match ``filters`` (column = value), counted by the database."""
    ensure_audit_table(warehouse)
    stmt = sa.select(sa.func.count()).select_from(audit_table)
    for key, value in filters.items():
        stmt = stmt.where(audit_table.c[key] == value)
    with warehouse.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def read_audit(warehouse: Warehouse, **filters: Any) -> pd.DataFrame:
    ensure_audit_table(warehouse)
    stmt = sa.select(audit_table).order_by(audit_table.c.audit_id)
    for key, value in filters.items():
        stmt = stmt.where(audit_table.c[key] == value)
    with warehouse.engine.connect() as conn:
        df = pd.read_sql(stmt, conn)
    df["reasons"] = df["reasons"].map(json.loads)
    return df
