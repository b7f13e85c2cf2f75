"""Golden-set evaluation of classifier versions and the promotion gate. Plain Python, no Dagster.

- The **golden set** is a fixed, seeded slice of the labelled tickets: a ticket is golden when a
  seeded hash of its ``ticket_id`` falls below ``fraction``. Membership never depends on the other
  rows, so adding labelled or reviewed tickets never moves a golden ticket into training, and
  training (:func:`training_frame`) drops every golden ticket id, reviewed feedback included.
- :func:`evaluate_provider` scores one provider (one model version) on it: accuracy, macro-F1 and
  per-class recall of ``classify``; a deterministic rubric of its ``draft_reply`` drafts (cites a
  retrieved article, no PII, addresses the ticket's category, length within bounds); cost and
  latency per ticket. An LLM-judge rubric (:func:`llm_judge_scores`) is added when the router has
  an LLM configured.
- :func:`promotion_gates` turns a challenger's and a champion's scores into pass/fail gates, each
  with a sentence a user can read ("macro-F1 0.412 is 0.451 below the champion's 0.863 ...").
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd
from pydantic import BaseModel, Field

from .providers.base import CATEGORIES, KBArticle, ModelProvider, Task, TicketInput, content_hash

if TYPE_CHECKING:  # pragma: no cover
    from .providers.openai import OpenAIProvider

GOLDEN_SEED = 20261123
GOLDEN_FRACTION = 0.2
DRAFT_MIN_CHARS = 80
DRAFT_MAX_CHARS = 1500

# words a draft about each category is expected to use (any one is enough)
CATEGORY_TERMS: dict[str, tuple[str, ...]] = {
    "billing": ("billing", "invoice", "charge", "payment", "bill", "receipt", "plan"),
    "technical_issue": ("technical", "error", "issue", "troubleshoot", "bug", "outage", "fix", "sync", "device"),
    "account_access": ("access", "password", "log in", "login", "sign in", "two-factor", "2fa", "sso", "account"),
    "shipping": ("shipping", "delivery", "shipment", "tracking", "order", "carrier", "package", "parcel"),
    "refund": ("refund", "credit", "reimburse", "money back", "cancel"),
    "product_question": ("product", "plan", "feature", "api", "integration", "question", "pricing"),
    "security": ("security", "compromised", "phishing", "suspicious", "secure", "password", "vulnerab"),
    "privacy": ("privacy", "personal data", "gdpr", "data", "delete", "deletion", "dpa"),
}
RUBRIC_CRITERIA = ("cites_article", "no_pii", "addresses_category", "length_ok")


# ---- golden set and training data ------------------------------------------------------------


def is_golden(ticket_id: str, fraction: float = GOLDEN_FRACTION, seed: int = GOLDEN_SEED) -> bool:
    digest = hashlib.sha256(f"{seed}:{ticket_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_golden(
    labelled: pd.DataFrame, fraction: float = GOLDEN_FRACTION, seed: int = GOLDEN_SEED
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, golden rows) of a labelled ticket table with ``ticket_id``."""
    mask = labelled["ticket_id"].astype(str).map(lambda t: is_golden(t, fraction, seed)).astype(bool)
    return labelled[~mask].reset_index(drop=True), labelled[mask].reset_index(drop=True)


def ticket_text(subject: Any, body: Any) -> str:
    return f"{subject if isinstance(subject, str) else ''}\n{body if isinstance(body, str) else ''}".strip()


def training_frame(
    labelled: pd.DataFrame,
    feedback: pd.DataFrame | None = None,
    fraction: float = GOLDEN_FRACTION,
    seed: int = GOLDEN_SEED,
) -> pd.DataFrame:
    """Training rows (ticket_id, text, label, source): labelled minus golden, plus reviewed feedback.

    A reviewed label replaces the bundled label of the same ticket; feedback for a golden ticket
    or with a label outside :data:`CATEGORIES` is left out. Rows are sorted by ticket id so the
    same data always hashes the same.
    """
    train, _ = split_golden(labelled, fraction, seed)
    rows = pd.DataFrame({
        "ticket_id": train["ticket_id"].astype(str),
        "text": [ticket_text(s, b) for s, b in zip(train["subject"], train["body"])],
        "label": train["category"].astype(str),
        "source": "labelled",
    })
    if feedback is not None and len(feedback):
        fb = feedback.copy()
        if "recorded_at" in fb:
            fb = fb.sort_values("recorded_at", kind="stable")
        fb = fb.drop_duplicates("ticket_id", keep="last")
        fb = fb[fb["label"].isin(CATEGORIES) & ~fb["ticket_id"].astype(str).map(lambda t: is_golden(t, fraction, seed))]
        fb_rows = pd.DataFrame({
            "ticket_id": fb["ticket_id"].astype(str),
            "text": [ticket_text(s, b) for s, b in zip(fb["subject"], fb["body"])],
            "label": fb["label"].astype(str),
            "source": fb["source"].astype(str).map(lambda s: f"feedback:{s}") if "source" in fb else "feedback",
        })
        rows = pd.concat([rows[~rows["ticket_id"].isin(set(fb_rows["ticket_id"]))], fb_rows], ignore_index=True)
    rows = rows[rows["text"].str.len() > 0]
    return rows.sort_values("ticket_id", kind="stable").reset_index(drop=True)


def data_hash(texts: Sequence[str], labels: Sequence[str]) -> str:
    """Stable hash of a training set (order matters: pass sorted rows)."""
    h = hashlib.sha256()
    for t, y in zip(texts, labels):
        h.update(json.dumps([t, y], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def golden_inputs(golden: pd.DataFrame) -> list[TicketInput]:
    return [
        TicketInput(ticket_id=str(r["ticket_id"]), subject=r.get("subject") or "", body=r.get("body") or "",
                    channel=r.get("channel"))
        for r in golden.to_dict(orient="records")
    ]


def golden_hash(golden: pd.DataFrame) -> str:
    return data_hash([str(t) for t in golden["ticket_id"]], [str(c) for c in golden["category"]])


# ---- metrics ---------------------------------------------------------------------------------


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str | None]) -> dict[str, Any]:
    """accuracy, macro-F1 (over the classes present in ``y_true``) and per-class recall.

    A missing prediction (``None``, a failed call) counts as wrong.
    """
    y_true = [str(y) for y in y_true]
    y_pred = ["" if p is None else str(p) for p in y_pred]
    n = len(y_true)
    classes = sorted(set(y_true))
    recall, f1 = {}, {}
    for c in classes:
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == c and p == c)
        fn = sum(1 for t, p in zip(y_true, y_pred) if t == c and p != c)
        fp = sum(1 for t, p in zip(y_true, y_pred) if t != c and p == c)
        r = tp / (tp + fn) if tp + fn else 0.0
        pr = tp / (tp + fp) if tp + fp else 0.0
        recall[c] = round(r, 4)
        f1[c] = 2 * pr * r / (pr + r) if pr + r else 0.0
    return {
        "accuracy": round(sum(t == p for t, p in zip(y_true, y_pred)) / n, 4) if n else 0.0,
        "macro_f1": round(sum(f1.values()) / len(f1), 4) if f1 else 0.0,
        "per_class_recall": recall,
    }


def draft_rubric(
    draft: str | None, cited_ids: Sequence[str], retrieved_ids: Sequence[str], category: str
) -> dict[str, bool]:
    """The deterministic draft rubric; every criterion is a yes/no a reviewer can check by eye."""
    from .redaction import find_pii

    text = draft or ""
    low = text.lower()
    retrieved = set(retrieved_ids)
    cited = [c for c in cited_ids if c in retrieved] or [a for a in retrieved if a and a.lower() in low]
    return {
        "cites_article": bool(cited),
        "no_pii": bool(text) and not find_pii(text),
        "addresses_category": any(term in low for term in CATEGORY_TERMS.get(category, (category.replace("_", " "),))),
        "length_ok": DRAFT_MIN_CHARS <= len(text) <= DRAFT_MAX_CHARS,
    }


@dataclass
class ModelScore:
    """How one model version did on the golden set."""

    version: str
    rows: int
    accuracy: float
    macro_f1: float
    per_class_recall: dict[str, float]
    rubric_score: float
    rubric_breakdown: dict[str, float]
    llm_judge_score: float | None
    cost_per_ticket_usd: float
    latency_ms_per_ticket: float
    errors: int
    predictions: list[str | None] = field(default_factory=list, repr=False)

    def as_metrics(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("predictions")
        return out


def evaluate_provider(
    provider: ModelProvider,
    golden: pd.DataFrame,
    retrieved: Sequence[Sequence[KBArticle]] | None = None,
    version: str | None = None,
    judge: "OpenAIProvider | None" = None,
) -> ModelScore:
    """Score ``provider`` on the golden rows (``ticket_id``, ``subject``, ``body``, ``category``).

    ``retrieved``: the knowledge-base articles retrieved for each golden ticket (same order); the
    drafts are asked for with them and the rubric checks they are cited. Latency is wall time of
    the provider calls per ticket (the larger of the measured time and the results' own figures).
    """
    inputs = golden_inputs(golden)
    labels = golden["category"].astype(str).tolist()
    n = len(inputs)
    start = time.perf_counter()
    classes = provider.run(Task.classify, inputs)
    classify_s = time.perf_counter() - start
    preds = [r.category if r.ok else None for r in classes]
    metrics = classification_metrics(labels, preds)

    articles = [list(a) for a in retrieved] if retrieved is not None else [[] for _ in inputs]
    draft_inputs = [
        t.model_copy(update={"category": p or None, "articles": arts}) for t, p, arts in zip(inputs, preds, articles)
    ]
    start = time.perf_counter()
    drafts = provider.run(Task.draft_reply, draft_inputs) if n else []
    draft_s = time.perf_counter() - start
    checks = [
        draft_rubric(d.draft if d.ok else None, d.cited_article_ids, [a.article_id for a in arts], y)
        for d, arts, y in zip(drafts, articles, labels)
    ]
    breakdown = {c: round(sum(ch[c] for ch in checks) / n, 4) if n else 0.0 for c in RUBRIC_CRITERIA}
    rubric = round(sum(sum(ch.values()) / len(RUBRIC_CRITERIA) for ch in checks) / n, 4) if n else 0.0

    judge_score = None
    if judge is not None and n:
        scores = llm_judge_scores(judge, draft_inputs, [d.draft if d.ok else None for d in drafts], labels)
        valid = [s for s in scores if s is not None]
        judge_score = round(sum(valid) / len(valid), 4) if valid else None

    all_results = [*classes, *drafts]
    reported_ms = sum(r.latency_ms for r in all_results)
    latency_ms = max(reported_ms, (classify_s + draft_s) * 1000)
    return ModelScore(
        version=version or (classes[0].model_version if classes else "unknown"),
        rows=n,
        accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"],
        per_class_recall=metrics["per_class_recall"],
        rubric_score=rubric,
        rubric_breakdown=breakdown,
        llm_judge_score=judge_score,
        cost_per_ticket_usd=round(sum(r.cost_usd for r in all_results) / n, 8) if n else 0.0,
        latency_ms_per_ticket=round(latency_ms / n, 4) if n else 0.0,
        errors=sum(1 for r in all_results if not r.ok),
        predictions=preds,
    )


# ---- LLM judge -------------------------------------------------------------------------------

JUDGE_PROMPT = """Task: judge_draft
You grade a customer-support reply draft. Score 1 to 5 for: correct and helpful for the customer's
problem, grounded in the given help articles, polite and professional, free of personal data.
Answer with a JSON object {"score": <1-5>, "reason": "<one sentence>"}."""
JUDGE_PROMPT_HASH = content_hash(JUDGE_PROMPT)


def llm_judge_scores(
    judge: "OpenAIProvider", tickets: Sequence[TicketInput], drafts: Sequence[str | None], categories: Sequence[str]
) -> list[float | None]:
    """Scores in [0, 1] from an LLM judge (one call per draft); None where the judge failed."""
    import asyncio

    from .redaction import redact
    from .router import run_coroutine

    async def _all() -> list[float | None]:
        client = judge.make_client()
        sem = asyncio.Semaphore(max(1, min(8, judge.endpoint.max_concurrency)))

        async def one(ticket: TicketInput, draft: str | None, category: str) -> float | None:
            if not draft:
                return 0.0
            payload = {
                "ticket": redact(ticket.text).text,
                "category": category,
                "articles": [{"article_id": a.article_id, "title": a.title} for a in ticket.articles],
                "draft": draft,
            }
            async with sem:
                try:
                    resp = await client.chat.completions.create(
                        model=judge.model.model,
                        messages=[{"role": "system", "content": JUDGE_PROMPT},
                                  {"role": "user", "content": json.dumps(payload, ensure_ascii=False)}],
                        response_format={"type": "json_object"},
                        temperature=0,
                        timeout=judge.endpoint.timeout_s,
                    )
                    content = resp.choices[0].message.content or ""
                    m = re.search(r"\{.*\}", content, re.S)
                    score = float(json.loads(m.group(0) if m else content)["score"])
                except Exception:  # noqa: BLE001 - a failed judgement is reported as missing, not as a score
                    return None
            return min(max((score - 1) / 4, 0.0), 1.0)

        try:
            return list(await asyncio.gather(*(one(t, d, c) for t, d, c in zip(tickets, drafts, categories))))
        finally:
            await client.close()

    return run_coroutine(_all())


# ---- the promotion gate ------------------------------------------------------------------------


class PromotionThresholds(BaseModel):
    macro_f1_tolerance: float = Field(0.01, ge=0, le=1)
    max_class_recall_drop: float = Field(0.10, ge=0, le=1)
    min_class_recall: float = Field(0.30, ge=0, le=1)
    min_rubric_score: float = Field(0.75, ge=0, le=1)
    max_cost_per_ticket_usd: float = Field(0.01, ge=0)


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


GATE_NAMES = (
    "macro_f1_not_worse_than_champion",
    "no_class_recall_collapse",
    "draft_rubric_at_threshold",
    "cost_per_ticket_within_budget",
)


def promotion_gates(
    challenger: dict[str, Any] | None, champion: dict[str, Any] | None, t: PromotionThresholds
) -> list[Gate]:
    """The four promotion gates for a challenger's metrics against the champion's (None = no champion)."""
    if challenger is None:
        return [Gate(n, True, "no challenger to promote; nothing to gate") for n in GATE_NAMES]
    gates: list[Gate] = []

    f1 = float(challenger["macro_f1"])
    if champion is None:
        gates.append(Gate(GATE_NAMES[0], True, f"no champion yet; challenger macro-F1 {f1:.3f}", {"challenger": f1}))
    else:
        base = float(champion["macro_f1"])
        ok = f1 >= base - t.macro_f1_tolerance
        delta = f1 - base
        gates.append(Gate(
            GATE_NAMES[0], ok,
            (f"challenger macro-F1 {f1:.3f} vs champion {base:.3f} (delta {delta:+.3f}, tolerance {t.macro_f1_tolerance:.3f})"
             if ok else
             f"challenger macro-F1 {f1:.3f} is {base - f1:.3f} below the champion's {base:.3f}; "
             f"the tolerance is {t.macro_f1_tolerance:.3f}"),
            {"challenger": f1, "champion": base, "delta": round(delta, 4), "tolerance": t.macro_f1_tolerance},
        ))

    recall = challenger.get("per_class_recall") or {}
    base_recall = (champion or {}).get("per_class_recall") or {}
    collapsed = []
    for cls, r in sorted(recall.items()):
        if r < t.min_class_recall:
            collapsed.append(f"{cls} recall {r:.2f} < floor {t.min_class_recall:.2f}")
        elif cls in base_recall and r < base_recall[cls] - t.max_class_recall_drop:
            collapsed.append(f"{cls} recall {r:.2f} fell {base_recall[cls] - r:.2f} from {base_recall[cls]:.2f}")
    gates.append(Gate(
        GATE_NAMES[1], not collapsed,
        ("; ".join(collapsed) if collapsed else
         f"every class recall >= {t.min_class_recall:.2f}"
         + (f" and within {t.max_class_recall_drop:.2f} of the champion" if base_recall else "")),
        {"challenger_recall": recall, "champion_recall": base_recall},
    ))

    rubric = float(challenger.get("rubric_score") or 0.0)
    ok = rubric >= t.min_rubric_score
    breakdown = challenger.get("rubric_breakdown") or {}
    weakest = min(breakdown, key=breakdown.get) if breakdown else None
    gates.append(Gate(
        GATE_NAMES[2], ok,
        (f"draft rubric {rubric:.3f} >= {t.min_rubric_score:.3f}" if ok else
         f"draft rubric {rubric:.3f} is below the threshold {t.min_rubric_score:.3f}"
         + (f"; weakest criterion: {weakest} ({breakdown[weakest]:.2f})" if weakest else "")),
        {"rubric_score": rubric, "threshold": t.min_rubric_score, "breakdown": breakdown,
         "llm_judge_score": challenger.get("llm_judge_score")},
    ))

    cost = float(challenger.get("cost_per_ticket_usd") or 0.0)
    ok = cost <= t.max_cost_per_ticket_usd
    gates.append(Gate(
        GATE_NAMES[3], ok,
        (f"cost per ticket ${cost:.6f} within ${t.max_cost_per_ticket_usd:.6f}" if ok else
         f"cost per ticket ${cost:.6f} exceeds the budget ${t.max_cost_per_ticket_usd:.6f}"),
        {"cost_per_ticket_usd": cost, "budget_usd": t.max_cost_per_ticket_usd},
    ))
    return gates


def gates_passed(gates: Sequence[Gate | dict[str, Any]]) -> bool:
    return all((g.passed if isinstance(g, Gate) else bool(g["passed"])) for g in gates)


def refusal_reason(gates: Sequence[Gate | dict[str, Any]]) -> str:
    failed = [g if isinstance(g, dict) else g.as_dict() for g in gates]
    failed = [g for g in failed if not g["passed"]]
    return "; ".join(f"{g['name']}: {g['reason']}" for g in failed)
