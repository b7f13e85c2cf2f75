"""The embedded local provider: offline, deterministic, batch-first; no key, no network.

- ``classify``: the trained TF-IDF + linear-SVM ensemble (:mod:`resources.providers.local_model`),
  calibrated confidence and the full probability vector.
- ``prioritize``: the priority model (text + channel/tier/VIP/category) with business rules on
  top, each recorded as a reason: ``vip_account`` (at least high), ``outage_terms`` (urgent),
  ``legal_threat`` (at least high), ``security_incident`` (at least high).
- ``sentiment``: a lexicon scorer with negation ("not happy") and intensifiers ("extremely").
- ``summarize``: extractive; the highest-scoring sentences in their original order, capped.
- ``draft_reply``: a templated reply grounded in the retrieved articles (``TicketInput.articles``),
  citing them by title and URL, addressing the category and the account; nothing is copied
  from the ticket text, so a draft carries no PII from it.

Every task vectorises the whole batch once; no per-ticket model calls. :class:`LocalModelStore`
(the Dagster resource) trains, saves and loads versioned artifacts; inference only loads.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from pathlib import Path
from typing import Sequence

import dagster as dg
import numpy as np
import pandas as pd

from resources.providers.base import (
    PRIORITIES,
    ClassifyResult,
    DraftResult,
    ModelProvider,
    PriorityResult,
    SentimentResult,
    SummaryResult,
    Task,
    TaskResult,
    TicketInput,
    content_hash,
)
from resources.providers.local_model import ARTIFACT_SUFFIX, TrainedClassifier, priority_features
from resources.redaction import find_pii, redact

SAMPLE_DIR = Path(__file__).resolve().parent.parent.parent / "orchestration_assets" / "sample_data"
DEFAULT_TRAINING_DATA = SAMPLE_DIR / "labelled_tickets.csv"
DEFAULT_ACCOUNTS = SAMPLE_DIR / "crm_accounts.csv"

# ---- sentiment lexicon ------------------------------------------------------------------------

POSITIVE: dict[str, float] = {
    "thanks": 0.6, "thank": 0.6, "appreciate": 1.2, "appreciated": 1.2, "great": 1.5, "love": 1.8, "loved": 1.8,
    "excellent": 2.0, "amazing": 2.0, "awesome": 1.8, "fantastic": 2.0, "wonderful": 1.8, "perfect": 1.6,
    "happy": 1.4, "glad": 1.2, "pleased": 1.3, "helpful": 1.3, "quick": 0.6, "best": 1.3, "good": 1.0, "nice": 1.0,
    "brilliant": 1.8, "smooth": 0.9, "satisfied": 1.3, "resolved": 0.8, "fixed": 0.6, "works": 0.4, "enjoy": 1.2,
    "recommend": 1.2, "impressed": 1.5, "superb": 1.9, "grateful": 1.5, "kind": 0.8, "well": 0.3, "hopefully": 0.3,
}
NEGATIVE: dict[str, float] = {
    "ridiculous": -2.0, "frustrated": -1.8, "frustrating": -1.8, "furious": -2.5, "angry": -2.2, "unacceptable": -2.3,
    "disappointed": -1.9, "disappointing": -1.9, "terrible": -2.5, "awful": -2.4, "horrible": -2.4, "worst": -2.6,
    "useless": -2.2, "annoyed": -1.6, "annoying": -1.6, "upset": -1.7, "hate": -2.2, "bad": -1.4, "poor": -1.4,
    "broken": -1.2, "losing": -0.8, "lose": -0.7, "chase": -0.8, "chasing": -0.8, "waste": -1.6, "wasted": -1.6,
    "incompetent": -2.4, "shocking": -2.0, "disgrace": -2.5, "unhappy": -1.8, "nightmare": -2.2, "fed": -1.0,
    "complaint": -1.2, "scam": -2.4, "sucks": -2.0, "slow": -0.8, "failing": -0.6, "failed": -0.5, "fails": -0.5,
    "wrong": -0.7, "unfortunately": -0.6, "sadly": -0.8, "worried": -1.1, "concerned": -0.8, "confused": -0.6,
    "stuck": -0.7, "mess": -1.5, "sort": -0.3, "lawyer": -1.2, "legal": -0.6, "never": -0.4, "again": -0.3,
    "disappointment": -1.9, "unreliable": -1.8, "unusable": -2.0, "patience": -0.6, "believe": -0.3, "impossible": -1.2,
}
NEGATORS = frozenset({
    "not", "no", "never", "nothing", "neither", "nor", "without", "hardly", "barely", "cannot", "can't", "cant", "don't",
    "dont", "doesn't", "doesnt", "didn't", "didnt", "isn't", "isnt", "wasn't", "wasnt", "aren't", "arent", "won't",
    "wont", "wouldn't", "wouldnt", "haven't", "havent", "hasn't", "hasnt", "shouldn't", "couldn't", "couldnt",
})
INTENSIFIERS: dict[str, float] = {
    "very": 0.3, "really": 0.3, "extremely": 0.5, "absolutely": 0.5, "so": 0.25, "totally": 0.4, "completely": 0.4,
    "incredibly": 0.5, "super": 0.3, "truly": 0.3, "utterly": 0.5, "beyond": 0.4, "highly": 0.3, "most": 0.2,
    "slightly": -0.4, "somewhat": -0.3, "a_bit": -0.3, "kinda": -0.3, "little": -0.3,
}
NEGATION_SCOPE = 3
# "not happy" is a complaint; "not bad" is only faintly positive
NEGATED_POSITIVE = -0.9
NEGATED_NEGATIVE = -0.5
_SENTIMENT_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SPECIAL = frozenset(POSITIVE) | frozenset(NEGATIVE) | NEGATORS | frozenset(INTENSIFIERS)
SENTIMENT_THRESHOLD = 0.25
SENTIMENT_VERSION = content_hash("lexicon-v1", POSITIVE, NEGATIVE, sorted(NEGATORS), INTENSIFIERS, NEGATION_SCOPE,
                                 NEGATED_POSITIVE, NEGATED_NEGATIVE, SENTIMENT_THRESHOLD)


def sentiment_score(text: str) -> float:
    """Lexicon score in [-1, 1]: sum of word valences (negated within 3 words, boosted by
    intensifiers, amplified by exclamation marks), squashed by x / sqrt(x^2 + 15)."""
    if not text:
        return 0.0
    tokens = _SENTIMENT_TOKEN.findall(text.lower())
    hits = [(i, t) for i, t in enumerate(tokens) if t in _SPECIAL]
    total = 0.0
    neg_until = -1
    boost = 0.0
    last_boost_at = -10
    for i, tok in hits:
        if tok in NEGATORS and tok not in POSITIVE and tok not in NEGATIVE:
            neg_until = i + NEGATION_SCOPE
            continue
        if tok in INTENSIFIERS:
            boost, last_boost_at = INTENSIFIERS[tok], i
            continue
        value = POSITIVE.get(tok) or NEGATIVE.get(tok) or 0.0
        if tok in NEGATORS:  # "never" is both a negator and mildly negative
            neg_until = i + NEGATION_SCOPE
        if i - last_boost_at <= 2:
            value *= 1.0 + boost
        if i <= neg_until and tok not in NEGATORS:
            value *= NEGATED_POSITIVE if value > 0 else NEGATED_NEGATIVE
        total += value
    bangs = text.count("!")
    if total and bangs:
        total += math.copysign(0.3 * min(bangs, 3), total)
    return max(-1.0, min(1.0, total / math.sqrt(total * total + 15.0)))


def sentiment_label(score: float) -> str:
    if score >= SENTIMENT_THRESHOLD:
        return "positive"
    if score <= -SENTIMENT_THRESHOLD:
        return "negative"
    return "neutral"


# ---- extractive summary -----------------------------------------------------------------------

SUMMARY_MAX_CHARS = 280
SUMMARY_SENTENCES = 2
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_BOILERPLATE = re.compile(
    r"^(?:hi|hello|hey|dear|good (?:morning|afternoon|evening)|thanks|thank you|regards|best|cheers|kind regards|"
    r"many thanks|sincerely|sent from|hope you|have a great|(?:name|company|email|e-mail|phone|message|subject|"
    r"account|customer|from|to|date)\s*:)",
    re.IGNORECASE,
)
KEY_WORDS = frozenset({
    "error", "errors", "fail", "fails", "failed", "failing", "failure", "cannot", "can't", "unable", "not", "charged",
    "charge", "refund", "invoice", "order", "delivery", "delivered", "shipping", "shipped", "tracking", "login", "log",
    "password", "access", "locked", "outage", "down", "delete", "data", "security", "hacked", "broken", "missing",
    "wrong", "how", "need", "want", "please", "paid", "payment", "declined", "sync", "api", "still",
})
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
SUMMARY_VERSION = content_hash("extractive-v1", _BOILERPLATE.pattern, sorted(KEY_WORDS), SUMMARY_MAX_CHARS,
                               SUMMARY_SENTENCES)


def summarize_text(subject: str, body: str, max_chars: int = SUMMARY_MAX_CHARS) -> str:
    """The best one or two sentences of ``body``, in their original order, at most ``max_chars``,
    with PII replaced by placeholders (summaries are shown to reviewers and stored)."""
    return redact(_extract(subject, body, max_chars)).text


def _extract(subject: str, body: str, max_chars: int) -> str:
    sentences = [s.strip() for s in _SENTENCE_SPLIT.split(body or "") if s and len(s.strip()) > 3]
    sentences = [s for s in sentences if not _BOILERPLATE.match(s) or len(s) > 60]
    if not sentences:
        return (subject or body or "").strip()[:max_chars]
    subject_words = {w for w in _WORD.findall((subject or "").lower()) if len(w) > 3}
    scored = []
    for pos, s in enumerate(sentences):
        words = set(_WORD.findall(s.lower()))
        score = 1.5 * len(words & KEY_WORDS) + 1.0 * len(words & subject_words)
        score += 1.0 / (1 + pos)  # earlier sentences state the problem
        score -= 0.5 if len(s) < 25 else 0.0
        scored.append((score, -pos, pos))
    chosen = sorted(sorted(scored, reverse=True)[:SUMMARY_SENTENCES], key=lambda x: x[2])
    out = ""
    for _, _, pos in chosen:
        s = sentences[pos]
        candidate = f"{out} {s}".strip()
        if len(candidate) > max_chars:
            if not out:
                out = s[: max_chars - 1].rsplit(" ", 1)[0] + "…"
            break
        out = candidate
    return out


# ---- priority rules ---------------------------------------------------------------------------

_OUTAGE = re.compile(
    r"\b(?:outage|(?:platform|service|app|site|api|everything|production|login) (?:is |has been )?(?:completely )?down|"
    r"is down for|down for (?:all|everyone|us)|service unavailable|nobody (?:in our company |on our team |here )?can|"
    r"all (?:our )?users (?:get|are|can't|cannot)|for all (?:users|requests)|can't work|cannot work)\b",
)
_LEGAL_THREAT = re.compile(
    r"\b(?:lawyer|attorney|solicitor|legal action|lawsuit|formal notice|legal department has been|take (?:you|this) to court)\b",
)
_SECURITY_INCIDENT = re.compile(
    r"\b(?:hacked|compromised|account takeover|unauthori[sz]ed (?:access|login|orders?|charges?|transactions?)|"
    r"never made|someone (?:else )?(?:logged|signed) in|data breach)\b",
)
_RANK = {p: i for i, p in enumerate(PRIORITIES)}
PRIORITY_RULES = (
    ("vip_account", "high"),
    ("outage_terms", "urgent"),
    ("legal_threat", "high"),
    ("security_incident", "high"),
)
RULES_VERSION = content_hash("priority-rules-v1", PRIORITY_RULES, _OUTAGE.pattern, _LEGAL_THREAT.pattern,
                             _SECURITY_INCIDENT.pattern)


def rule_floors(ticket: TicketInput) -> list[tuple[str, str]]:
    """``[(reason, minimum priority), ...]`` of the business rules that fire for ``ticket``."""
    text = ticket.text.lower()
    out = []
    if ticket.account is not None and ticket.account.is_vip:
        out.append(("vip_account", "high"))
    if _OUTAGE.search(text):
        out.append(("outage_terms", "urgent"))
    if _LEGAL_THREAT.search(text):
        out.append(("legal_threat", "high"))
    if _SECURITY_INCIDENT.search(text):
        out.append(("security_incident", "high"))
    return out


# ---- draft templates --------------------------------------------------------------------------

CATEGORY_LINES: dict[str, str] = {
    "billing": "Thank you for contacting us about a billing question on your account. We have reviewed the charge "
               "and invoice details on our side.",
    "technical_issue": "Thank you for reporting this technical issue. We are sorry the error is getting in the way "
                       "of your work, and we are looking into it.",
    "account_access": "Thank you for contacting us about access to your account. We understand how disruptive it is "
                      "when you cannot log in.",
    "shipping": "Thank you for contacting us about your order's shipping and delivery. We have checked the shipment "
                "and carrier tracking on our side.",
    "refund": "Thank you for contacting us about a refund. We have reviewed your request against our refund policy.",
    "product_question": "Thank you for your question about our product and its features. Here is what we can share.",
    "security": "Thank you for reporting this security concern. We take it seriously, and our security team is "
                "reviewing it.",
    "privacy": "Thank you for your privacy request about your personal data. We handle these requests under GDPR "
               "and our privacy policy.",
}
GENERIC_LINE = "Thank you for contacting our support team. We have read your message and are looking into it."
TIER_LINES: dict[str, str] = {
    "enterprise": "As an Enterprise customer, your dedicated customer success manager is copied and will follow up.",
    "business": "As a Business plan customer, your request is handled by our priority support queue.",
    "pro": "Your Pro plan includes email and chat support, and we will keep you updated here.",
    "free": "You can also find answers any time in our help centre and community forum.",
}
VIP_LINE = "Because this account is a priority account for us, a senior support engineer owns this ticket."
ARTICLE_INTRO = "These help-centre articles explain the next steps:"
NO_ARTICLE_LINE = "A support specialist will follow up with the exact steps for your case."
CLOSING = "If anything is still unclear, reply to this message and we will pick it up.\n\nKind regards,\nCustomer Support"
TEMPLATE_VERSION = content_hash("draft-template-v1", CATEGORY_LINES, GENERIC_LINE, TIER_LINES, VIP_LINE, ARTICLE_INTRO,
                                NO_ARTICLE_LINE, CLOSING)
_FIRST_SENTENCE = re.compile(r"^([^\n]{20,220}?[.!?])(?:\s|$)")
MAX_CITED_ARTICLES = 3


@functools.lru_cache(maxsize=4096)
def _article_gist(body: str) -> str:
    """The article's first sentence (empty when it is not a plain sentence or holds PII-like text)."""
    m = _FIRST_SENTENCE.match((body or "").strip())
    gist = m.group(1).strip() if m else ""
    return "" if find_pii(gist) else gist


def _pick_articles(articles: Sequence, category: str | None) -> list:
    """Articles to cite: those of the ticket's category when any was retrieved, else all; best first."""
    same = [a for a in articles if category and a.category == category]
    return (same or list(articles))[:MAX_CITED_ARTICLES]


def draft_text(ticket: TicketInput, category: str | None) -> tuple[str, list[str]]:
    """The reply draft and the ids of the articles it cites; uses only category, account and articles."""
    account = ticket.account
    name = (account.name or "").strip() if account is not None else ""
    lines = [f"Hello {name} team," if name else "Hello,", ""]
    lines.append(CATEGORY_LINES.get(category or "", GENERIC_LINE))
    articles = _pick_articles(ticket.articles, category)
    cited: list[str] = []
    if articles:
        lines += ["", ARTICLE_INTRO]
        for a in articles:
            ref = f"{a.title} ({a.url})" if a.url else a.title
            gist = _article_gist(a.body)
            lines.append(f"- {ref}: {gist}" if gist else f"- {ref}")
            cited.append(a.article_id)
    else:
        lines += ["", NO_ARTICLE_LINE]
    extra = []
    if account is not None and account.tier and account.tier.lower() in TIER_LINES:
        extra.append(TIER_LINES[account.tier.lower()])
    if account is not None and account.is_vip:
        extra.append(VIP_LINE)
    if extra:
        lines += ["", " ".join(extra)]
    lines += ["", CLOSING]
    return "\n".join(lines), cited


# ---- the provider -----------------------------------------------------------------------------


class LocalProvider(ModelProvider):
    """The embedded provider over one trained artifact (category model + priority companion)."""

    name = "local"
    external = False
    model_id = "local-tfidf-linear"

    def __init__(self, model: TrainedClassifier):
        self.model = model
        self.priority_model = model.priority_model
        self._hashes: dict[tuple[str, str, str], str] = {}
        self.classify_prompt_hash = content_hash("classify", model.model_id, model.params.model_dump(mode="json"))
        self.priority_version = content_hash(
            model.version, self.priority_model.version if self.priority_model else None, RULES_VERSION
        )

    @property
    def version(self) -> str:
        return self.model.version

    def supports(self, task: Task) -> bool:
        return Task(task) in (Task.classify, Task.prioritize, Task.sentiment, Task.summarize, Task.draft_reply)

    def run(self, task: Task, tickets: Sequence[TicketInput]) -> list[TaskResult]:
        task = Task(task)
        tickets = list(tickets)
        if not tickets:
            return []
        start = time.perf_counter()
        if task is Task.classify:
            results = self._classify(tickets)
        elif task is Task.prioritize:
            results = self._prioritize(tickets)
        elif task is Task.sentiment:
            results = self._sentiment(tickets)
        elif task is Task.summarize:
            results = self._summarize(tickets)
        else:
            results = self._draft(tickets)
        per_ticket_ms = (time.perf_counter() - start) * 1000 / len(tickets)
        for r in results:
            r.latency_ms = per_ticket_ms
        return results

    def _input_hash(self, t: TicketInput) -> str:
        # the five tasks of one batch hash the same tickets: remember the last batches' hashes
        key = (t.ticket_id, t.subject, t.body)
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) > 200_000:
                self._hashes.clear()
            h = self._hashes[key] = t.input_hash()
        return h

    def _common(self, t: TicketInput, model_id: str, version: str, prompt_hash: str) -> dict:
        return dict(ticket_id=t.ticket_id, provider=self.name, model_id=model_id, model_version=version,
                    prompt_hash=prompt_hash, input_hash=self._input_hash(t), tokens_in=0, tokens_out=0, cost_usd=0.0,
                    attempts=1, path="local")

    # classify: one transform + one predict_proba for the whole batch
    def _category_proba(self, tickets: Sequence[TicketInput]) -> np.ndarray:
        return self.model.predict_proba([t.text for t in tickets])

    def _classify(self, tickets: list[TicketInput]) -> list[ClassifyResult]:
        proba = self._category_proba(tickets)
        labels = self.model.labels
        best = proba.argmax(axis=1)
        rounded = np.round(proba, 4)
        out = []
        for i, t in enumerate(tickets):
            out.append(ClassifyResult(
                **self._common(t, self.model_id, self.model.version, self.classify_prompt_hash),
                category=labels[best[i]],
                confidence=float(min(1.0, max(0.0, proba[i, best[i]]))),
                probabilities=dict(zip(labels, rounded[i].tolist())),
            ))
        return out

    def _prioritize(self, tickets: list[TicketInput]) -> list[PriorityResult]:
        missing = [i for i, t in enumerate(tickets) if not t.category]
        categories = [t.category for t in tickets]
        if missing:  # classify the tickets that came without a category, in one batch
            proba = self._category_proba([tickets[i] for i in missing])
            for j, i in enumerate(missing):
                categories[i] = self.model.labels[int(proba[j].argmax())]
        if self.priority_model is not None:
            frame = pd.DataFrame({
                "channel": [t.channel or "" for t in tickets],
                "tier": [(t.account.tier or "") if t.account else "" for t in tickets],
                "is_vip": [bool(t.account and t.account.is_vip) for t in tickets],
                "category": categories,
            })
            proba = self.priority_model.predict_proba([t.text for t in tickets], priority_features(frame))
            plabels = self.priority_model.labels
        else:  # no priority labels were available at training time: rules on a "medium" default
            proba, plabels = np.ones((len(tickets), 1)), ["medium"]
        out = []
        for i, t in enumerate(tickets):
            j = int(proba[i].argmax())
            level, confidence = plabels[j], float(proba[i, j])
            reasons = [f"model:{level}"]
            for reason, floor in rule_floors(t):
                reasons.append(reason)
                if _RANK[floor] >= _RANK[level]:
                    level, confidence = floor, 1.0  # set (or confirmed) by a deterministic rule
            out.append(PriorityResult(
                **self._common(t, self.model_id, self.priority_version, RULES_VERSION),
                priority=level, confidence=min(1.0, max(0.0, confidence)), reasons=reasons,
            ))
        return out

    def _sentiment(self, tickets: list[TicketInput]) -> list[SentimentResult]:
        out = []
        for t in tickets:
            score = round(sentiment_score(t.text), 4)
            out.append(SentimentResult(**self._common(t, "local-lexicon", SENTIMENT_VERSION, SENTIMENT_VERSION),
                                       sentiment=sentiment_label(score), score=score))
        return out

    def _summarize(self, tickets: list[TicketInput]) -> list[SummaryResult]:
        return [
            SummaryResult(**self._common(t, "local-extractive", SUMMARY_VERSION, SUMMARY_VERSION),
                          summary=summarize_text(t.subject, t.body))
            for t in tickets
        ]

    def _draft(self, tickets: list[TicketInput]) -> list[DraftResult]:
        missing = [i for i, t in enumerate(tickets) if not t.category]
        categories = [t.category for t in tickets]
        if missing:
            proba = self._category_proba([tickets[i] for i in missing])
            for j, i in enumerate(missing):
                categories[i] = self.model.labels[int(proba[j].argmax())]
        out = []
        for t, category in zip(tickets, categories):
            draft, cited = draft_text(t, category)
            out.append(DraftResult(**self._common(t, "local-template", TEMPLATE_VERSION, TEMPLATE_VERSION),
                                   draft=draft, cited_article_ids=cited))
        return out


# ---- the store (Dagster resource) -------------------------------------------------------------

_CACHE: dict[tuple[str, float], TrainedClassifier] = {}
_CACHE_LOCK = threading.Lock()
LATEST_FILE = "LATEST"


def load_training_frames(training_data: str | Path = DEFAULT_TRAINING_DATA,
                         accounts: str | Path | None = DEFAULT_ACCOUNTS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(category rows, priority rows) from a labelled ticket CSV: golden tickets left out of both.

    Category rows come from :func:`resources.evaluation.training_frame`, so the default model
    and the ``triage_classifier`` asset train on the same rows (and get the same version).
    """
    from resources.evaluation import split_golden, training_frame

    labelled = pd.read_csv(training_data, dtype={"ticket_id": str, "account_id": str})
    categories = training_frame(labelled)
    train, _ = split_golden(labelled)
    if accounts is not None and Path(accounts).exists() and "account_id" in train.columns:
        acc = pd.read_csv(accounts, dtype={"account_id": str})[["account_id", "tier", "is_vip"]]
        train = train.merge(acc, on="account_id", how="left")
    return categories, train.sort_values("ticket_id", kind="stable").reset_index(drop=True)


class LocalModelStore(dg.ConfigurableResource):
    """Versioned artifacts of the embedded classifier: train once, then only load for inference."""

    model_dir: str = ""
    training_data: str = ""

    def _dir(self) -> Path:
        if self.model_dir:
            path = Path(self.model_dir)
        else:
            from resources.warehouse import data_dir

            path = data_dir() / "models"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _training_path(self) -> Path:
        return Path(self.training_data) if self.training_data else DEFAULT_TRAINING_DATA

    def path_for(self, version: str) -> Path:
        return self._dir() / f"{version}{ARTIFACT_SUFFIX}"

    def versions(self) -> list[str]:
        """Saved versions, oldest first."""
        files = sorted(self._dir().glob(f"*{ARTIFACT_SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name))
        return [p.name[: -len(ARTIFACT_SUFFIX)] for p in files]

    def latest_version(self) -> str | None:
        """The most recently trained version (``LATEST`` pointer, else the newest file), or None."""
        pointer = self._dir() / LATEST_FILE
        if pointer.exists():
            version = pointer.read_text().strip()
            if version and self.path_for(version).exists():
                return version
        versions = self.versions()
        return versions[-1] if versions else None

    def train(self, df: pd.DataFrame | None = None, priorities: pd.DataFrame | None = None) -> TrainedClassifier:
        """Train on ``df`` (``text``+``label`` or ``subject``/``body``+``category``; default: the
        bundled labelled tickets minus the golden set) and save ``<model_dir>/<version>.joblib``.

        If that version is already saved it is loaded instead: the same data never retrains.
        Priority rows default to ``df`` when it has a ``priority`` column, else the bundled data.
        """
        with _train_lock(self._dir()):
            return self._train_locked(df, priorities)

    def _train_locked(self, df: pd.DataFrame | None, priorities: pd.DataFrame | None) -> TrainedClassifier:
        from resources.providers.local_model import train_triage_model, triage_version

        if df is None or priorities is None:
            default_categories, default_priorities = load_training_frames(self._training_path())
            if df is None:
                df = default_categories
            if priorities is None:
                priorities = df if "priority" in df.columns else default_priorities
        version = triage_version(df, priorities)
        if self.path_for(version).exists():
            return self.load(version)
        model = train_triage_model(df, priorities)
        model.save(self._dir())
        (self._dir() / LATEST_FILE).write_text(model.version)
        return model

    def load(self, version: str) -> TrainedClassifier:
        path = self.path_for(version)
        if not path.exists():
            raise FileNotFoundError(f"no local model version {version!r} in {self._dir()} (saved: {self.versions()})")
        key = (str(path), path.stat().st_mtime)
        with _CACHE_LOCK:
            model = _CACHE.get(key)
            if model is None:
                model = TrainedClassifier.load(path)
                _CACHE[key] = model
        return model

    def provider(self, version: str | None = None) -> LocalProvider:
        """A provider over ``version`` (default: the latest saved; trains the default model once if none)."""
        if version is None:
            version = self.latest_version()
            if version is None:
                with _train_lock(self._dir()):
                    version = self.latest_version()  # another process may have trained meanwhile
                    if version is None:
                        return LocalProvider(self._train_locked(None, None))
        return LocalProvider(self.load(version))


class _train_lock:
    """An exclusive file lock in the model folder, so parallel steps do not train the same model twice."""

    def __init__(self, directory: Path):
        self.path = directory / ".train.lock"
        self._fh = None

    def __enter__(self):
        self._fh = open(self.path, "a+")
        try:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: best effort
            pass
        return self

    def __exit__(self, *exc):
        try:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        except ImportError:  # pragma: no cover
            pass
        self._fh.close()
        return False
