"""Where tickets and context data come from: the inbox folder and the context source files.

The defaults point at the bundled sample data so a fresh clone runs with no configuration;
set ``INBOX_DIR`` / ``CONTEXT_DIR`` (or the resource fields) to read elsewhere.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import BaseModel, Field, ValidationError, field_validator

from .warehouse import PROJECT_ROOT, data_dir

BUNDLED_SAMPLE_DIR = PROJECT_ROOT / "orchestration_assets" / "sample_data"
INBOX_SUFFIXES = (".csv", ".jsonl", ".ndjson")


class TicketInbox(dg.ConfigurableResource):
    """The folder where ticket batch files (CSV or JSONL) arrive; one file = one partition."""

    path: str = ""

    @property
    def directory(self) -> Path:
        p = Path(self.path) if self.path else data_dir() / "inbox"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def batch_files(self) -> list[Path]:
        """Batch files currently in the inbox, oldest name first (names carry the batch date)."""
        return sorted(
            p for p in self.directory.iterdir() if p.is_file() and p.suffix.lower() in INBOX_SUFFIXES
        )

    def file_for(self, partition_key: str) -> Path:
        path = self.directory / partition_key
        if not path.is_file():
            raise FileNotFoundError(
                f"batch file {partition_key!r} is not in the inbox {self.directory}; "
                "was it moved or deleted after the partition was registered?"
            )
        return path

    def seed_from_sample(self, sample_inbox: Path | None = None) -> list[Path]:
        """Copy the bundled sample batch files into the inbox (skips files already there)."""
        src = sample_inbox or BUNDLED_SAMPLE_DIR / "inbox"
        copied = []
        for f in sorted(src.iterdir()):
            if f.suffix.lower() in INBOX_SUFFIXES and not (self.directory / f.name).exists():
                shutil.copy2(f, self.directory / f.name)
                copied.append(self.directory / f.name)
        return copied


class ContextDataError(ValueError):
    """A context source file has a row that does not validate; the message names file, row and field."""


class AccountRow(BaseModel):
    account_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    tier: Literal["free", "pro", "business", "enterprise"]
    is_vip: bool
    arr_usd: float = Field(ge=0)
    region: str = Field(min_length=1)
    csm_email: str | None = None
    created_at: str | None = None


class ProductRow(BaseModel):
    sku: str = Field(min_length=1)
    name: str = Field(min_length=1)
    product_line: str = Field(min_length=1)
    price_usd: float = Field(gt=0)
    billing: str = Field(min_length=1)


class ArticleRow(BaseModel):
    article_id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    category: str = Field(min_length=1)
    url: str = Field(min_length=1)
    body: str = Field(min_length=20)

    @field_validator("body")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()


def _validate_rows(records: list[dict], model: type[BaseModel], file: str) -> pd.DataFrame:
    rows, errors = [], []
    for i, rec in enumerate(records, start=1):
        try:
            rows.append(model.model_validate(rec).model_dump())
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(x) for x in err["loc"]) or "<row>"
                errors.append(f"{file}, row {i}, field {loc!r}: {err['msg']} (value {err.get('input')!r})")
    if errors:
        shown = "\n".join(errors[:20])
        more = f"\n… and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ContextDataError(f"{len(errors)} invalid value(s) in {file}:\n{shown}{more}")
    return pd.DataFrame(rows, columns=list(model.model_fields))


class ContextSources(dg.ConfigurableResource):
    """Context data for triage: CRM accounts, product catalog, knowledge-base articles.

    Reads ``crm_accounts.csv``, ``product_catalog.csv`` and ``knowledge_base.jsonl`` from
    ``directory`` (default: the bundled sample data) and validates every row.
    """

    directory: str = ""

    @property
    def root(self) -> Path:
        return Path(self.directory) if self.directory else BUNDLED_SAMPLE_DIR

    def _csv(self, name: str) -> list[dict]:
        path = self.root / name
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        return [{k: (v if v != "" else None) for k, v in rec.items()} for rec in df.to_dict(orient="records")]

    def accounts(self) -> pd.DataFrame:
        df = _validate_rows(self._csv("crm_accounts.csv"), AccountRow, "crm_accounts.csv")
        dupes = df["account_id"][df["account_id"].duplicated()].tolist()
        if dupes:
            raise ContextDataError(f"crm_accounts.csv: duplicate account_id values {dupes[:10]}")
        return df

    def products(self) -> pd.DataFrame:
        return _validate_rows(self._csv("product_catalog.csv"), ProductRow, "product_catalog.csv")

    def articles(self) -> pd.DataFrame:
        path = self.root / "knowledge_base.jsonl"
        records = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ContextDataError(f"knowledge_base.jsonl, line {i}: invalid JSON: {exc.msg}") from exc
        return _validate_rows(records, ArticleRow, "knowledge_base.jsonl")
