"""The ticket schema shared by ingestion, enrichment and the sample data."""

from __future__ import annotations

from resources.providers.base import CATEGORIES, PRIORITIES

CHANNELS: tuple[str, ...] = ("email", "chat", "phone", "web", "social")

# Columns a ticket batch file must provide (CSV header or JSONL keys).
REQUIRED_FIELDS: tuple[str, ...] = (
    "ticket_id",
    "account_id",
    "created_at",
    "channel",
    "subject",
    "body",
)
# Optional: present in labelled data and most batches.
OPTIONAL_FIELDS: tuple[str, ...] = ("priority", "customer_email", "category")
TICKET_FIELDS: tuple[str, ...] = REQUIRED_FIELDS + OPTIONAL_FIELDS

BODY_MIN_CHARS = 5
BODY_MAX_CHARS = 10_000
SUBJECT_MAX_CHARS = 300

__all__ = [
    "CATEGORIES",
    "PRIORITIES",
    "CHANNELS",
    "REQUIRED_FIELDS",
    "OPTIONAL_FIELDS",
    "TICKET_FIELDS",
    "BODY_MIN_CHARS",
    "BODY_MAX_CHARS",
    "SUBJECT_MAX_CHARS",
]
