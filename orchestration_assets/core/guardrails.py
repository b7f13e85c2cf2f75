"""Per-draft guardrails, applied before a draft can be routed (plain logic, no Dagster).

A draft that leaks PII is redacted (the violation is kept so routing sends it to a human);
a draft that echoes a prompt-injection phrase from its ticket, cites no article, or is out
of length bounds is flagged. The asset checks on ``enriched_tickets`` re-verify the stored
result independently.
"""

from __future__ import annotations

import pandas as pd

from resources.compliance import find_injection_phrases
from resources.redaction import find_pii, redact

DRAFT_MIN_CHARS = 80
DRAFT_MAX_CHARS = 4000


def echoed_injection_phrases(draft: str, ticket_text: str) -> list[str]:
    """Injection phrases found in the ticket that the draft repeats."""
    if not draft or not ticket_text:
        return []
    d = draft.lower()
    return [p for p in find_injection_phrases(ticket_text) if p.lower() in d]


def apply_draft_guardrails(drafts: pd.DataFrame, tickets: pd.DataFrame) -> pd.DataFrame:
    """ticket_id, draft_reply (sanitised), guardrail_violations (list), pii_redacted_in_draft (int)."""
    text_by_id = (tickets["subject"].fillna("") + "\n" + tickets["body"].fillna("")).set_axis(tickets["ticket_id"]).to_dict()
    rows = []
    for rec in drafts[["ticket_id", "draft", "draft_cited_article_ids"]].to_dict(orient="records"):
        draft = rec["draft"] if isinstance(rec["draft"], str) else None
        violations: list[str] = []
        redacted = 0
        if draft:
            if find_pii(draft):
                red = redact(draft)
                draft, redacted = red.text, red.count
                violations.append("pii_in_draft")
            if echoed_injection_phrases(draft, text_by_id.get(rec["ticket_id"], "")):
                violations.append("injection_echo")
            cited = rec["draft_cited_article_ids"]
            if cited is None or len(cited) == 0:
                violations.append("no_citation")
            if len(draft) < DRAFT_MIN_CHARS:
                violations.append("too_short")
            elif len(draft) > DRAFT_MAX_CHARS:
                violations.append("too_long")
        rows.append(
            {
                "ticket_id": rec["ticket_id"],
                "draft_reply": draft,
                "guardrail_violations": violations,
                "pii_redacted_in_draft": redacted,
            }
        )
    return pd.DataFrame(rows, columns=["ticket_id", "draft_reply", "guardrail_violations", "pii_redacted_in_draft"])
