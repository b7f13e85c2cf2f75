"""Sample the bundled it_service_desk data from the public IT service ticket set (CC0).

Reads the full file (47,837 tickets, ``Document`` + ``Topic_group``), draws a seeded sample of
5,000 tickets stratified by ``Topic_group`` and writes, into
``orchestration_assets/defs/it_service_desk/``:

- ``data/labelled_tickets.csv``: 4,000 labelled tickets (``Ticket ID,Opened,Document,Topic_group``);
- ``sample_inbox/helpdesk-export-*.csv|jsonl``: the other 1,000 as three arriving batches in a
  helpdesk export's shape (``Ticket ID,Opened,Requester,Document``), with deliberately malformed
  rows listed in ``sample_inbox/MANIFEST.md``;
- ``data/inbox_labels.csv``: the publisher's label of every valid inbox row (for measuring);
- ``data/README.md``: attribution and how the sample was drawn.

Ticket ids, timestamps and requesters are not in the source: they are added here, seeded.
Deterministic (stdlib ``random`` seeded per purpose, no clock): regenerating gives byte-identical
files. Usage::

    python scripts/it_service_desk_data.py [--source PATH] [--out FAMILY_DIR]

Without the source file (it lives outside the project, in ``../shared/data/``) the script prints
why and exits 0 without touching anything.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from random import Random
from typing import Any, Sequence

if __package__ in (None, ""):  # run as a file: make ``scripts`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.inbox_manifest import Malformed, csv_text, manifest_text  # noqa: E402

SEED = 20261130
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "scripts/it_service_desk_data.py"
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "it_service_tickets" / "tickets.csv.gz"
FAMILY_DIR = ROOT / "orchestration_assets" / "defs" / "it_service_desk"

TEXT, LABEL = "Document", "Topic_group"  # the publisher's columns
ID, OPENED, REQUESTER = "Ticket ID", "Opened", "Requester"  # added here
LABELLED_COLUMNS = (ID, OPENED, TEXT, LABEL)
INBOX_COLUMNS = (ID, OPENED, REQUESTER, TEXT)
# the family's record fields (defs.yaml record.columns), named in the manifest
FIELD = {ID: "ticket_id", OPENED: "opened_at", REQUESTER: "requester", TEXT: "body"}
MAX_CHARS = 8000  # defs.yaml record.fields.body.max_length

N_SAMPLE = 5000
N_INBOX = 1000
LABELLED_FILE = "data/labelled_tickets.csv"
INBOX_LABELS_FILE = "data/inbox_labels.csv"
README_FILE = "data/README.md"
INBOX_DIR = "sample_inbox"
MANIFEST_FILE = "MANIFEST.md"
# batch file -> (rows, malformed rows in order of appearance as (kind, argument))
BATCHES: dict[str, tuple[int, tuple[tuple[str, str], ...]]] = {
    "helpdesk-export-2026-11-30.csv": (350, (
        ("empty_text", ""),
        ("bad_timestamp", "30/11/2026 25:61"),
        ("missing_id", ""),
        ("conflicting_duplicate", ""),
        ("bad_email", "j.smith at corp"),
    )),
    "helpdesk-export-2026-12-01.jsonl": (300, (
        ("invalid_json", ""),
        ("missing_text_key", ""),
        ("null_id", ""),
        ("bad_timestamp", "2026-02-30T10:00:00Z"),
    )),
    "helpdesk-export-2026-12-02.csv": (350, (
        ("overlong_text", ""),
        ("blank_text", "  \t "),
        ("exact_duplicate", ""),
        ("csv_missing_fields", ""),
    )),
}
FIRST_NAMES = ("ana", "ben", "chloe", "david", "elif", "farid", "grace", "hugo", "ines", "jonas", "kaito", "lena",
               "marco", "nadia", "oscar", "priya", "quentin", "rosa", "sven", "tara", "umar", "vera", "wei", "yara")
LAST_NAMES = ("adams", "bauer", "costa", "dimitrov", "eriksen", "fischer", "garcia", "horvat", "ivanova", "jensen",
              "kowalski", "lindqvist", "moreau", "novak", "okafor", "petrov", "quinn", "rossi", "silva", "tanaka")
REQUESTER_DOMAIN = "corp.example.com"


@dataclass(frozen=True)
class Ticket:
    text: str
    label: str


def read_source(path: Path) -> list[Ticket]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        return [Ticket(row[TEXT], row[LABEL]) for row in csv.DictReader(fh)]


def _largest_remainder(counts: dict[str, int], total: int) -> dict[str, int]:
    """``total`` split over the classes in proportion to ``counts`` (sums exactly to ``total``)."""
    n = sum(counts.values())
    exact = {c: total * k / n for c, k in counts.items()}
    out = {c: int(x) for c, x in exact.items()}
    for c in sorted(counts, key=lambda c: (-(exact[c] - out[c]), c))[: total - sum(out.values())]:
        out[c] += 1
    return out


def stratified_split(tickets: Sequence[Ticket], seed: int) -> tuple[list[int], list[int], list[int]]:
    """Indices of (labelled, inbox, rest): a stratified sample of N_SAMPLE split N_SAMPLE-N_INBOX / N_INBOX."""
    rng = Random(f"{seed}:sample")
    by_class: dict[str, list[int]] = {}
    for i, t in enumerate(tickets):
        by_class.setdefault(t.label, []).append(i)
    sizes = _largest_remainder({c: len(v) for c, v in sorted(by_class.items())}, N_SAMPLE)
    inbox_sizes = _largest_remainder(sizes, N_INBOX)
    labelled, inbox = [], []
    for c in sorted(by_class):
        picked = rng.sample(by_class[c], sizes[c])
        inbox += picked[: inbox_sizes[c]]
        labelled += picked[inbox_sizes[c]:]
    chosen = set(labelled) | set(inbox)
    rest = [i for i in range(len(tickets)) if i not in chosen]
    rng.shuffle(labelled)
    rng.shuffle(inbox)
    return labelled, inbox, rest


def _times(rng: Random, first_day: datetime, days: int, n: int) -> list[datetime]:
    """``n`` sorted office-hours timestamps (weekdays weigh more) over ``days`` days from ``first_day``."""
    day_list = [first_day + timedelta(days=i) for i in range(days)]
    weights = [0.2 if d.weekday() >= 5 else 1.0 for d in day_list]
    hours = list(range(24))
    hour_w = [1, 1, 1, 1, 1, 1, 2, 5, 9, 10, 10, 9, 7, 9, 10, 9, 8, 6, 3, 2, 2, 1, 1, 1]
    out = []
    for _ in range(n):
        day = rng.choices(day_list, weights=weights, k=1)[0]
        h = rng.choices(hours, weights=hour_w, k=1)[0]
        out.append(day.replace(hour=h, minute=rng.randrange(60), second=rng.randrange(60)))
    return sorted(out)


def _iso(ts: datetime, zulu: bool = False) -> str:
    text = ts.astimezone(timezone.utc).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z") if zulu else text


def _requesters(seed: int) -> list[str]:
    rng = Random(f"{seed}:requesters")
    pairs = rng.sample([(f, s) for f in FIRST_NAMES for s in LAST_NAMES], 240)
    return [f"{f}.{s}@{REQUESTER_DOMAIN}" for f, s in pairs]


def _ticket_id(n: int) -> str:
    return f"ITS-{n:06d}"


def _jsonl_text(columns: Sequence[str], rows: Sequence[dict[str, Any] | str]) -> str:
    return "".join(
        (row if isinstance(row, str) else json.dumps({c: row[c] for c in columns if c in row}, ensure_ascii=False)) + "\n"
        for row in rows
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")


def _break(kind: str, arg: str, rec: dict[str, Any], pos: int, rows: list, taken: set[int], rng: Random,
           tickets: Sequence[Ticket], rest: Sequence[int], label: str, where: str) -> tuple[dict[str, Any] | str, str, str, str]:
    """One malformed row: (what to write, record id, field, problem); ``where`` is "column" or "key"."""
    tid = rec[ID]
    if kind == "empty_text":
        rec[TEXT] = ""
        return rec, tid, FIELD[TEXT], f"required field {FIELD[TEXT]} ({where} {TEXT}) is empty"
    if kind == "blank_text":
        rec[TEXT] = arg
        return rec, tid, FIELD[TEXT], f"{FIELD[TEXT]} ({where} {TEXT}) is whitespace only"
    if kind == "missing_text_key":
        del rec[TEXT]
        return rec, tid, FIELD[TEXT], f"required field {FIELD[TEXT]} ({where} {TEXT}) is missing from the JSON object"
    if kind == "bad_timestamp":
        rec[OPENED] = arg
        return rec, tid, FIELD[OPENED], f"unparseable timestamp {arg!r} ({where} {OPENED})"
    if kind == "missing_id":
        rec[ID] = ""
        return rec, "", FIELD[ID], f"required field {FIELD[ID]} ({where} {ID}) is empty"
    if kind == "null_id":
        rec[ID] = None
        return rec, "", FIELD[ID], f"required field {FIELD[ID]} ({where} {ID}) is null"
    if kind == "bad_email":
        rec[REQUESTER] = arg
        return rec, tid, FIELD[REQUESTER], f"invalid e-mail address {arg!r} ({where} {REQUESTER})"
    if kind == "overlong_text":
        # a pasted mail thread: documents of the same topic run together
        pool = [i for i in rest if tickets[i].label == label]
        parts = [rec[TEXT]]
        while sum(len(p) + 1 for p in parts) <= MAX_CHARS + 200:
            parts.append(tickets[rng.choice(pool)].text)
        rec[TEXT] = " ".join(parts)
        return rec, tid, FIELD[TEXT], f"{FIELD[TEXT]} ({where} {TEXT}) has {len(rec[TEXT])} characters (limit {MAX_CHARS:,})"
    if kind == "csv_missing_fields":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow([rec[c] for c in INBOX_COLUMNS][:2])
        return buf.getvalue(), tid, "<row>", f"line cut off after {OPENED}: 2 fields instead of {len(INBOX_COLUMNS)}"
    if kind == "invalid_json":
        full = json.dumps(rec, ensure_ascii=False)
        return full[: full.index(f'"{TEXT}"') + 30], tid, "<line>", "invalid JSON: line is truncated"
    earlier = rng.choice([i for i in range(pos) if i not in taken])
    if kind == "exact_duplicate":
        dup = dict(rows[earlier])
        return dup, dup[ID], FIELD[ID], f"duplicate {FIELD[ID]} {dup[ID]}: exact copy of row {earlier + 1}"
    if kind == "conflicting_duplicate":
        rec[ID] = rows[earlier][ID]
        return rec, rec[ID], FIELD[ID], f"duplicate {FIELD[ID]} {rec[ID]}: same id as row {earlier + 1} with different content"
    raise ValueError(f"unknown malformed kind {kind!r}")


def build_inbox(tickets: Sequence[Ticket], inbox: Sequence[int], rest: Sequence[int], seed: int):
    """Batch file -> rows; the malformed rows; (ticket id, label) of every valid row."""
    requesters = _requesters(seed)
    files: dict[str, list[dict[str, Any] | str]] = {}
    malformed: list[Malformed] = []
    truth: list[tuple[str, str]] = []
    next_id = N_SAMPLE - N_INBOX + 1
    start = 0
    for name, (n, plan) in BATCHES.items():
        rng = Random(f"{seed}:inbox:{name}")
        day = datetime.strptime(name[16:26], "%Y-%m-%d").replace(tzinfo=timezone.utc)
        zulu = name.endswith(".jsonl")
        idx = inbox[start:start + n]
        start += n
        times = _times(rng, day, 1, n)
        rows: list[dict[str, Any] | str] = []
        labels: list[str] = []
        for k, (i, ts) in enumerate(zip(idx, times)):
            rows.append({ID: _ticket_id(next_id + k), OPENED: _iso(ts, zulu), REQUESTER: rng.choice(requesters),
                         TEXT: tickets[i].text})
            labels.append(tickets[i].label)
        next_id += n
        positions = sorted(rng.sample(range(8, n - 2), len(plan)))
        taken = set(positions)
        bad_rows = set()
        for (kind, arg), pos in zip(plan, positions):
            out, rid, field, problem = _break(kind, arg, dict(rows[pos]), pos, rows, taken, rng, tickets, rest, labels[pos],
                                              "key" if zulu else "column")
            rows[pos] = out
            bad_rows.add(pos)
            malformed.append(Malformed(file=name, row=pos + 1, record_id=rid, field=field, problem=problem))
        truth += [(r[ID], labels[k]) for k, r in enumerate(rows) if k not in bad_rows]
        files[name] = rows
    assert start == len(inbox), (start, len(inbox))
    return files, malformed, truth


def readme_text(seed: int, summary: dict[str, Any]) -> str:
    lab, inb, full = summary["labelled_by_class"], summary["inbox_by_class"], summary["source_by_class"]
    rows = "\n".join(f"| {c} | {full[c]:,} | {lab[c]} | {inb[c]} |" for c in sorted(full, key=lambda c: -full[c]))
    files = "\n".join(f"| `../{INBOX_DIR}/{name}` | {summary['inbox_rows'][name]} |" for name in BATCHES)
    return f"""# it_service_desk data

A seeded sample of a real, public data set: IT service desk tickets labelled with the topic
group that resolved them.

## Source and license

- Data set: "IT Service Ticket Classification Dataset" (Kaggle, owner Adison Goh), as mirrored in
  the GitHub repository Lunalykaya/IT-Service-Ticket-Classification (`data/archive (50).zip`).
- License: **CC0 1.0 Public Domain**. No attribution is required; we give it anyway.
- The full file ({summary['source_rows']:,} tickets) is not bundled: it lives outside the project
  at `../shared/data/it_service_tickets/tickets.csv.gz`.
- The publisher's columns are `{TEXT}` (the ticket text, **already lower-cased with stop words
  removed by the publisher**, so it reads like `unable connect vpn since morning please help`) and
  `{LABEL}` (8 classes).

## What was added here

The source has no ids, dates or people. `{SCRIPT}` adds, seeded:

- `{ID}`: `ITS-000001` .. `ITS-{N_SAMPLE - N_INBOX:06d}` for the labelled file and `ITS-{N_SAMPLE - N_INBOX + 1:06d}` ..
  `ITS-{N_SAMPLE:06d}` for the inbox, in time order (the ids say nothing about the topic);
- `{OPENED}`: ISO-8601 UTC office-hours timestamps (labelled: 2026-06-01 .. 2026-11-28; inbox: the
  batch file's date; the JSONL batch writes UTC as `Z`);
- `{REQUESTER}` (inbox only): fictitious addresses `first.last@{REQUESTER_DOMAIN}`.

The texts and labels are the publisher's, unchanged, except in the deliberately malformed inbox
rows listed in `../{INBOX_DIR}/{MANIFEST_FILE}` (one of them runs several texts of the same topic
together to exceed the {MAX_CHARS:,}-character limit).

## How it was sampled

`python {SCRIPT}` (seed `{seed}`): {N_SAMPLE:,} tickets drawn without replacement,
stratified by `{LABEL}` (each class in proportion to its share of the full file, rounded by
largest remainder), then split, again stratified, into {N_SAMPLE - N_INBOX:,} labelled tickets and
{N_INBOX:,} inbox tickets. Every class, including the rare `Administrative rights`, is in both.
Regenerating gives byte-identical files; without the source file the script says so and stops.

| Topic_group | full file | labelled | inbox |
|---|---:|---:|---:|
{rows}
| **total** | {summary['source_rows']:,} | {summary['labelled_rows']} | {sum(inb.values())} |

## Files

| file | rows |
|---|---:|
| `labelled_tickets.csv` | {summary['labelled_rows']} |
| `inbox_labels.csv` | {summary['inbox_label_rows']} |
{files}
| `../{INBOX_DIR}/{MANIFEST_FILE}` | {summary['malformed_rows']} malformed |

- `labelled_tickets.csv`: `{', '.join(LABELLED_COLUMNS)}`: training data and golden set of the
  `topic` classifier (`label_column: {LABEL}`).
- `../{INBOX_DIR}/helpdesk-export-*`: three arriving batches (two CSV, one JSONL) shaped like a
  helpdesk export: `{', '.join(INBOX_COLUMNS)}`. The family's `record.columns` maps them to its
  fields ({', '.join(f'`{c}` -> `{f}`' for c, f in FIELD.items())}).
- `inbox_labels.csv`: `{ID},{LABEL}`: the publisher's label of every valid inbox row (the
  malformed ones left out), for measuring the classifier on the batches; never read by the models.
"""


def generate(source: Path = DEFAULT_SOURCE, out_dir: Path = FAMILY_DIR, seed: int = SEED) -> dict[str, Any]:
    tickets = read_source(source)
    labelled, inbox, rest = stratified_split(tickets, seed)
    out = Path(out_dir)

    rng = Random(f"{seed}:labelled")
    times = _times(rng, datetime(2026, 6, 1, tzinfo=timezone.utc), 181, len(labelled))
    rows = [{ID: _ticket_id(k + 1), OPENED: _iso(ts), TEXT: tickets[i].text, LABEL: tickets[i].label}
            for k, (i, ts) in enumerate(zip(labelled, times))]
    _write(out / LABELLED_FILE, csv_text(LABELLED_COLUMNS, rows))

    files, malformed, truth = build_inbox(tickets, inbox, rest, seed)
    for name, batch in files.items():
        text = _jsonl_text(INBOX_COLUMNS, batch) if name.endswith(".jsonl") else csv_text(INBOX_COLUMNS, batch)
        _write(out / INBOX_DIR / name, text)
    rows_per_file = {name: len(batch) for name, batch in files.items()}
    _write(out / INBOX_DIR / MANIFEST_FILE, manifest_text(
        generated_by=SCRIPT, files=list(BATCHES), rows_per_file=rows_per_file, malformed=malformed,
        id_column=FIELD[ID],
        notes=[f"`field` is the family's record field (`{'`, `'.join(FIELD.values())}`); the problem names the",
               "source column or JSON key it comes from. A row without an id shows an empty id cell."],
    ))
    _write(out / INBOX_LABELS_FILE, csv_text((ID, LABEL), [{ID: i, LABEL: lb} for i, lb in truth]))

    summary = {
        "seed": seed,
        "source_rows": len(tickets),
        "source_by_class": dict(sorted(Counter(t.label for t in tickets).items())),
        "labelled_rows": len(labelled),
        "labelled_by_class": dict(sorted(Counter(tickets[i].label for i in labelled).items())),
        "inbox_by_class": dict(sorted(Counter(tickets[i].label for i in inbox).items())),
        "inbox_rows": rows_per_file,
        "inbox_label_rows": len(truth),
        "malformed_rows": len(malformed),
    }
    missing = set(summary["source_by_class"]) - set(summary["labelled_by_class"]) - set(summary["inbox_by_class"])
    assert not missing and set(summary["labelled_by_class"]) == set(summary["inbox_by_class"]), missing
    _write(out / README_FILE, readme_text(seed, summary))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sample the bundled it_service_desk data (seeded, deterministic).")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the full tickets.csv.gz")
    parser.add_argument("--out", type=Path, default=FAMILY_DIR, help="family folder to write data/ and sample_inbox/ into")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"skipped: the source data set {args.source} is not here; nothing was written. It is the CC0 "
              "'IT Service Ticket Classification Dataset' (see orchestration_assets/defs/it_service_desk/data/README.md); "
              "pass its path with --source.", file=sys.stderr)
        return 0
    print(json.dumps(generate(args.source, args.out, args.seed), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
