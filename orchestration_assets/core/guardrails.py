"""Guardrails on generated text (draft answers), applied before a record can be routed. No Dagster.

A draft that leaks PII is redacted (the violation is kept, so the policy's ``output_action`` sends
the record to a human); a draft that repeats a prompt-injection phrase from its record, cites no
document when the task requires one, or is out of its length bounds is flagged. The asset checks
on ``enriched_records`` re-verify the stored result independently of this code.
"""

from __future__ import annotations

import pandas as pd

from resources.injection import find_injection_phrases, has_trigger
from resources.providers.definition import TaskDefinition
from resources.redaction import find_pii, redact


def could_echo_injection(output: str) -> bool:
    """False when ``output`` cannot repeat any injection phrase, whatever its record says.

    Every phrase :func:`find_injection_phrases` returns holds one of the pattern's trigger words,
    so an ASCII output without any cannot contain one; the test costs the output's length once,
    while a draft that repeats across records is tested once per batch."""
    if not output:
        return False
    return not output.isascii() or has_trigger(output.lower())


def echoed_injection_phrases(output: str, source_text: str) -> list[str]:
    """Injection phrases of the source text that the output repeats."""
    if not output or not source_text:
        return []
    low = output.lower()
    return [p for p in find_injection_phrases(source_text) if p.lower() in low]


def _sanitise(text: str) -> tuple[str, int, bool]:
    """(text with its PII redacted, spans redacted, whether it could echo an injection phrase)."""
    hits = find_pii(text)
    if hits:
        result = redact(text, hits)
        text = result.text
    return text, len(hits), could_echo_injection(text)


def _verdict(task: TaskDefinition, scanned: tuple[str, int, bool], cited: list, source_text: str) -> tuple[str, list[str], int]:
    text, redacted, may_echo = scanned
    violations: list[str] = []
    if redacted:
        violations.append("pii_in_output")
    if may_echo and echoed_injection_phrases(text, source_text):
        violations.append("injection_echo")
    if task.spec.citation_required and not cited:
        violations.append("no_citation")
    if len(text) < task.spec.min_chars:
        violations.append("too_short")
    elif len(text) > task.spec.max_chars:
        violations.append("too_long")
    return text, violations, redacted


def check_draft(task: TaskDefinition, text: str | None, cited: list | None, source_text: str) -> tuple[str | None, list[str], int]:
    """(sanitised text, violations, PII spans redacted) of one draft answer."""
    if not isinstance(text, str) or not text:
        return text, [], 0
    return _verdict(task, _sanitise(text), cited or [], source_text)


def apply_output_guardrails(task: TaskDefinition, answers: pd.DataFrame, source_texts: dict[str, str]) -> pd.DataFrame:
    """The draft task's answers with text sanitised and ``<task>_violations`` / ``<task>_pii_redacted`` added."""
    n = task.name
    out = answers.copy()
    texts, violations, redactions = [], [], []
    scanned: dict[str, tuple[str, int, bool]] = {}  # drafts from one template repeat: scan each once
    for rid, text, cited in zip(out["record_id"], out[n], out[f"{n}_cited_ids"]):
        if not isinstance(text, str) or not text:
            clean, found, count = text, [], 0
        else:
            scan = scanned.get(text)
            if scan is None:
                scan = scanned[text] = _sanitise(text)
            clean, found, count = _verdict(task, scan, list(cited) if isinstance(cited, (list, tuple)) else [],
                                           source_texts.get(rid, ""))
        texts.append(clean)
        violations.append(found)
        redactions.append(count)
    out[n] = texts
    out[f"{n}_violations"] = violations
    out[f"{n}_pii_redacted"] = pd.Series(redactions, index=out.index, dtype="int64")
    return out
