"""Answering a ``sentiment`` task locally: an English lexicon scorer, no model.

Word valences summed over the text, with negation ("not happy" flips and damps, "not bad" is only
faintly positive) within three words, intensifiers ("extremely", "slightly") on the next two
words, and exclamation marks amplifying the sign; the sum is squashed by ``x / sqrt(x^2 + 15)``
into [-1, 1]. ``|score| >= threshold`` is positive or negative, else neutral. A task's
``lexicon`` adds words or overrides their valence.
"""

from __future__ import annotations

import math
import re
from typing import Mapping

from resources.providers.base import content_hash

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
    "not", "no", "never", "nothing", "neither", "nor", "without", "hardly", "barely", "cannot", "can't", "cant",
    "don't", "dont", "doesn't", "doesnt", "didn't", "didnt", "isn't", "isnt", "wasn't", "wasnt", "aren't", "arent",
    "won't", "wont", "wouldn't", "wouldnt", "haven't", "havent", "hasn't", "hasnt", "shouldn't", "couldn't",
    "couldnt",
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
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")
VERSION = content_hash("lexicon-v1", POSITIVE, NEGATIVE, sorted(NEGATORS), INTENSIFIERS, NEGATION_SCOPE,
                       NEGATED_POSITIVE, NEGATED_NEGATIVE, _TOKEN.pattern)


class Lexicon:
    """The default lexicon with a task's additions; scores texts."""

    def __init__(self, extra: Mapping[str, float] | None = None, threshold: float = 0.25):
        self.valence: dict[str, float] = {**POSITIVE, **NEGATIVE}
        for word, value in (extra or {}).items():
            self.valence[word.strip().lower()] = float(value)
        self.threshold = threshold
        self.special = frozenset(self.valence) | NEGATORS | frozenset(INTENSIFIERS)

    def score(self, text: str) -> float:
        """Lexicon score in [-1, 1] (see the module docstring)."""
        if not text or not isinstance(text, str):
            return 0.0
        valence, special = self.valence, self.special
        total = 0.0
        neg_until = -1
        boost = 0.0
        last_boost_at = -10
        for i, tok in enumerate(_TOKEN.findall(text.lower())):
            if tok not in special:
                continue
            value = valence.get(tok, 0.0)
            if tok in NEGATORS and not value:
                neg_until = i + NEGATION_SCOPE
                continue
            if tok in INTENSIFIERS and not value:
                boost, last_boost_at = INTENSIFIERS[tok], i
                continue
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

    def label(self, score: float) -> str:
        if score >= self.threshold:
            return "positive"
        if score <= -self.threshold:
            return "negative"
        return "neutral"
