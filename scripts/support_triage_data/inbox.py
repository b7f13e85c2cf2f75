"""The sample inbox: one batch file per day, with the deliberately malformed rows of ``text/batches.yaml``."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from random import Random
from typing import Any, Sequence

from scripts.inbox_manifest import Malformed, csv_text

from .bank import Bank
from .context import Account
from .draw import weighted
from .files import csv_line
from .tickets import TICKET_COLUMNS, Ticket, TicketFactory, business_time

Record = dict[str, Any] | str  # a row to write, or the raw text of an unparseable one


def _overlong_log(bank: Bank, rng: Random, day: datetime) -> str:
    log = bank.batches["overlong_log"]
    lines = list(log["intro"])
    t = day.replace(hour=6, minute=0, second=0)
    while sum(len(x) + 1 for x in lines) < 10_600:
        t += timedelta(seconds=rng.randint(1, 40))
        level = rng.choice(log["levels"])
        msg = rng.choice(log["messages"]).format(p=rng.randint(1, 412), a=rng.randint(1, 5))
        lines.append(log["line"].format(time=f"{t:%Y-%m-%d %H:%M:%S}", level=level, worker=rng.randint(1, 8), message=msg))
    lines += log["outro"]
    return "\n".join(lines)


def _plan(bank: Bank, name: str) -> list[tuple[str, str]]:
    """(kind, argument) per malformed row of a file, in order of appearance."""
    return [(k, "") if isinstance(k, str) else (k[0], k[1]) for k in bank.batches["files"][name]["malformed"]]


def build_inbox_batch(
    bank: Bank, name: str, first_id: int, accounts: Sequence[Account], seed: int
) -> tuple[list[Record], list[Malformed], list[Ticket]]:
    """Records of one batch file (dicts, or raw lines for unparseable rows) and its malformed rows."""
    rng = Random(f"{seed}:inbox:{name}")
    factory = TicketFactory(bank, rng, accounts)
    day = datetime.strptime(name[6:16], "%Y-%m-%d").replace(tzinfo=timezone.utc)
    n = bank.batches["files"][name]["rows"]
    times = sorted(business_time(rng, day) for _ in range(n))
    cats = [weighted(rng, bank.tickets["weights"]) for _ in range(n)]
    tickets = [factory.ticket(f"T-{first_id + i}", times[i], cats[i]) for i in range(n)]
    records: list[Record] = [dict(t.row) for t in tickets]

    plan = _plan(bank, name)
    positions = sorted(rng.sample(range(8, n - 2), len(plan)))
    taken = set(positions)
    malformed: list[Malformed] = []
    for (kind, arg), pos in zip(plan, positions):
        rec = dict(tickets[pos].row)
        tid = rec["ticket_id"]
        out: Record = rec
        if kind == "empty_account_id":
            rec["account_id"] = ""
            issue = ("account_id", "required field account_id is empty")
        elif kind == "null_account_id":
            rec["account_id"] = None
            issue = ("account_id", "required field account_id is null")
        elif kind == "missing_body_key":
            del rec["body"]
            issue = ("body", "required field body is missing from the JSON object")
        elif kind == "bad_created_at":
            rec["created_at"] = arg
            issue = ("created_at", f"unparseable timestamp {arg!r}")
        elif kind == "unknown_channel":
            rec["channel"] = arg
            issue = ("channel", f"unknown channel {arg!r}")
        elif kind == "blank_body":
            rec["body"] = arg
            what = "empty" if arg == "" else "whitespace only"
            issue = ("body", f"body is {what}")
        elif kind == "overlong_body":
            rec["body"] = _overlong_log(bank, rng, day)
            issue = ("body", f"body has {len(rec['body'])} characters (limit 10,000)")
        elif kind == "exact_duplicate":
            earlier = rng.choice([i for i in range(pos) if i not in taken])
            out = dict(records[earlier]) if isinstance(records[earlier], dict) else records[earlier]
            tid = tickets[earlier].row["ticket_id"]
            issue = ("ticket_id", f"duplicate ticket_id {tid}: exact copy of row {earlier + 1}")
        elif kind == "conflicting_duplicate":
            earlier = rng.choice([i for i in range(pos) if i not in taken])
            tid = tickets[earlier].row["ticket_id"]
            rec["ticket_id"] = tid
            issue = ("ticket_id", f"duplicate ticket_id {tid}: same id as row {earlier + 1} with different content")
        elif kind == "csv_extra_fields":
            body = bank.batches["unquoted_commas_body"]
            rec["body"] = body
            values = [rec[c] for c in TICKET_COLUMNS]
            out = ",".join(v.replace(",", " ") for v in values[:-1]) + "," + body  # body not quoted
            n_fields = len(next(csv.reader([out])))
            issue = ("<row>", f"unquoted commas in body: {n_fields} fields instead of {len(TICKET_COLUMNS)}")
        elif kind == "csv_missing_fields":
            out = csv_line([rec[c] for c in TICKET_COLUMNS][:6])
            issue = ("<row>", f"line cut off after priority: 6 fields instead of {len(TICKET_COLUMNS)}")
        elif kind == "invalid_json" and arg == "truncated":
            full = json.dumps(rec, ensure_ascii=False)
            out = full[: full.index('"subject"') + 40]
            issue = ("<line>", "invalid JSON: line is truncated")
        elif kind == "invalid_json":
            out = repr({k: rec[k] for k in TICKET_COLUMNS})
            issue = ("<line>", "invalid JSON: Python dict syntax with single quotes")
        elif kind == "json_array":
            out = json.dumps([rec[c] for c in TICKET_COLUMNS], ensure_ascii=False)
            issue = ("<line>", "JSON array instead of an object")
        else:
            raise ValueError(f"text/batches.yaml: {name}: unknown malformed kind {kind!r}")
        records[pos] = out
        malformed.append(Malformed(file=name, row=pos + 1, record_id=tid, field=issue[0], problem=issue[1]))
    return records, malformed, tickets


def inbox_file_text(name: str, records: Sequence[Record]) -> str:
    """A batch file: CSV with a header, or one JSON object per line; raw lines are written as they are."""
    if name.endswith(".csv"):
        return csv_text(TICKET_COLUMNS, records)
    buf = io.StringIO()
    for rec in records:
        if isinstance(rec, str):
            buf.write(rec + "\n")
        else:
            buf.write(json.dumps({c: rec[c] for c in TICKET_COLUMNS if c in rec}, ensure_ascii=False) + "\n")
    return buf.getvalue()
