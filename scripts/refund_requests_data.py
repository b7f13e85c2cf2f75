"""Generate the bundled refund_requests data: orders, customer refund e-mails, labelled extractions.

Writes, into ``orchestration_assets/defs/refund_requests/``:

- ``data/orders.csv``: the shop's orders (the ``orders`` lookup the extracted order id joins);
- ``sample_inbox/refunds-2026-12-01.csv`` and ``refunds-2026-12-02.jsonl``: arriving e-mails in the
  mail export's shape (``message_id, from, received, subject, text``), with deliberately malformed
  rows listed in ``sample_inbox/MANIFEST.md``;
- ``data/labelled_requests.jsonl``: e-mails of the same shape with the fields a careful reader
  extracts (``expected``: order_id, amount, currency, reason, amount_usd), to measure extraction;
- ``data/README.md``.

Fully synthetic; the words come from ``scripts/refund_requests_text.yaml``. Deterministic (seeded
``random.Random`` per file, no clock): regenerating gives byte-identical files. Usage::

    python scripts/refund_requests_data.py [--out FAMILY_DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from random import Random
from typing import Any, Sequence

import yaml

if __package__ in (None, ""):  # run as a file: make ``scripts`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.inbox_manifest import Malformed, csv_text, manifest_text  # noqa: E402

SEED = 20261201
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "scripts/refund_requests_data.py"
TEXT = yaml.safe_load((Path(__file__).resolve().parent / "refund_requests_text.yaml").read_text(encoding="utf-8"))
FAMILY_DIR = ROOT / "orchestration_assets" / "defs" / "refund_requests"

ORDER_COLUMNS = ("order_id", "customer_email", "amount_paid", "currency", "order_date", "status")
EMAIL_COLUMNS = ("message_id", "from", "received", "subject", "text")
# the family's record fields (defs.yaml record.columns), named in the manifest
FIELD = {"message_id": "message_id", "from": "customer_email", "received": "received_at", "subject": "subject",
         "text": "body"}
MAX_CHARS = 5000  # defs.yaml record.fields.body.max_length
USD_RATES = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}  # defs.yaml tasks.refund.fields.amount_usd.convert.rates
N_ORDERS, N_LABELLED = 400, 200
ORDERS_FILE, LABELLED_FILE, README_FILE = "data/orders.csv", "data/labelled_requests.jsonl", "data/README.md"
INBOX_DIR, MANIFEST_FILE = "sample_inbox", "MANIFEST.md"
# batch file -> (rows, malformed rows in order of appearance as (kind, argument))
BATCHES: dict[str, tuple[int, tuple[tuple[str, str], ...]]] = {
    "refunds-2026-12-01.csv": (150, (
        ("empty_text", ""), ("bad_received", "yesterday 14:00"), ("invalid_from", "customer at example"),
        ("exact_duplicate", ""), ("overlong_text", ""),
    )),
    "refunds-2026-12-02.jsonl": (150, (
        ("invalid_json", ""), ("null_message_id", ""), ("missing_text_key", ""),
        ("bad_received", "2026-12-32T09:00:00+00:00"),
    )),
}
REASONS = {"damaged": 0.22, "not_received": 0.20, "wrong_item": 0.14, "changed_mind": 0.15, "late": 0.12, "other": 0.17}
AMOUNT_MODES = {"full": 0.60, "with_shipping": 0.08, "part_of_order": 0.08, "none": 0.08, "above_paid": 0.08,
                "other_currency": 0.08}
STATUSES = {"delivered": 0.72, "shipped": 0.10, "processing": 0.04, "cancelled": 0.05, "refunded": 0.09}
CURRENCIES = {"USD": 0.5, "EUR": 0.3, "GBP": 0.2}


def _weighted(rng: Random, options: dict[str, float]) -> str:
    return rng.choices(list(options), weights=list(options.values()), k=1)[0]


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat(timespec="seconds")


_NAMES: dict[str, str] = {}  # address -> the name its owner signs with (the first one drawn)


def _address(rng: Random) -> str:
    first, last = rng.choice(TEXT["first_names"]), rng.choice(TEXT["last_names"])
    address = rng.choice(TEXT["email_formats"]).format(first=first, last=last, f=first[0])
    _NAMES.setdefault(address, f"{first.capitalize()} {last.capitalize()}")
    return address


def _name(address: str) -> str:
    return _NAMES.get(address) or address.split("@")[0]


def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def build_orders(seed: int) -> list[dict[str, Any]]:
    rng = Random(f"{seed}:orders")
    customers = list(dict.fromkeys(_address(rng) for _ in range(320)))[:260]
    ids = rng.sample(range(100000, 1000000), N_ORDERS)
    start = datetime(2026, 8, 1, tzinfo=timezone.utc)
    orders = []
    for n in ids:
        band = rng.random()
        low, high = (8, 60) if band < 0.4 else (60, 200) if band < 0.75 else (200, 950)
        whole = rng.random() < 0.3
        paid = float(rng.randint(low, high)) if whole else rng.randint(low, high - 1) + rng.choice((0.99, 0.5, 0.95, 0.49))
        ts = start + timedelta(days=rng.randint(0, 117), hours=rng.randint(6, 23), minutes=rng.randint(0, 59))
        orders.append({"order_id": f"ORD-{n}", "customer_email": rng.choice(customers), "amount_paid": f"{paid:.2f}",
                       "currency": _weighted(rng, CURRENCIES), "order_date": _iso(ts), "status": _weighted(rng, STATUSES)})
    return sorted(orders, key=lambda o: o["order_date"])


def _money(rng: Random, value: float, currency: str) -> str:
    v = f"{value:.0f}" if value.is_integer() and rng.random() < 0.7 else f"{value:,.2f}"
    return rng.choice(TEXT["amount_formats"][currency]).format(v=v)


def _date(rng: Random, iso: str) -> str:
    d = datetime.fromisoformat(iso)
    month = TEXT["month_names"][d.month - 1]
    return rng.choice(TEXT["date_formats"]).format(day=d.day, month=month, mon=month[:3], iso=f"{d:%Y-%m-%d}")


def compose(rng: Random, order: dict[str, Any], known_ids: set[str]) -> tuple[dict[str, str], dict[str, Any]]:
    """One e-mail about ``order``: (its source columns without id and time, the expected extraction)."""
    reason = _weighted(rng, REASONS)
    bank = TEXT["reasons"][reason]
    item, other_item = rng.sample(TEXT["items"], 2)
    paid, currency = float(order["amount_paid"]), order["currency"]
    order_id: str | None = order["order_id"]
    roll = rng.random()
    if roll < 0.12:
        order_id = None
    elif roll < 0.15:  # a valid-looking id the shop does not know (a typo, another shop's order)
        while order_id in known_ids:
            order_id = f"ORD-{rng.randint(100000, 999999)}"
    sender = order["customer_email"] if rng.random() < 0.94 else _address(rng)
    slots = {"item": item, "other_item": other_item, "a_item": _article(item), "a_other_item": _article(other_item),
             "order_id": order_id or "", "days": rng.randint(5, 21),
             "date": _date(rng, order["order_date"])}

    # the amount asked for, in the currency written
    mode = _weighted(rng, AMOUNT_MODES)
    amount: float | None = paid
    money_currency = currency
    shipping = round(rng.uniform(3.99, 14.99), 2)
    if mode == "other_currency":
        money_currency = rng.choice([c for c in CURRENCIES if c != currency])
    amount_text: str
    if mode == "none":
        amount, amount_text = None, rng.choice(TEXT["no_amount_sentences"])
    elif mode == "with_shipping" and paid > shipping + 5:
        slots.update(amount2=_money(rng, round(paid - shipping, 2), currency), shipping=_money(rng, shipping, currency))
        amount_text = rng.choice(TEXT["two_amounts_max"]).format(amount=_money(rng, paid, currency), **slots)
    elif mode == "part_of_order" and paid >= 20:
        amount = round(paid * rng.uniform(0.3, 0.7), 2)
        amount_text = rng.choice(TEXT["two_amounts_part"]).format(
            total=_money(rng, paid, currency), amount=_money(rng, amount, currency), **slots)
    elif mode == "above_paid":
        amount = round(paid + shipping, 2)
        slots.update(amount2=_money(rng, paid, currency), shipping=_money(rng, shipping, currency))
        amount_text = rng.choice(TEXT["above_paid_sentences"]).format(amount=_money(rng, amount, currency), **slots)
    else:
        amount_text = rng.choice(TEXT["amount_sentences"]).format(amount=_money(rng, paid, money_currency))

    # subject, body
    subjects = bank["subjects"] if rng.random() < 0.45 else (
        TEXT["generic_subjects"] if order_id else TEXT["generic_subjects_no_order"])
    subject = rng.choice(subjects).format(**slots)
    sentences = []
    mixed = reason not in TEXT["mixed_openers"] and rng.random() < 0.1
    if mixed:
        sentences.append(TEXT["mixed_openers"][rng.choice(sorted(TEXT["mixed_openers"]))].format(**slots))
    sentences.append(rng.choice(bank["statements"]).format(**slots))
    ref = rng.choice(TEXT["order_sentences"] if order_id else TEXT["no_order_sentences"]).format(**slots)
    sentences.insert(0 if rng.random() < 0.3 else len(sentences), ref)
    sentences.append(amount_text)
    tone = rng.random()
    if tone < 0.15:
        sentences.append(rng.choice(TEXT["upset"]))
    elif tone < 0.4:
        sentences.append(rng.choice(TEXT["polite"]))
    if rng.random() < 0.2:  # a short note, no greeting or signature
        body = " ".join(sentences)
    else:
        cut = rng.randint(1, len(sentences))
        paras = [rng.choice(TEXT["greetings"]), " ".join(sentences[:cut]), " ".join(sentences[cut:])]
        paras.append(f"{rng.choice(TEXT['closings'])}\n{_name(sender)}")
        body = "\n\n".join(p for p in paras if p)
    expected = {
        "order_id": order_id, "amount": amount, "currency": None if amount is None else money_currency,
        "reason": reason,
        "amount_usd": None if amount is None else round(amount * USD_RATES[money_currency], 2),
    }
    return {"from": sender, "subject": subject, "text": body}, expected


def _received(rng: Random, day: datetime, n: int) -> list[datetime]:
    return sorted(day + timedelta(hours=rng.randint(6, 22), minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))
                  for _ in range(n))


def _emails(rng: Random, orders: Sequence[dict[str, Any]], times: Sequence[datetime], prefix: str):
    known = {o["order_id"] for o in orders}
    out = []
    for k, ts in enumerate(times, start=1):
        eligible = [o for o in orders if datetime.fromisoformat(o["order_date"]) < ts - timedelta(days=2)]
        cols, expected = compose(rng, rng.choice(eligible), known)
        out.append(({"message_id": f"{prefix}-{k:04d}", "from": cols["from"], "received": _iso(ts),
                     "subject": cols["subject"], "text": cols["text"]}, expected))
    return out


def _break(kind: str, arg: str, rec: dict[str, Any], pos: int, rows: list, taken: set[int], rng: Random,
           where: str) -> tuple[dict[str, Any] | str, str, str, str]:
    """One malformed row: (what to write, record id, field, problem)."""
    mid, body = rec["message_id"], FIELD["text"]
    if kind == "empty_text":
        rec["text"] = ""
        return rec, mid, body, f"required field {body} ({where} text) is empty"
    if kind == "missing_text_key":
        del rec["text"]
        return rec, mid, body, f"required field {body} ({where} text) is missing from the JSON object"
    if kind == "bad_received":
        rec["received"] = arg
        return rec, mid, FIELD["received"], f"unparseable timestamp {arg!r} ({where} received)"
    if kind == "invalid_from":
        rec["from"] = arg
        return rec, mid, FIELD["from"], f"invalid e-mail address {arg!r} ({where} from)"
    if kind == "null_message_id":
        rec["message_id"] = None
        return rec, "", "message_id", f"required field message_id ({where} message_id) is null"
    if kind == "overlong_text":
        quote = TEXT["overlong_quote"].format(date=rec["received"][:10], order_id=f"ORD-{rng.randint(100000, 999999)}",
                                              item=rng.choice(TEXT["items"]))
        parts = [rec["text"], "Forwarding our whole conversation again below:"]
        while sum(len(p) + 2 for p in parts) <= MAX_CHARS + 200:
            parts.append(quote)
        rec["text"] = "\n\n".join(parts)
        return rec, mid, body, f"{body} ({where} text) has {len(rec['text'])} characters (limit {MAX_CHARS:,})"
    if kind == "invalid_json":
        full = json.dumps(rec, ensure_ascii=False)
        return full[: full.index('"subject"') + 25], mid, "<line>", "invalid JSON: line is truncated"
    if kind == "exact_duplicate":
        earlier = rng.choice([i for i in range(pos) if i not in taken])
        dup = dict(rows[earlier])
        return dup, dup["message_id"], "message_id", f"duplicate message_id {dup['message_id']}: exact copy of row {earlier + 1}"
    raise ValueError(f"unknown malformed kind {kind!r}")


def build_inbox(orders: Sequence[dict[str, Any]], seed: int):
    files: dict[str, list[dict[str, Any] | str]] = {}
    expected: dict[str, dict[str, Any]] = {}
    malformed: list[Malformed] = []
    for name, (n, plan) in BATCHES.items():
        rng = Random(f"{seed}:inbox:{name}")
        day = datetime.strptime(name[8:18], "%Y-%m-%d").replace(tzinfo=timezone.utc)
        emails = _emails(rng, orders, _received(rng, day, n), f"msg-{day:%Y%m%d}")
        rows: list[dict[str, Any] | str] = [e for e, _ in emails]
        expected.update({e["message_id"]: x for e, x in emails})
        positions = sorted(rng.sample(range(8, n - 2), len(plan)))
        taken = set(positions)
        where = "key" if name.endswith(".jsonl") else "column"
        for (kind, arg), pos in zip(plan, positions):
            out, rid, field, problem = _break(kind, arg, dict(rows[pos]), pos, rows, taken, rng, where)
            rows[pos] = out
            malformed.append(Malformed(file=name, row=pos + 1, record_id=rid, field=field, problem=problem))
        files[name] = rows
    return files, malformed, expected


def _jsonl(rows: Sequence[dict[str, Any] | str]) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")


def readme_text(seed: int, s: dict[str, Any]) -> str:
    inbox = "\n".join(f"| `../{INBOX_DIR}/{n}` | {k} | arriving e-mails |" for n, k in s["inbox_rows"].items())
    reasons = ", ".join(f"{r} {k}" for r, k in s["labelled_reasons"].items())
    return f"""# refund_requests data

Fully synthetic: a web shop's orders and the refund e-mails its customers send. Every file here and
in `../{INBOX_DIR}/` is generated by `{SCRIPT}` (seed `{seed}`) from the phrase bank
`scripts/refund_requests_text.yaml`; regenerating gives byte-identical files:

```
python {SCRIPT}
```

Names and addresses are fictitious (`example.com/.net/.org`).

| file | rows | what |
|---|---:|---|
| `orders.csv` | {s['orders']} | the `orders` lookup: {', '.join(ORDER_COLUMNS)} |
| `labelled_requests.jsonl` | {s['labelled']} | e-mails with the expected extraction, to measure the `refund` task |
{inbox}
| `../{INBOX_DIR}/{MANIFEST_FILE}` | {s['malformed']} | the deliberately malformed inbox rows |

## The e-mails

Source columns (CSV header, JSONL keys): `{', '.join(EMAIL_COLUMNS)}`; the family maps them to its
fields ({', '.join(f'`{c}` -> `{f}`' for c, f in FIELD.items())}). `received` is ISO-8601 UTC.

Each e-mail asks for a refund for one order and gives a reason (damaged, not_received, wrong_item,
changed_mind, late, other). What makes extraction realistic:

- order ids `ORD-` + 6 digits, anywhere in the text; ~12% of e-mails give none, ~3% give one the
  shop does not know;
- amounts written `$45.99`, `45.99 USD`, `USD 45.99`, `EUR 120`, `€120`, `£30`, `30 pounds` ...; ~8%
  give none, ~16% give two (the item plus shipping, asked back in full; or a part of a larger order,
  where the smaller amount is the one asked for), ~8% ask for more than was paid (return postage
  added), ~8% write the amount in another currency than the order's;
- ~10% mention a second complaint before the real reason; ~6% come from an address other than
  the order's; tones from polite to threatening a chargeback.

`labelled_requests.jsonl`: one JSON object per line with the source columns plus `expected`:
`order_id`, `amount` (the amount asked for, in the currency written), `currency`, `reason`,
`amount_usd` (at the family's fixed rates {USD_RATES}). Reasons: {reasons}.

## `orders.csv`

`order_id` (unique), `customer_email`, `amount_paid` (8 .. 950), `currency` (USD / EUR / GBP),
`order_date` (ISO-8601 UTC, 2026-08-01 .. 2026-11-26), `status` (delivered / shipped / processing /
cancelled / refunded).
"""


def generate(out_dir: Path = FAMILY_DIR, seed: int = SEED) -> dict[str, Any]:
    out = Path(out_dir)
    _NAMES.clear()
    orders = build_orders(seed)
    _write(out / ORDERS_FILE, csv_text(ORDER_COLUMNS, orders))

    rng = Random(f"{seed}:labelled")
    start = datetime(2026, 11, 2, tzinfo=timezone.utc)
    times = sorted(start + timedelta(days=rng.randint(0, 27), hours=rng.randint(6, 22), minutes=rng.randint(0, 59))
                   for _ in range(N_LABELLED))
    labelled = _emails(rng, orders, times, "msg-lab")
    _write(out / LABELLED_FILE, _jsonl([{**e, "expected": x} for e, x in labelled]))

    files, malformed, _ = build_inbox(orders, seed)
    for name, rows in files.items():
        _write(out / INBOX_DIR / name, _jsonl(rows) if name.endswith(".jsonl") else csv_text(EMAIL_COLUMNS, rows))
    rows_per_file = {name: len(rows) for name, rows in files.items()}
    _write(out / INBOX_DIR / MANIFEST_FILE, manifest_text(
        generated_by=SCRIPT, files=list(BATCHES), rows_per_file=rows_per_file, malformed=malformed,
        id_column="message_id",
        notes=[f"`field` is the family's record field (`{'`, `'.join(FIELD.values())}`); the problem names the",
               "source column or JSON key it comes from. A row without an id shows an empty id cell."],
    ))
    summary = {
        "seed": seed, "orders": len(orders), "labelled": len(labelled), "inbox_rows": rows_per_file,
        "malformed": len(malformed),
        "labelled_reasons": dict(Counter(x["reason"] for _, x in labelled).most_common()),
        "labelled_without_order_id": sum(x["order_id"] is None for _, x in labelled),
        "labelled_without_amount": sum(x["amount"] is None for _, x in labelled),
    }
    _write(out / README_FILE, readme_text(seed, summary))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the deterministic refund_requests data set.")
    parser.add_argument("--out", type=Path, default=FAMILY_DIR, help="family folder to write data/ and sample_inbox/ into")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    print(json.dumps(generate(args.out, args.seed), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
