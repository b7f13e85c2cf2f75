"""Prompt-injection detection: text that tries to instruct an AI system, found by phrase patterns.

Generic AI-safety code, no model: the local ``flag`` task's ``builtin: prompt_injection`` rule
raises a flag on such records, and the draft guardrail uses :func:`find_injection_phrases` so a
generated text never echoes them. Patterns aim at instructions addressed to a model ("ignore
previous instructions", "SYSTEM:", "you are now in admin mode", "reveal your system prompt")
and leave ordinary requests alone ("please ignore my previous email").
"""

from __future__ import annotations

import re

_SOURCE = (
    r"(?:\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+|my\s+)?"
    r"(?:previous\s+|prior\s+|above\s+|earlier\s+|preceding\s+|original\s+|system\s+)?"
    r"(?:instructions?|rules|guidelines|prompts?|policies|directions|safeguards)\b"
    r"|\byou are now (?:in )?(?:an? )?[\w-]+ mode\b|\b(?:admin|developer|god|jailbreak|dan) mode\b"
    r"|(?:^|\n|\.\s)\s*(?:system|ai assistant|assistant|chatgpt)\s*:"
    r"|\b(?:reveal|print|show|repeat) (?:your |the )?(?:system prompt|hidden instructions|initial instructions)\b"
    r"|\breveal the (?:email addresses|personal data|details) of (?:your )?other customers\b"
    r"|\breply only with\b|\brespond only with\b|\bnew instructions\s*:|\bpretend (?:to be|you are)\b"
    r"|\bact as (?:an? )?(?:admin|administrator|system|developer)\b)"
)
_INJECTION = re.compile(_SOURCE, re.IGNORECASE)
# the pattern is all lower case: on lower-cased text it needs no IGNORECASE, which is ~3x slower
_INJECTION_LOWER = re.compile(_SOURCE)
# Every alternative of the pattern needs one of these words, so a text without any cannot match:
# checking them first (plain substring tests) skips the regex for ~95% of texts.
_TRIGGERS = ("ignore", "disregard", "forget", "override", "bypass", "mode", "system", "assistant", "chatgpt",
             "instructions", "reveal", "only with", "pretend", "act as")
PATTERN = _SOURCE  # part of the versions of what uses it


def has_injection(text: str, low: str | None = None) -> bool:
    """Whether ``text`` holds a prompt-injection phrase (``low``: ``text.lower()`` if at hand)."""
    if not text or not isinstance(text, str):
        return False
    low = text.lower() if low is None else low
    if len(low) != len(text):  # a letter whose lower case is longer: search the text as written
        return _INJECTION.search(text) is not None
    return has_trigger(low) and _INJECTION_LOWER.search(low) is not None


def has_trigger(low: str) -> bool:
    """Whether lower-cased text holds one of the words every injection phrase contains."""
    for word in _TRIGGERS:
        if word in low:
            return True
    return False


def find_injection_phrases(text: str) -> list[str]:
    """Prompt-injection phrases in ``text``, as written there (stripped of leading separators)."""
    if not text or not isinstance(text, str):
        return []
    low = text.lower()
    if len(low) == len(text) and not has_trigger(low):
        return []  # no alternative can match: the case-insensitive scan is the costly part
    # ASCII lower-casing keeps every position, so the lower-case pattern on ``low`` finds the
    # same spans as the case-insensitive one on the text; other scripts keep the exact scan
    if text.isascii():
        matches = (text[m.start():m.end()] for m in _INJECTION_LOWER.finditer(low))
    else:
        matches = (m.group() for m in _INJECTION.finditer(text))
    out: list[str] = []
    for found in matches:
        phrase = found.strip().lstrip(".").strip()
        if phrase and phrase not in out:
            out.append(phrase)
    return out
