"""The bundled sample data: reproducible, complete, realistic and with known bad rows."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest

from orchestration_assets.core import sample_data as sd
from orchestration_assets.core.tickets import BODY_MAX_CHARS, BODY_MIN_CHARS, CHANNELS, REQUIRED_FIELDS
from resources.providers.base import CATEGORIES, PRIORITIES

DATA = sd.sample_data_dir()


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _inbox_records(name: str) -> list[tuple[int, object]]:
    """(row number, record) for every data row; a record is a dict, or the raw text if unparseable."""
    text = (DATA / sd.INBOX_DIR / name).read_text(encoding="utf-8")
    out: list[tuple[int, object]] = []
    if name.endswith(".csv"):
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader)
        for i, values in enumerate(reader, start=1):
            out.append((i, dict(zip(header, values)) if len(values) == len(header) else values))
    else:
        for i, line in enumerate(text.splitlines(), start=1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = line
            out.append((i, obj))
    return out


def _problems(record: object) -> set[str]:
    """Independent validation of one inbox row: the set of fields at fault."""
    if not isinstance(record, dict):
        return {"<row>"}
    bad = set()
    for name in REQUIRED_FIELDS:
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            bad.add(name)
    try:
        datetime.fromisoformat(str(record.get("created_at")))
    except ValueError:
        bad.add("created_at")
    if record.get("channel") not in CHANNELS:
        bad.add("channel")
    body = record.get("body")
    if isinstance(body, str) and not BODY_MIN_CHARS <= len(body.strip()) <= BODY_MAX_CHARS:
        bad.add("body")
    return bad


@pytest.fixture(scope="module")
def labelled() -> list[dict[str, str]]:
    return _read_csv(DATA / sd.LABELLED_TICKETS_FILE)


@pytest.fixture(scope="module")
def inbox_rows() -> dict[str, list[tuple[int, object]]]:
    return {name: _inbox_records(name) for name in sd.INBOX_FILES}


@pytest.fixture(scope="module")
def manifest() -> list[sd.Malformed]:
    return sd.load_manifest()


def _valid_inbox_tickets(inbox_rows, manifest) -> list[dict]:
    listed = {(m.file, m.row) for m in manifest}
    return [rec for name, rows in inbox_rows.items() for i, rec in rows if (name, i) not in listed]


def test_regenerating_gives_byte_identical_files(tmp_path):
    sd.generate(tmp_path)
    committed = sorted(p.relative_to(DATA) for p in DATA.rglob("*") if p.is_file())
    regenerated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert regenerated == committed
    for rel in committed:
        assert (tmp_path / rel).read_bytes() == (DATA / rel).read_bytes(), f"{rel} differs from the committed copy"


def test_file_constants_point_at_the_committed_files():
    for name in (sd.LABELLED_TICKETS_FILE, sd.CRM_ACCOUNTS_FILE, sd.PRODUCT_CATALOG_FILE, sd.KNOWLEDGE_BASE_FILE, sd.README_FILE):
        assert (DATA / name).is_file()
    assert sorted(p.name for p in (DATA / sd.INBOX_DIR).glob("batch-*")) == sorted(sd.INBOX_FILES)
    assert (DATA / sd.INBOX_DIR / sd.MANIFEST_FILE).is_file()
    assert sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file()) < 6_000_000


def test_labelled_tickets_are_clean_and_cover_the_categories(labelled):
    assert len(labelled) == 3000
    assert tuple(labelled[0].keys()) == sd.TICKET_COLUMNS
    assert all(not _problems(t) for t in labelled)
    assert len({t["ticket_id"] for t in labelled}) == 3000
    assert {t["priority"] for t in labelled} == set(PRIORITIES)
    assert {t["channel"] for t in labelled} == set(CHANNELS)
    counts = Counter(t["category"] for t in labelled)
    assert set(counts) == set(CATEGORIES)
    assert 2 < max(counts.values()) / min(counts.values()) < 6  # unbalanced, not extreme
    days = {datetime.fromisoformat(t["created_at"]).date() for t in labelled}
    assert min(days) >= date(2026, 9, 1) and max(days) < date(2026, 11, 23)
    assert all(t["created_at"].endswith("+00:00") for t in labelled)


def test_inbox_has_enough_rows_on_the_files_dates_with_fresh_ids(inbox_rows, manifest, labelled):
    valid = _valid_inbox_tickets(inbox_rows, manifest)
    assert sum(len(rows) for rows in inbox_rows.values()) >= 2000
    assert len(valid) >= 2000
    assert len({t["category"] for t in valid}) >= 6
    for name, rows in inbox_rows.items():
        listed = {m.row for m in manifest if m.file == name}
        assert 3 <= len(listed) <= 6
        day = name[len("batch-"):len("batch-") + 10]
        dated = [r for i, r in rows if i not in listed]
        assert all(r["created_at"].startswith(day) for r in dated), name
    inbox_ids = {t["ticket_id"] for t in valid}
    assert not inbox_ids & {t["ticket_id"] for t in labelled}


def test_every_account_id_exists_in_the_crm_except_the_malformed_rows(labelled, inbox_rows, manifest):
    accounts = {a["account_id"] for a in _read_csv(DATA / sd.CRM_ACCOUNTS_FILE)}
    assert all(t["account_id"] in accounts for t in labelled)
    assert all(t["account_id"] in accounts for t in _valid_inbox_tickets(inbox_rows, manifest))


def test_exactly_the_manifest_rows_are_malformed(inbox_rows, manifest):
    listed = {(m.file, m.row): m for m in manifest}
    for name, rows in inbox_rows.items():
        seen: dict[str, int] = {}
        for i, record in rows:
            fields = _problems(record)
            if not fields:
                tid = record["ticket_id"]
                if tid in seen:
                    fields = {"ticket_id"}
                seen.setdefault(tid, i)
            entry = listed.get((name, i))
            if entry is None:
                assert not fields, f"{name} row {i} is malformed ({fields}) but not in the manifest"
                continue
            assert fields, f"{name} row {i} is listed in the manifest but is valid"
            expected = {"<line>": "<row>"}.get(entry.field, entry.field)
            assert expected in fields, f"{name} row {i}: manifest says {entry.field}, found {fields}"
            if isinstance(record, dict) or entry.field == "<row>":
                assert entry.ticket_id in (json.dumps(record) if not isinstance(record, str) else record)
    kinds = {m.problem.split(":")[0].split(" ")[0] for m in manifest}
    assert len(manifest) == len(listed) == 20 and len(kinds) >= 6


def test_malformed_rows_cover_the_documented_failure_modes(manifest):
    problems = " | ".join(m.problem for m in manifest)
    for needle in ("'yesterday'", "'2026-13-45'", "'fax'", "duplicate ticket_id", "whitespace only",
                   "body is empty", "limit 10,000", "fields instead of 9", "invalid JSON", "JSON array",
                   "account_id is empty"):
        assert needle in problems


def test_pii_injection_legal_and_deletion_phrases_are_present(labelled, inbox_rows, manifest):
    tickets = labelled + _valid_inbox_tickets(inbox_rows, manifest)
    texts = [f"{t['subject']}\n{t['body']}" for t in tickets]
    n = len(texts)
    pii = re.compile(
        r"@mail\.example\.org|\+1 415-555-01\d\d|\(\d{3}\) 555-01\d\d|\(020\) 7946 0\d{3}|07700 900\d{3}|\+44 20 7946"
        r"|4111[ -]?1111[ -]?1111[ -]?1111|\b\d{4} \d{4} \d{4} \d{4}\b|\b[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){3,}|415\.555|\+61 491"
    )
    share = sum(bool(pii.search(t)) for t in texts) / n
    assert 0.08 < share < 0.16
    assert any("4111 1111 1111 1111" in t for t in texts)
    assert any("DE89 3704 0044 0532 0130 00" in t for t in texts)
    injection = re.compile(r"(?i)ignore (all )?(previous|prior) instructions|disregard your (rules|guidelines)")
    assert 0.004 < sum(bool(injection.search(t)) for t in texts) / n < 0.02
    legal = re.compile(r"(?i)my lawyer|small claims|GDPR complaint|legal action|legal department")
    assert 0.01 < sum(bool(legal.search(t)) for t in texts) / n < 0.04
    deletion = Counter(t["category"] for t, x in zip(tickets, texts) if re.search(r"(?i)delete all my data|right to be forgotten", x))
    assert deletion.most_common(1)[0][0] == "privacy" and deletion["privacy"] > sum(deletion.values()) / 2
    big_refunds = [x for t, x in zip(tickets, texts) if t["category"] == "refund" and re.search(r"\$(?:[5-9]\d\d|\d,\d{3})", x)]
    assert len(big_refunds) >= 30


def test_priority_follows_content_but_not_deterministically(labelled):
    outage_words = r"(?i)platform is down|is there an outage|production is down|service unavailable across|everything is down|been down for over|login is down"
    outage = [t for t in labelled if re.search(outage_words, t["body"])]
    assert len(outage) >= 50
    assert sum(t["priority"] in ("high", "urgent") for t in outage) / len(outage) > 0.8
    how_to = Counter(t["priority"] for t in labelled if t["category"] == "product_question")
    assert how_to["low"] > how_to["high"] + how_to["urgent"]
    assert len(how_to) == 4  # not a rule: every priority occurs


def test_crm_catalog_and_knowledge_base_are_consistent():
    accounts = _read_csv(DATA / sd.CRM_ACCOUNTS_FILE)
    assert len(accounts) == 300 and tuple(accounts[0]) == sd.CRM_COLUMNS
    assert len({a["name"] for a in accounts}) == 300
    arr_range = {"free": (0, 0), "pro": (600, 4800), "business": (6000, 48000), "enterprise": (60000, 950000)}
    for a in accounts:
        lo, hi = arr_range[a["tier"]]
        assert lo <= int(a["arr_usd"]) <= hi
        assert a["region"] in ("NAM", "EMEA", "APAC", "LATAM")
    vips = [a for a in accounts if a["is_vip"] == "true"]
    assert 0.05 < len(vips) / len(accounts) < 0.11
    assert Counter(a["tier"] for a in vips).most_common(1)[0][0] == "enterprise"

    products = _read_csv(DATA / sd.PRODUCT_CATALOG_FILE)
    assert 35 <= len(products) <= 45 and len({p["sku"] for p in products}) == len(products)
    assert {p["billing"] for p in products} == {"one_time", "monthly", "annual"}

    lines = (DATA / sd.KNOWLEDGE_BASE_FILE).read_text(encoding="utf-8").splitlines()
    articles = [json.loads(line) for line in lines]
    assert len(articles) >= 24 and all(tuple(a) == sd.KB_FIELDS for a in articles)
    assert Counter(a["category"] for a in articles) == {c: 3 for c in CATEGORIES}
    assert all(120 <= len(a["body"].split()) <= 300 for a in articles)
    assert all(a["url"].startswith("https://help.example.com/") for a in articles)
    kb_text = " ".join(a["body"] for a in articles)
    for policy in ("30 days", "$500", "status.example.com", "GDPR", "429 Too Many Requests", "backup codes"):
        assert policy in kb_text


@pytest.mark.slow
def test_ticket_classification_is_learnable_but_not_trivial(labelled, inbox_rows, manifest):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC
    from sklearn.metrics import f1_score

    test = _valid_inbox_tickets(inbox_rows, manifest)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x_train = vec.fit_transform([t["subject"] + "\n" + t["body"] for t in labelled])
    model = LinearSVC().fit(x_train, [t["category"] for t in labelled])
    predicted = model.predict(vec.transform([t["subject"] + "\n" + t["body"] for t in test]))
    macro_f1 = f1_score([t["category"] for t in test], predicted, average="macro")
    assert 0.85 <= macro_f1 <= 0.95
