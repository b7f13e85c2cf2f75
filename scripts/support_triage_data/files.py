"""Writing the generated files: UTF-8, ``\\n`` line endings, columns in a fixed order."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row[c] for c in columns])
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")


def write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="")


def csv_line(values: Sequence[str]) -> str:
    """One CSV record as text, without its line ending."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().rstrip("\n")
