"""``workflow-review`` prints only inert text: nothing from records, answers or errors can drive the terminal."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from orchestration_assets.review_cli import main as review_cli
from resources.warehouse import Warehouse
from tests.governance_fixtures import pending_ids, seed_batch
from tests.workflow import DEFS

ST = "support_triage"
# what a terminal would act on: C0/C1 controls (ESC, BEL, CSI, OSC ... introducers), bidi overrides and
# isolates (text shown in another order than it is), line and paragraph separators
UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
HOSTILE = ("Refund\x1bP1$r0;31m\x1b\\ of\x1b_Gf=100;AAAA\x1b\\ \x1b)0\x1bcthe\x90q\x9c \u202eyppah\u202c "
           "order\u2028now\tplease")


@pytest.fixture
def warehouse(tmp_path, families) -> Warehouse:
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    routing = seed_batch(wh, families[ST], n=5)
    table = families[ST].table("enriched_records")
    enriched = wh.read_table(table).drop(columns=["_partition"])
    first = enriched["record_id"] == pending_ids(routing)[0]
    enriched.loc[first, ["subject", "body", "summary"]] = [HOSTILE, HOSTILE, HOSTILE]
    wh.replace_partition(table, enriched, enriched["partition"].iloc[0])
    return wh


def test_the_queue_shows_record_text_without_escape_strings_or_bidi_overrides(warehouse, capsys):
    assert review_cli(["--warehouse-url", warehouse.url, "queue", "--family", ST]) == 0
    out = capsys.readouterr().out
    assert not UNSAFE.search(out), repr(out)
    # whole DCS/APC strings and two-character escapes go, not just their ESC: no payload is left to read
    assert "Refund of the yppah order now please" in out
    assert not any(remnant in out for remnant in ("1$r", "Gf=100", "AAAA", ")0"))
    assert review_cli(["--warehouse-url", warehouse.url, "queue", "--family", ST, "--json"]) == 0
    out = capsys.readouterr().out
    assert not UNSAFE.search(out) and HOSTILE in [r["subject"] for r in json.loads(out)]  # escaped, kept


def test_an_error_quoting_a_file_is_printed_inert(tmp_path, capsys):
    defs = tmp_path / "defs"
    shutil.copytree(DEFS / ST, defs / ST, ignore=shutil.ignore_patterns("labelled_tickets.csv", "sample_inbox"))
    # the training file's header is quoted by the spec error that names the missing label column
    (defs / ST / "data" / "labelled_tickets.csv").write_text(
        "ticket_id,subject,body,labelled_category\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J,labelled_priority\nT-1,a,b,c,d\n")
    assert review_cli(["--defs", str(defs), "queue", "--family", ST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "tasks.category.label_column: 'labelled_category' is not a column" in err
    assert not UNSAFE.search(err) and "52;c" not in err, repr(err)


def test_an_unreachable_warehouse_is_one_line_naming_it_without_a_traceback(tmp_path, capsys):
    (tmp_path / "w.db").mkdir()  # a folder where the database file should be
    assert review_cli(["--warehouse-url", f"sqlite:///{tmp_path / 'w.db'}", "queue", "--family", ST]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: cannot use the warehouse sqlite:///{tmp_path / 'w.db'} (WAREHOUSE_URL): "
                   f"{tmp_path / 'w.db'} is a folder, not a database file\n")


def test_an_unreadable_edited_text_file_is_one_line(tmp_path, capsys):
    missing = tmp_path / "reply.txt"
    assert review_cli(["decide", "R-1", "--family", ST, "--decision", "edit_and_approve", "--reviewer", "carol",
                       "--edited-text-file", str(missing)]) == 2
    assert capsys.readouterr().err == f"error: cannot read --edited-text-file {missing}: No such file or directory\n"
