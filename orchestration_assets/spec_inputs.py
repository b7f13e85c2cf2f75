"""The spec of what comes in: a family's record (fields, id, text, column mapping), its source and its lookups.

Part of the family spec (:mod:`orchestration_assets.spec`); these sections are what ingestion and
lookups read.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from resources.providers.tasks import IDENTIFIER, Strict

# the id is a column of the audit log and the ledgers, whose columns hold 64 characters
MAX_ID_LENGTH = 64

RecordFieldType = Literal["string", "integer", "number", "boolean", "timestamp", "email"]

# names the platform adds to rows; a field, lookup or task may not take them
RESERVED = frozenset({
    "record_id", "status", "failure_reason", "input_hash", "partition", "run_id", "source_file", "source_row",
    "ingested_at", "enriched_at", "decision", "reasons", "model_version", "prompt_version", "family", "now",
})


def _platform_names(named: dict[str, Any]) -> dict[str, Any]:
    """Names that become columns and condition names: identifiers, none the platform uses itself."""
    bad = [k for k in named if not IDENTIFIER.match(k)]
    if bad:
        raise ValueError(f"names must be lower_snake_case identifiers: {bad}")
    reserved = sorted(set(named) & RESERVED)
    if reserved:
        raise ValueError(f"name(s) {reserved} are reserved by the platform")
    return named


class FieldSpec(Strict):
    """One field of the record."""

    type: RecordFieldType = "string"
    required: bool = False
    values: list[str] | None = Field(None, description="allowed values (after normalize)")
    normalize: Literal["lower", "upper", "strip"] = "strip"
    min_length: int | None = Field(None, ge=0)
    max_length: int | None = Field(None, ge=1)
    pattern: str | None = Field(None, description="a regular expression the whole value must match, e.g. ^ITS-\\d{6}$")
    truth_for: str | None = Field(None, description="a classify task whose known answer this field holds")
    description: str = ""

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _bounds(self) -> "FieldSpec":
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} is above max_length {self.max_length}")
        if self.values is not None and not self.values:
            raise ValueError("values must list at least one allowed value")
        return self


class TimestampSpec(Strict):
    """How the record's timestamp values are read: one declared reading, never a guess per row."""

    date_order: Literal["day_first", "month_first"] | None = Field(
        None, description="order of 03/04/2026-style dates; none = a date that reads both ways is quarantined")
    timezone: str = Field("UTC", description="IANA timezone of a time written without an offset")
    min_year: int = Field(1970, ge=1, le=9999, description="earliest year accepted")
    max_year: int = Field(2100, ge=1, le=9999, description="latest year accepted")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder of zones
            raise ValueError(f"{v!r} is not an IANA timezone name such as UTC or Europe/Berlin") from None
        return v

    @model_validator(mode="after")
    def _years(self) -> "TimestampSpec":
        if self.min_year > self.max_year:
            raise ValueError(f"min_year: {self.min_year} is after max_year {self.max_year}")
        return self


class RecordSpec(Strict):
    """What one input record is: its fields, its id, its timestamp and the text models read."""

    id: str = Field(..., description="the field that identifies a record")
    timestamp: str | None = Field(None, description="a timestamp field: when the record happened (KPI day)")
    text: list[str] = Field(..., min_length=1, description="fields joined into the text models read")
    fields: dict[str, FieldSpec] = Field(..., min_length=1)
    columns: dict[str, str] = Field(default_factory=dict, description="source column name -> field")
    timestamps: TimestampSpec = TimestampSpec()

    @field_validator("fields")
    @classmethod
    def _names(cls, v: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        return _platform_names(v)

    @model_validator(mode="after")
    def _refs(self) -> "RecordSpec":
        problems = []
        if self.id not in self.fields:
            problems.append(f"id: {self.id!r} is not one of the fields")
        elif not self.fields[self.id].required:
            problems.append(f"id: the id field {self.id!r} must be required: true")
        elif (self.fields[self.id].max_length or 0) > MAX_ID_LENGTH:
            problems.append(f"fields.{self.id}.max_length: an id holds at most {MAX_ID_LENGTH} characters")
        if self.timestamp is not None:
            if self.timestamp not in self.fields:
                problems.append(f"timestamp: {self.timestamp!r} is not one of the fields")
            elif self.fields[self.timestamp].type != "timestamp":
                problems.append(f"timestamp: field {self.timestamp!r} must have type: timestamp")
        for name in self.text:
            if name not in self.fields:
                problems.append(f"text: {name!r} is not one of the fields")
        for source, target in self.columns.items():
            if target not in self.fields:
                problems.append(f"columns.{source}: {target!r} is not one of the fields")
        targets = list(self.columns.values())
        dupes = sorted({t for t in targets if targets.count(t) > 1})
        if dupes:
            problems.append(f"columns: several source columns map to {dupes}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class SourceSpec(Strict):
    """Where batches of records arrive. One file (or API batch) is one partition."""

    inbox: str | None = Field(None, description="folder under DATA_DIR (default inbox/<family>)")
    formats: list[Literal["csv", "jsonl"]] = Field(default_factory=lambda: ["csv", "jsonl"], min_length=1)
    sample: str | None = Field(None, description="folder of sample batches in the family folder, seeded by make run")


class SqlSource(Strict):
    url: str | None = Field(None, description="SQLAlchemy URL (no password here: use url_env)")
    url_env: str | None = Field(None, description="environment variable holding the URL")
    table: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _one(self) -> "SqlSource":
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url or url_env")
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        if self.table is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", self.table):
            raise ValueError(f"table {self.table!r} is not a plain table name")
        return self


class LookupColumn(Strict):
    type: Literal["string", "integer", "number", "boolean", "timestamp"] = "string"
    required: bool = False
    values: list[str] | None = None
    min: float | None = None
    max: float | None = None
    strict_min: bool = Field(False, description="values must be strictly above min")
    min_length: int | None = Field(None, ge=0)


class DocumentColumns(Strict):
    """Which columns make a lookup's rows retrievable documents."""

    id: str
    title: str
    body: str
    url: str | None = None
    group: str | None = Field(None, description="column documents are filed under, e.g. a label")


class LookupSpec(Strict):
    """A context table: joined to records by key, or a document collection for retrieval."""

    description: str = ""
    as_: str | None = Field(None, alias="as", description="the name conditions, features and templates use (default: the lookup's)")
    file: str | None = Field(None, description="CSV or JSONL file, relative to the family folder")
    sql: SqlSource | None = None
    key: str = Field(..., description="the lookup's key column (unique)")
    join_on: str | None = Field(None, description="record field (or <extract task>.<field>) matched to key")
    columns: dict[str, LookupColumn] = Field(..., min_length=1)
    documents: DocumentColumns | None = None
    min_rows: int = Field(1, ge=0)
    owners: list[str] = Field(default_factory=list)

    def alias(self, name: str) -> str:
        """The name conditions, features and templates use for this lookup's row."""
        return self.as_ or name

    @model_validator(mode="after")
    def _shape(self) -> "LookupSpec":
        if self.as_ is not None and not IDENTIFIER.match(self.as_):
            raise ValueError(f"as: {self.as_!r} is not a lower_snake_case identifier")
        if (self.file is None) == (self.sql is None):
            raise ValueError("give exactly one of file or sql")
        if self.key not in self.columns:
            raise ValueError(f"key: {self.key!r} is not one of the columns")
        if self.documents is not None:
            for role, col in self.documents.model_dump().items():
                if col is not None and col not in self.columns:
                    raise ValueError(f"documents.{role}: {col!r} is not one of the columns")
        bad = [k for k in self.columns if not IDENTIFIER.match(k)]
        if bad:
            raise ValueError(f"column names must be lower_snake_case identifiers: {bad}")
        return self
