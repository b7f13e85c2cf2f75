"""The malformed rows a family's sample inbox declares in its ``MANIFEST.md``.

Every family folder with a sample inbox (``source.sample`` in its ``defs.yaml``, ``sample_inbox/``
by default) lists its deliberately malformed rows in a Markdown table::

    | file | row | <id column> | field | problem |

``row`` is 1-based (CSV: data record after the header, as ``csv.reader`` reads it; JSONL: line
number); ``field`` is the record field at fault, ``<row>`` (a CSV record that cannot be split into
the header's columns) or ``<line>`` (a JSONL line that is not a JSON object). Ingestion must
quarantine exactly these rows, naming that field. A second table gives rows per file::

    | file | rows | malformed | valid |

Usage: ``load_manifest("orchestration_assets/defs/it_service_desk")`` (a family folder, its sample
folder or the MANIFEST.md itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

MANIFEST_FILE = "MANIFEST.md"
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True)
class Malformed:
    """One listed row: where it is, the record id it carries (if any), the field at fault and why."""

    file: str
    row: int
    record_id: str
    field: str
    problem: str
    id_column: str = "id"


@dataclass(frozen=True)
class FileCounts:
    rows: int
    malformed: int
    valid: int


def manifest_path(path: str | Path) -> Path:
    """The MANIFEST.md of a family folder (via its ``source.sample``), a sample folder, or the file itself."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / MANIFEST_FILE).is_file():
        return path / MANIFEST_FILE
    spec = path / "defs.yaml"
    if spec.is_file():
        doc = yaml.safe_load(spec.read_text(encoding="utf-8")) or {}
        sample = ((doc.get("attributes") or {}).get("source") or {}).get("sample") or "sample_inbox"
        return path / sample / MANIFEST_FILE
    return path / "sample_inbox" / MANIFEST_FILE


def _cells(line: str) -> list[str] | None:
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")):
        return None
    return [c.strip().replace("\\|", "|") for c in _UNESCAPED_PIPE.split(line[1:-1])]


def _tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header, rows) of every Markdown table in ``text``."""
    tables: list[tuple[list[str], list[list[str]]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        header = _cells(lines[i])
        sep = _cells(lines[i + 1]) if i + 1 < len(lines) else None
        if header and sep and all(re.fullmatch(r":?-{3,}:?", c) for c in sep) and len(sep) == len(header):
            rows = []
            i += 2
            while i < len(lines) and (cells := _cells(lines[i])) is not None:
                rows.append(cells)
                i += 1
            tables.append((header, rows))
        else:
            i += 1
    return tables


def load_manifest(path: str | Path) -> list[Malformed]:
    """The malformed rows listed in a family's sample-inbox manifest, in the order listed."""
    file = manifest_path(path)
    out: list[Malformed] = []
    for header, rows in _tables(file.read_text(encoding="utf-8")):
        if len(header) == 5 and header[:2] == ["file", "row"] and header[3:] == ["field", "problem"]:
            for cells in rows:
                if len(cells) != 5 or not cells[1].isdigit():
                    raise ValueError(f"{file}: malformed manifest row {cells}")
                out.append(Malformed(file=cells[0], row=int(cells[1]), record_id=cells[2], field=cells[3],
                                     problem=cells[4], id_column=header[2]))
    return out


def load_manifest_counts(path: str | Path) -> dict[str, FileCounts]:
    """Rows, malformed rows and valid rows per batch file (the ``**total**`` line left out)."""
    file = manifest_path(path)
    out: dict[str, FileCounts] = {}
    for header, rows in _tables(file.read_text(encoding="utf-8")):
        if header == ["file", "rows", "malformed", "valid"]:
            for cells in rows:
                if cells[0].startswith("**"):
                    continue
                out[cells[0]] = FileCounts(*(int(c) for c in cells[1:]))
    return out
