"""Answering a ``summarize`` task locally: extractive, the best sentences in their original order.

Sentences are split on ``. ! ?`` and line breaks; greetings, sign-offs and form labels
("Hi team,", "Kind regards", "Email:") are skipped unless long. A sentence scores 1.5 per task
``keyword`` it holds, 1.0 per word it shares with the heading, a bonus for coming early (the
problem is usually stated first) and a malus when very short. The top ``sentences`` are kept
in text order, within ``max_chars``. When the task reads several fields, the first one is the
heading (e.g. a title): its words steer the choice, and it is the summary only when the rest
has no sentence. Summaries are PII-redacted (they are shown to reviewers and stored).
"""

from __future__ import annotations

import re
from typing import Iterable

from resources.providers.base import content_hash
from resources.redaction import redact

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
# matched on the lower-cased sentence (IGNORECASE is ~3x slower)
_BOILERPLATE = re.compile(
    r"^(?:hi|hello|hey|dear|good (?:morning|afternoon|evening)|thanks|thank you|regards|best|cheers|kind regards|"
    r"many thanks|sincerely|sent from|hope you|have a great|(?:name|company|email|e-mail|phone|message|subject|"
    r"account|customer|from|to|date)\s*:)"
)
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
VERSION = content_hash("extractive-v1", _SENTENCE_SPLIT.pattern, _BOILERPLATE.pattern, _WORD.pattern)


class Summarizer:
    """A summarize task's settings, compiled once."""

    def __init__(self, keywords: Iterable[str] = (), max_chars: int = 280, sentences: int = 2):
        self.keywords = frozenset(k.strip().lower() for k in keywords)
        self.max_chars = max_chars
        self.sentences = sentences

    def summary(self, heading: str, body: str) -> str:
        """The PII-redacted extractive summary of ``body`` (steered by ``heading``)."""
        return redact(self.extract(heading, body)).text

    def extract(self, heading: str, body: str) -> str:
        max_chars = self.max_chars
        sentences, lowered = [], []
        for s in _SENTENCE_SPLIT.split(body or ""):
            s = s.strip() if s else ""
            if len(s) <= 3:
                continue
            low = s.lower()
            if len(s) <= 60 and _BOILERPLATE.match(low):
                continue
            sentences.append(s)
            lowered.append(low)
        if not sentences:
            return (heading or body or "").strip()[:max_chars]
        heading_words = {w for w in _WORD.findall((heading or "").lower()) if len(w) > 3}
        keywords = self.keywords
        scored = []
        for pos, (s, low) in enumerate(zip(sentences, lowered)):
            words = set(_WORD.findall(low))
            score = 1.5 * len(words & keywords) + 1.0 * len(words & heading_words)
            score += 1.0 / (1 + pos)  # earlier sentences state the problem
            score -= 0.5 if len(s) < 25 else 0.0
            scored.append((score, -pos, pos))
        chosen = sorted(sorted(scored, reverse=True)[: self.sentences], key=lambda x: x[2])
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
