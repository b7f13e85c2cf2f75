"""The deterministic draft rubric: yes/no criteria a reviewer can check by eye, from the draft task's spec.

==================  ==========================================================  =============================
criterion           passes when                                                 applies when
==================  ==========================================================  =============================
``cites_document``  one of the draft's cited ids is among the documents given   the draft task requires a citation
``no_pii``          the draft is non-empty and holds no e-mail, phone, card ... always
``addresses_label`` the draft uses one of ``rubric.terms[<golden label>]``      the terms list that label
``length_ok``       ``min_chars <= len(draft) <= max_chars``                    always
==================  ==========================================================  =============================

A criterion that does not apply is left out of a draft's checks, not counted as passed, so a
family without terms is not rewarded for them.
"""

from typing import Any, Mapping, Sequence

from resources.providers.base import Document

RUBRIC_CRITERIA = ("cites_document", "no_pii", "addresses_label", "length_ok")


def _draft_spec(task: Any) -> Any:
    """The draft declaration of a :class:`TaskDefinition` (or the declaration itself)."""
    spec = getattr(task, "spec", task)
    if getattr(spec, "type", None) != "draft":
        raise TypeError(f"the draft rubric scores draft tasks, not {getattr(spec, 'type', type(spec).__name__)!r}")
    return spec


def draft_checks(
    task: Any, text: str | None, cited_ids: Sequence[str], documents: Sequence[Document | str], label: str | None
) -> dict[str, bool]:
    """The applicable rubric criteria of one draft, each passed or not.

    ``task``: the draft task (:class:`~resources.providers.definition.TaskDefinition` or its
    ``DraftTask``); ``text``/``cited_ids``: the draft (``None`` text for a failed draft: every
    applicable criterion fails); ``documents``: the documents the draft was given; ``label``: the
    golden label of the record.
    """
    from resources.redaction import find_pii

    spec = _draft_spec(task)
    draft = text or ""
    out: dict[str, bool] = {}
    if spec.citation_required:
        given = {d.id if isinstance(d, Document) else str(d) for d in documents}
        out["cites_document"] = any(c in given for c in cited_ids)
    out["no_pii"] = bool(draft) and not find_pii(draft)
    terms = spec.rubric.terms.get(label) if label is not None else None
    if terms:
        low = draft.lower()
        out["addresses_label"] = any(t.lower() in low for t in terms)
    out["length_ok"] = spec.min_chars <= len(draft) <= spec.max_chars
    return out


def rubric_score(checks: Sequence[Mapping[str, bool]]) -> tuple[float, dict[str, float]]:
    """(mean share of applicable criteria a draft passes, share of drafts passing each criterion).

    The breakdown only names criteria that applied to at least one draft; its share is over the
    drafts it applied to. No drafts score 0.0.
    """
    scored = [c for c in checks if c]
    if not scored:
        return 0.0, {}
    score = sum(sum(c.values()) / len(c) for c in scored) / len(scored)
    breakdown = {}
    for name in RUBRIC_CRITERIA:
        applied = [c[name] for c in scored if name in c]
        if applied:
            breakdown[name] = round(sum(applied) / len(applied), 4)
    return round(score, 4), breakdown
