"""`bench/evaluate.py` on a labelled export as users have it: a report and a JSON line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
LABELLED = REPO / "orchestration_assets" / "defs" / "support_triage" / "data" / "labelled_tickets.csv"


def run(csv: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "bench" / "evaluate.py"), "--csv", str(csv), "--text-col", "body",
                           "--label-col", "category", *extra], capture_output=True, text=True, timeout=300, cwd=REPO)


def test_a_dirty_export_with_single_row_classes_and_empty_texts_is_reported_not_a_traceback(tmp_path):
    df = pd.read_csv(LABELLED, dtype=str, keep_default_na=False).head(800)[["body", "category"]]
    dirty = pd.concat([
        df,
        df.head(20),                                                       # exact duplicates
        pd.DataFrame({"body": ["", "   ", "\n"], "category": "billing"}),  # empty texts
        pd.DataFrame({"body": ["the only row of its kind, about parking permits"], "category": "parking"}),
        pd.DataFrame({"body": ["a second lonely class about the cafeteria menu"], "category": "cafeteria"}),
        pd.DataFrame({"body": [df["body"].iloc[5]], "category": "privacy"}),  # same text, another label
        pd.DataFrame({"body": ["no label on this one"], "category": [""]}),
    ], ignore_index=True)
    path = tmp_path / "export.csv"
    dirty.to_csv(path, index=False)
    out = run(path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stdout + out.stderr
    assert "dropped 3 rows: empty text" in out.stdout and "rare label" in out.stdout and "no label" in out.stdout
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["classes"] == 8 and result["macro_f1"] > 0.6 > result["baseline_macro_f1"]
    assert result["report"]["rows_in"] == len(dirty)


def test_an_unusable_file_is_a_readable_error(tmp_path):
    path = tmp_path / "one_class.csv"
    pd.DataFrame({"body": ["a", "b c", "d e f"], "category": ["x", "x", "x"]}).to_csv(path, index=False)
    out = run(path)
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
    assert "error" in json.loads(out.stdout.strip().splitlines()[-1])
