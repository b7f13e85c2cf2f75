"""The bundled support_triage data: reproducible, complete, realistic and with known bad rows.

The data is checked against the family's own spec (``defs.yaml``: required fields, allowed values,
length limits), not against platform constants: the platform knows no ticket.
"""

from __future__ import annotations

import csv
import io
import json
import re
import string
import subprocess
import sys
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from scripts.support_triage_data import generate as gen
from scripts.support_triage_data.bank import load_bank
from scripts.support_triage_data.context import CATALOG_COLUMNS, CRM_COLUMNS, KB_FIELDS
from scripts.support_triage_data.slots import Slots, slot_generators
from scripts.support_triage_data.tickets import TICKET_COLUMNS
from tests.manifest import Malformed, load_manifest, load_manifest_counts

REPO = Path(__file__).resolve().parent.parent
FAMILY = REPO / "orchestration_assets" / "defs" / "support_triage"
DATA = FAMILY / gen.DATA_DIR
INBOX = FAMILY / gen.INBOX_DIR
SPEC = yaml.safe_load((FAMILY / "defs.yaml").read_text(encoding="utf-8"))["attributes"]
FIELDS = SPEC["record"]["fields"]
REQUIRED = tuple(name for name, f in FIELDS.items() if f.get("required"))
CHANNELS = tuple(FIELDS["channel"]["values"])
CATEGORIES = tuple(FIELDS["labelled_category"]["values"])
PRIORITIES = tuple(FIELDS["labelled_priority"]["values"])
BODY_MIN, BODY_MAX = FIELDS["body"]["min_length"], FIELDS["body"]["max_length"]
INBOX_FILES = gen.inbox_files()


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _inbox_records(name: str) -> list[tuple[int, object]]:
    """(row number, record) for every data row; a record is a dict, or the raw text if unparseable."""
    text = (INBOX / name).read_text(encoding="utf-8")
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
    """Independent validation of one inbox row against the family spec: the set of fields at fault."""
    if not isinstance(record, dict):
        return {"<row>"}
    bad = set()
    for name in REQUIRED:
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
    if isinstance(body, str) and not BODY_MIN <= len(body.strip()) <= BODY_MAX:
        bad.add("body")
    return bad


@pytest.fixture(scope="module")
def labelled() -> list[dict[str, str]]:
    return _read_csv(DATA / gen.LABELLED_TICKETS_FILE)


@pytest.fixture(scope="module")
def inbox_rows() -> dict[str, list[tuple[int, object]]]:
    return {name: _inbox_records(name) for name in INBOX_FILES}


@pytest.fixture(scope="module")
def manifest() -> list[Malformed]:
    return load_manifest(FAMILY)


def _valid_inbox_tickets(inbox_rows, manifest) -> list[dict]:
    listed = {(m.file, m.row) for m in manifest}
    return [rec for name, rows in inbox_rows.items() for i, rec in rows if (name, i) not in listed]


def _files(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


# ---- reproducibility and layout ---------------------------------------------------------------


def test_regenerating_gives_byte_identical_files(tmp_path):
    gen.generate(tmp_path)
    for sub in (gen.DATA_DIR, gen.INBOX_DIR):
        committed, regenerated = _files(FAMILY / sub), _files(tmp_path / sub)
        assert regenerated == committed, sub
        for rel in committed:
            assert (tmp_path / sub / rel).read_bytes() == (FAMILY / sub / rel).read_bytes(), f"{sub}/{rel} differs"


def test_generator_runs_as_a_script_without_the_platform(tmp_path):
    """`python scripts/support_triage_data/generate.py --out DIR` works from anywhere and imports no platform code."""
    script = REPO / "scripts" / "support_triage_data" / "generate.py"
    probe = (
        "import runpy, sys\n"
        "sys.argv = sys.argv[1:]\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'orchestration_assets', 'resources', 'dagster'})\n"
        "assert not bad, f'the generator imports platform code: {bad}'\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(script), "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["labelled_rows"] == 3000
    assert (tmp_path / gen.INBOX_DIR / gen.MANIFEST_FILE).read_bytes() == (INBOX / gen.MANIFEST_FILE).read_bytes()


def test_file_constants_point_at_the_committed_files():
    for name in (gen.LABELLED_TICKETS_FILE, gen.CRM_ACCOUNTS_FILE, gen.PRODUCT_CATALOG_FILE,
                 gen.KNOWLEDGE_BASE_FILE, gen.README_FILE):
        assert (DATA / name).is_file()
    assert sorted(p.name for p in INBOX.glob("batch-*")) == sorted(INBOX_FILES)
    assert (INBOX / gen.MANIFEST_FILE).is_file()
    assert sum(p.stat().st_size for folder in (DATA, INBOX) for p in folder.rglob("*") if p.is_file()) < 6_000_000


def test_spec_files_are_the_generated_ones():
    """Every file the family spec reads from data/ is one the generator writes, with its columns."""
    assert SPEC["source"]["sample"] == gen.INBOX_DIR
    columns = {gen.CRM_ACCOUNTS_FILE: CRM_COLUMNS, gen.PRODUCT_CATALOG_FILE: CATALOG_COLUMNS,
               gen.KNOWLEDGE_BASE_FILE: KB_FIELDS}
    for name, lookup in SPEC["context"].items():
        file = Path(lookup["file"])
        assert file.parent.name == gen.DATA_DIR and file.name in columns, name
        assert tuple(lookup["columns"]) == columns[file.name], name
    for name, task in SPEC["tasks"].items():
        if "training_data" in task:
            assert task["training_data"] == f"{gen.DATA_DIR}/{gen.LABELLED_TICKETS_FILE}", name
    mapped = {SPEC["record"]["columns"].get(c, c) for c in TICKET_COLUMNS}
    assert mapped == set(FIELDS)


def test_manifest_and_readme_name_the_generator():
    assert f"Generated by `{gen.SCRIPT}`" in (INBOX / gen.MANIFEST_FILE).read_text(encoding="utf-8")
    readme = (DATA / gen.README_FILE).read_text(encoding="utf-8")
    assert f"python {gen.SCRIPT}" in readme and "orchestration_assets/core" not in readme


# ---- the text banks ---------------------------------------------------------------------------


def _templates(bank) -> list[str]:
    ph, t = bank.phrases, bank.tickets
    out = [s for c in bank.categories.values() for s in (*c.subjects, *(p for _, p in c.problems), *c.details, *c.asks)]
    out += [p for b in t["borderline"] for p in b["problems"]] + [p for o in t["outages"].values() for p in o["problems"]]
    out += ph["greetings"] + ph["context_sentences"] + ph["quoted_replies"] + ph["injections"]
    out += [s for _, s in ph["pii_sentences"]] + [s for v in ph["tried_steps"].values() for s in v]
    return out


def test_every_slot_a_template_names_has_a_generator():
    bank = load_bank()
    known = set(slot_generators(bank, None, Slots(), datetime(2026, 1, 1), "", "", ""))  # type: ignore[arg-type]
    used = {name for text in _templates(bank) for _, name, _, _ in string.Formatter().parse(text) if name}
    assert used and used <= known, sorted(used - known)


def test_text_banks_cover_the_spec_labels_and_the_catalog():
    bank = load_bank()
    assert bank.labels == CATEGORIES
    assert set(bank.tickets["weights"]) == set(CATEGORIES) == set(bank.tickets["neighbours"])
    assert tuple(bank.tickets["channels"]) == CHANNELS and tuple(bank.tickets["priorities"]) == PRIORITIES
    for pair in (b["pair"] for b in bank.tickets["borderline"]):
        assert set(pair) <= set(CATEGORIES)
    names = {p["name"] for p in bank.catalog["products"]}
    assert set(bank.catalog["devices"]) <= names
    for addon in bank.catalog["addons"]:
        assert any(n == addon or n.startswith(addon + " (") for n in names), addon


# ---- the data ---------------------------------------------------------------------------------


def test_labelled_tickets_are_clean_and_cover_the_categories(labelled):
    assert len(labelled) == 3000
    assert tuple(labelled[0].keys()) == TICKET_COLUMNS
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
    assert all(len(t["subject"]) <= FIELDS["subject"]["max_length"] for t in labelled)


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
    accounts = {a["account_id"] for a in _read_csv(DATA / gen.CRM_ACCOUNTS_FILE)}
    assert all(t["account_id"] in accounts for t in labelled)
    assert all(t["account_id"] in accounts for t in _valid_inbox_tickets(inbox_rows, manifest))


def test_manifest_rows_and_counts(inbox_rows, manifest):
    assert all(m.id_column == "ticket_id" for m in manifest)
    counts = load_manifest_counts(FAMILY)
    assert list(counts) == list(INBOX_FILES)
    for name, c in counts.items():
        assert c.rows == len(inbox_rows[name]) and c.malformed == sum(m.file == name for m in manifest)
        assert c.valid == c.rows - c.malformed


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
                assert entry.record_id in (json.dumps(record) if not isinstance(record, str) else record)
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
    accounts = _read_csv(DATA / gen.CRM_ACCOUNTS_FILE)
    assert len(accounts) == 300 and tuple(accounts[0]) == CRM_COLUMNS
    assert len({a["name"] for a in accounts}) == 300
    arr_range = {"free": (0, 0), "pro": (600, 4800), "business": (6000, 48000), "enterprise": (60000, 950000)}
    for a in accounts:
        lo, hi = arr_range[a["tier"]]
        assert lo <= int(a["arr_usd"]) <= hi
        assert a["region"] in ("NAM", "EMEA", "APAC", "LATAM")
    assert {a["tier"] for a in accounts} == set(SPEC["context"]["crm_accounts"]["columns"]["tier"]["values"])
    vips = [a for a in accounts if a["is_vip"] == "true"]
    assert 0.05 < len(vips) / len(accounts) < 0.11
    assert Counter(a["tier"] for a in vips).most_common(1)[0][0] == "enterprise"

    products = _read_csv(DATA / gen.PRODUCT_CATALOG_FILE)
    assert 35 <= len(products) <= 45 and len({p["sku"] for p in products}) == len(products)
    assert {p["billing"] for p in products} == {"one_time", "monthly", "annual"}

    lines = (DATA / gen.KNOWLEDGE_BASE_FILE).read_text(encoding="utf-8").splitlines()
    articles = [json.loads(line) for line in lines]
    assert len(articles) >= SPEC["context"]["knowledge_base"]["min_rows"]
    assert all(tuple(a) == KB_FIELDS for a in articles)
    assert Counter(a["category"] for a in articles) == {c: 3 for c in CATEGORIES}
    assert all(120 <= len(a["body"].split()) <= 300 for a in articles)
    assert all(a["url"].startswith("https://help.example.com/") for a in articles)
    kb_text = " ".join(a["body"] for a in articles)
    for policy in ("30 days", "$500", "status.example.com", "GDPR", "429 Too Many Requests", "backup codes"):
        assert policy in kb_text


@pytest.mark.slow
def test_ticket_classification_is_learnable_but_not_trivial(labelled, inbox_rows, manifest):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import f1_score
    from sklearn.svm import LinearSVC

    test = _valid_inbox_tickets(inbox_rows, manifest)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x_train = vec.fit_transform([t["subject"] + "\n" + t["body"] for t in labelled])
    model = LinearSVC().fit(x_train, [t["category"] for t in labelled])
    predicted = model.predict(vec.transform([t["subject"] + "\n" + t["body"] for t in test]))
    macro_f1 = f1_score([t["category"] for t in test], predicted, average="macro")
    assert 0.85 <= macro_f1 <= 0.95
