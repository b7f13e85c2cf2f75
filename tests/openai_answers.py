"""Deterministic answers of the test server: a valid instance of any task's JSON schema.

See :mod:`tests.openai_server` for the rules; tests use :func:`label_for` and
:func:`expected_sentiment` to know what the server will answer.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

_NUMBER_RE = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?")
SENTIMENT_LABELS = ("negative", "neutral", "positive")


def _mentions(text: str, name: str) -> bool:
    low = text.lower()
    return name.lower() in low or name.replace("_", " ").lower() in low


def label_for(text: str, labels: Sequence[str]) -> str:
    """The label this server answers: the first whose name (``_`` read as space) is in the text, else the first."""
    for label in labels:
        if _mentions(text, label):
            return label
    return labels[0]


def expected_sentiment(text: str) -> tuple[str, float]:
    low = text.lower()
    if any(w in low for w in ("angry", "terrible", "worst", "unacceptable", "frustrated")):
        return "negative", -0.8
    if any(w in low for w in ("thanks", "thank you", "great", "love")):
        return "positive", 0.8
    return "neutral", 0.0



class SchemaAnswer:
    """A deterministic instance of a JSON schema for one request."""

    def __init__(self, rec: Any, settings: Any) -> None:  # a RecordedRequest and its ServerSettings
        self.rec, self.settings = rec, settings
        self.id = rec.record_id or ""
        self.text = rec.text
        self.documents = [d.get("id") for d in rec.user_payload.get("documents") or [] if d.get("id")]

    def build(self, schema: dict[str, Any]) -> Any:
        self.defs = schema.get("$defs", {})
        return self.value(schema, "")

    def value(self, schema: dict[str, Any], name: str, optional: bool = False) -> Any:
        if "$ref" in schema:
            schema = self.defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
        if "anyOf" in schema:
            options = [o for o in schema["anyOf"] if o.get("type") != "null"]
            nullable = len(options) < len(schema["anyOf"])
            return self.value(options[0], name, optional or nullable) if options else None
        if "enum" in schema:
            labels = list(schema["enum"])
            if tuple(labels) == SENTIMENT_LABELS:
                return expected_sentiment(self.text)[0]
            if optional and not any(_mentions(self.text, v) for v in labels):
                return None
            return self.settings.label_for(self.text, labels)
        kind = schema.get("type")
        if kind == "object":
            return {k: self.value(v, k) for k, v in (schema.get("properties") or {}).items()}
        if kind == "array":
            items = schema.get("items") or {}
            if "enum" in items:
                return [v for v in items["enum"] if _mentions(self.text, v)]
            return self.documents[:1] if name == "cited_ids" else []
        if kind == "string":
            if optional:
                return None
            if name == "summary":
                first = next(iter((self.rec.user_payload.get("text") or {"": ""}).values()), "")
                return f"[{self.id}] {str(first).strip()[:80]}"
            if name == "text":
                cite = f" See document {self.documents[0]}." if self.documents else ""
                return f"Hello, thank you for your message about {self.id}. We are on it.{cite}"
            return f"{name} of {self.id}"
        if kind in ("number", "integer"):
            if name == "confidence":
                return self.settings.confidence
            if name == "score":
                return expected_sentiment(self.text)[1]
            if optional:
                m = _NUMBER_RE.search(self.text)
                if m is None:
                    return None
                number = float(m.group(0).replace(",", "."))
                return int(number) if kind == "integer" else number
            return schema.get("minimum", 0)
        if kind == "boolean":
            return False
        return None
