"""The reviewer inbox's data: queues, one item, recent decisions and their delivery, a decision.

Reads and writes go through the same functions as ``workflow-review`` and the launchpad job
(:mod:`orchestration_assets.core.review`), so the review-decision sensor and dispatch see web
decisions like any other. A reviewer sees a family's ``human_review`` items; a lead its
escalations too.
"""

from dataclasses import dataclass
from typing import Any

import pandas as pd

from resources.outbox import read_ledger
from resources.warehouse import Warehouse

from ..core.review import (
    APPROVING,
    ReviewDecision,
    ReviewError,
    latest_routing,
    queue_columns,
    read_review_decisions,
    reason_counts,
    record_decision,
    review_queue,
)
from ..family import Family
from .accounts import User

ESCALATE = "escalate"


class Forbidden(Exception):
    """The user's role does not cover this item; the message says which role it needs."""


@dataclass
class Item:
    family: Family
    record_id: str
    routing: dict[str, Any]
    enriched: dict[str, Any]
    decided: dict[str, Any] | None
    delivery: dict[str, Any] | None

    @property
    def is_escalation(self) -> bool:
        return self.routing.get("decision") == ESCALATE


def pending(wh: Warehouse, family: Family, user: User, with_records: bool = True) -> pd.DataFrame:
    """The user's part of the family's queue, oldest first (``with_records``: with the record and answer
    columns the queue page shows; without, only ids, routing and reasons, which is cheaper)."""
    shown = queue_columns(family)
    routing = _columns(wh, family.table("routing_decisions"), [*shown, "decided_at", "record_time"])
    enriched = _columns(wh, family.table("enriched_records"), shown) if with_records else pd.DataFrame()
    queue = review_queue(family, routing, enriched, read_review_decisions(wh, family.name))
    if not user.can(family.name, "lead"):
        queue = queue[queue["decision"] != ESCALATE]
    return queue.reset_index(drop=True)


def _columns(wh: Warehouse, table: str, wanted: list[str]) -> pd.DataFrame:
    # only the columns a page shows: restoring the types of every stored column costs most of a page
    if not wh.has_table(table):
        return pd.DataFrame(columns=["record_id"])
    present = set(wh.query(f'SELECT * FROM "{table}" WHERE 1 = 0').columns)
    return wh.read_table(table, columns=[c for c in dict.fromkeys(["record_id", *wanted]) if c in present])


def with_reason(queue: pd.DataFrame, reason: str | None) -> pd.DataFrame:
    """The queue's items that carry ``reason`` (``code`` matches ``code:detail``); all when None."""
    if not reason or queue.empty:
        return queue
    has = queue["reasons"].map(lambda rs: any(str(r).split(":")[0] == reason for r in _list(rs)))
    return queue[has.astype(bool)].reset_index(drop=True)


def summary(family: Family, queue: pd.DataFrame) -> dict[str, Any]:
    """Counts of a queue: in all, escalations, per reason code (most first)."""
    return {"family": family, "total": len(queue), "escalations": int((queue["decision"] == ESCALATE).sum()),
            "reasons": sorted(reason_counts(queue).items(), key=lambda kv: (-kv[1], kv[0]))}


def load_item(wh: Warehouse, family: Family, record_id: str) -> Item | None:
    """The record as routed and enriched, its decision and delivery if any; None when it was never routed."""
    routing = latest_routing(_rows_of(wh, family.table("routing_decisions"), record_id))
    if routing.empty:
        return None
    enriched = _rows_of(wh, family.table("enriched_records"), record_id)
    decided = read_review_decisions(wh, family.name)
    decided = decided[decided["record_id"] == record_id]
    return Item(family, record_id, _row(routing.iloc[-1]), _row(enriched.iloc[-1]) if len(enriched) else {},
                _row(decided.iloc[0]) if len(decided) else None, delivery_of(wh, family, [record_id]).get(record_id))


def _rows_of(wh: Warehouse, table: str, record_id: str) -> pd.DataFrame:
    """One record's rows of a warehouse table, with the stored column types restored."""
    if not wh.has_table(table):
        return pd.DataFrame(columns=["record_id"])
    rows = wh.query(f'SELECT * FROM "{table}" WHERE record_id = :r', r=record_id)
    # the warehouse's own type restoring (it has no public row filter): one record, not the whole table
    return wh._restore_types(table, rows).drop(columns=["_partition"], errors="ignore")


def delivery_of(wh: Warehouse, family: Family, record_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The dispatch ledger's row (status, when, attempts) of each record that has one."""
    ledger = read_ledger(wh.engine, family=family.name)
    ledger = ledger[ledger["record_id"].isin(record_ids)]
    return {r["record_id"]: {"status": r["status"], "delivered_at": r["delivered_at"], "attempts": r["attempts"],
                             "webhook_status": r["webhook_status"]} for r in ledger.to_dict(orient="records")}


def recent_decisions(wh: Warehouse, family: Family, user: User, limit: int = 10) -> list[dict[str, Any]]:
    """The family's latest decisions, newest first, with their delivery (escalations: for leads only)."""
    decided = read_review_decisions(wh, family.name)
    if not user.can(family.name, "lead"):
        decided = decided[decided["routed_decision"] != ESCALATE]
    decided = decided.tail(limit).iloc[::-1]
    delivery = delivery_of(wh, family, decided["record_id"].tolist())
    return [{**_row(r), "delivery": delivery.get(r["record_id"]), "expects_delivery": expects_delivery(r)}
            for _, r in decided.iterrows()]


def decide(wh: Warehouse, family: Family, user: User, item: Item, action: str, edited_text: str,
           corrected_label: str, note: str) -> dict[str, Any]:
    """Record the signed-in user's decision (channel ``web``); raises ``Forbidden`` or ``ReviewError``."""
    if item.is_escalation and not user.can(family.name, "lead"):
        raise Forbidden(f"{item.record_id!r} is an escalation: deciding it needs the lead role in {family.name}")
    # one form holds every action's inputs: only the chosen action's reach the decision
    decision = ReviewDecision(record_id=item.record_id, decision=action, reviewer=user.name,
                              edited_text=edited_text if action == "edit_and_approve" else None,
                              corrected_label=corrected_label if action == "relabel" else None, note=note)
    return record_decision(wh, family, decision, channel="web")


def next_item(wh: Warehouse, family: Family, user: User, reason: str | None, after: str) -> str | None:
    queue = with_reason(pending(wh, family, user, with_records=False), reason)
    ids = [r for r in queue["record_id"] if r != after]
    return ids[0] if ids else None


def enrichment(family: Family, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Each task's answer as the item page shows it: label and confidence, fields, scores, text."""
    out = []
    for task in family.tasks.values():
        n, t = task.name, task.type
        if t == "classify":
            out.append({"task": n, "type": t, "value": row.get(n), "confidence": _num(row.get(f"{n}_confidence"))})
        elif t == "extract":
            fields = [(f, row.get(f"{n}_{f}")) for f in task.spec.fields]
            out.append({"task": n, "type": t, "fields": [(f, v) for f, v in fields if _present(v)],
                        "confidence": _num(row.get(f"{n}_confidence"))})
        elif t == "sentiment":
            out.append({"task": n, "type": t, "value": row.get(n), "confidence": _num(row.get(f"{n}_score"))})
        elif t == "flag":
            out.append({"task": n, "type": t, "value": ", ".join(map(str, _list(row.get(n)))) or "none"})
        else:  # summarize, draft: text
            out.append({"task": n, "type": t, "value": row.get(n)})
    return out


def expects_delivery(decided: Any) -> bool:
    return decided["decision"] in APPROVING  # approved outputs go out; rejected and relabelled ones do not


def _row(series: pd.Series) -> dict[str, Any]:
    return {k: (None if _missing(v) else v) for k, v in series.to_dict().items()}


def _missing(v: Any) -> bool:
    try:
        return v is None or v is pd.NaT or bool(pd.isna(v))
    except (TypeError, ValueError):  # lists and arrays
        return False


def _present(v: Any) -> bool:
    return not _missing(v) and v != ""


def _list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else []


def _num(v: Any) -> float | None:
    try:
        return None if _missing(v) else float(v)
    except (TypeError, ValueError):
        return None


__all__ = ["Forbidden", "Item", "ReviewError", "decide", "delivery_of", "enrichment", "expects_delivery", "load_item", "next_item",
           "pending", "recent_decisions", "summary", "with_reason"]
