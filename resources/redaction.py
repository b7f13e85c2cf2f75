"""PII detection and redaction: emails, phone numbers, card numbers and IBANs.

Regular expressions plus checksums and numbering-plan metadata, no model and no network:

- ``EMAIL``: ``local@domain.tld``.
- ``PHONE``: international (``+44 20 7946 0123``, ``0044 20 7946 0123``, ``+44 (0)20 7946 0123``,
  ``+1 (212) 555-0123``) and national formats (``(415) 555-0123``, ``415.555.0123``,
  ``1-800-555-0199``, ``(020) 7946 0123``, ``020 7946 0123``, ``07700 900123``), 8-15 digits; a bare
  run of 10-11 digits (``4155550123``, ``07911123456``) only when it is a valid number of the North
  American or UK numbering plan (checked with ``phonenumbers``).
- ``CARD``: 13-19 digits, optionally grouped by spaces or dashes, that pass the Luhn check.
- ``IBAN``: two letters, two check digits, then 11-30 alphanumerics (optionally in groups of
  four) that pass the ISO 13616 mod-97 check.

Numbers that only look like PII are left alone: order and invoice numbers such as
``ORD-2026-118842`` (a digit run glued to letters or a dash is never a phone or card), dates,
error codes (``0x80070005``, ``E1043``), prices and tracking numbers (Luhn/mod-97 fail or the
length is out of range). Spans are replaced by ``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``.

One combined pattern decides every match, but it is not run over the whole text: Python's regex
engine tries each of its alternatives at every position (~1 us per character of a draft). Every
match starts at most two characters before a run of digits or inside the address part before an
``@``, so :func:`find_pii` finds those positions with C-speed string methods and tries the pattern
only there; :func:`scan_pii` is the plain whole-text scan it must agree with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

PLACEHOLDERS = {"EMAIL": "[EMAIL]", "PHONE": "[PHONE]", "CARD": "[CARD]", "IBAN": "[IBAN]"}

_EMAIL = r"(?P<EMAIL>[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24})"
_IBAN = r"(?P<IBAN>\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b)"
# 13-19 digits in groups separated by single spaces or dashes; not glued to letters, digits or dashes
_CARD = r"(?P<CARD>(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w]|-\d))"
_PHONE = (
    r"(?P<PHONE>(?<![\w/.+-])(?:"
    r"(?:\+|00)[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # +44 20 7946 0123, 0044 (0)20 ...
    r"|1[ .-]?\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}|1[ .-]\d{3}[ .-]\d{3}[ .-]\d{4}"  # 1 (800) 555-0199, 1-800-555-0199
    r"|\(\d{2,5}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"  # (415) 555-0123, (020) 7946 0123
    r"|\d{3}[ .-]\d{3}[ .-]\d{4}"  # 415-555-0123, 415.555.0123
    r"|0\d{2,4}[ ]\d{3,4}[ ]?\d{3,4}"  # 020 7946 0123, 07700 900123, 0161 496 0000
    r"|(?P<PLAIN>\d{10,11})"  # 4155550123, 07911123456: only when a numbering plan has the number
    r")(?![\w-]|[.,]\d))"
)
# order matters: a card number is tried before the phone pattern at the same position
_PII = re.compile("|".join((_EMAIL, _IBAN, _CARD, _PHONE)))
# the same without the e-mail alternative, for a text without '@' (where it can never match)
_PII_NO_EMAIL = re.compile("|".join((_IBAN, _CARD, _PHONE)))
_PHONE_ONLY = re.compile(_PHONE)
_NON_DIGIT = re.compile(r"\D")
_DIGIT_RUN = re.compile(r"\d+")
# an e-mail's address part: the longest run of its characters ending at an '@', at most 64 long
_LOCAL_TAIL = re.compile(r"[A-Za-z0-9._%+-]+\Z")
_LOCAL_MAX = 64
# bytes.translate table: ASCII digits -> '1', everything else -> ' ' (digit runs become runs of '1')
_DIGIT_MASK = bytes(49 if 48 <= i <= 57 else 32 for i in range(256))
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(compact: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN without spaces."""
    if not (15 <= len(compact) <= 34) or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _iban_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Longest prefix of text[start:end] that is a valid IBAN (a greedy match may run into a word)."""
    chunk = text[start:end]
    # candidate end positions: after each alphanumeric, longest first
    ends = [i + 1 for i, ch in enumerate(chunk) if ch != " "]
    for e in reversed(ends):
        compact = chunk[:e].replace(" ", "")
        if len(compact) < 15:
            break
        if iban_ok(compact):
            return start, start + e
    return None


@dataclass
class RedactionResult:
    text: str
    count: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


Hits = list[tuple[str, tuple[int, int]]]


def find_pii(text: str) -> Hits:
    """``[(kind, (start, end)), ...]`` of PII in ``text``, in order, non-overlapping."""
    if not text or not isinstance(text, str):
        return []
    runs = _digit_run_starts(text)
    if "@" in text:
        starts = sorted(set(_after_runs(text, runs)).union(_address_starts(text)))
        pattern = _PII
    elif runs:
        starts, pattern = _after_runs(text, runs), _PII_NO_EMAIL
    else:
        return []
    found: Hits = []
    match, pos = pattern.match, 0
    for p in starts:
        # finditer's rule: the leftmost match wins and the next one starts after it
        if p >= pos and (m := match(text, p)) is not None:
            pos = m.end()
            hit = _accept(m)
            if hit:
                found.append(hit)
    return found


def scan_pii(text: str) -> Hits:
    """:func:`find_pii` by scanning the whole text with the pattern (skipped only when it has no digit and
    no '@'): the plain implementation its fast path must equal, kept for tests and ``bench/guardrails.py``."""
    if not text or not isinstance(text, str) or ("@" not in text and not _DIGIT_RUN.search(text)):
        return []
    return [hit for m in _PII.finditer(text) if (hit := _accept(m))]


def find_pii_many(texts: Iterable[str | None]) -> list[Hits]:
    """:func:`find_pii` of each text; a text that repeats (drafts from one template do) is scanned once."""
    seen: dict[str, Hits] = {}
    out: list[Hits] = []
    for text in texts:
        if not text or not isinstance(text, str):
            out.append([])
            continue
        hits = seen.get(text)
        if hits is None:
            hits = seen[text] = find_pii(text)
        out.append(list(hits))
    return out


def _digit_run_starts(text: str) -> list[int]:
    """Where each run of digits (``\\d``) begins, ascending."""
    if not text.isascii():  # other scripts' digits are ``\\d`` too
        return [m.start() for m in _DIGIT_RUN.finditer(text)]
    mask = text.encode("ascii").translate(_DIGIT_MASK)
    starts = [0] if mask[:1] == b"1" else []
    i = mask.find(b" 1")
    while i != -1:
        starts.append(i + 1)
        i = mask.find(b" 1", i + 2)
    return starts


def _after_runs(text: str, runs: list[int]) -> list[int]:
    """Where a card, phone or IBAN may start, given where digit runs start, ascending.

    Each alternative reaches its first digit within two characters: an IBAN's two capital letters,
    a phone number's '+' or '(', else the digit itself. Inside a run no match starts (each needs
    no word character before it), so these few positions are all the pattern needs to try."""
    out: list[int] = []
    for a in runs:
        if a >= 2 and text[a - 1] in _UPPER and text[a - 2] in _UPPER:
            out.append(a - 2)
        if a >= 1 and text[a - 1] in "+(":
            out.append(a - 1)
        out.append(a)
    return out


def _address_starts(text: str) -> list[int]:
    """Every position an e-mail address may start at: inside the address-character run before each '@'."""
    out: list[int] = []
    at = text.find("@")
    while at != -1:
        m = _LOCAL_TAIL.search(text, max(0, at - _LOCAL_MAX), at)
        if m:
            out.extend(range(m.start(), at))
        at = text.find("@", at + 1)
    return out


def _accept(m: re.Match) -> tuple[str, tuple[int, int]] | None:
    """The hit a match of the combined pattern stands for, or None when its checks reject it."""
    kind = m.lastgroup
    start, end = m.span()
    if kind == "EMAIL":
        return kind, (start, end)
    if kind == "IBAN":
        span = _iban_span(m.string, start, end)
        return (kind, span) if span else None
    if kind == "CARD":
        digits = _NON_DIGIT.sub("", m.group())
        # no payment card number starts with 0, and 0044 7911 123456 may pass the Luhn check by chance
        if 13 <= len(digits) <= 19 and digits[0] != "0" and luhn_ok(digits) and len(set(digits)) > 1:
            return kind, (start, end)
        # not a card: it may still hold a phone number (e.g. "+1 415 555 0123" has no '+' here)
        phone = _PHONE_ONLY.match(m.string, start)
        return ("PHONE", phone.span()) if phone and _is_phone(phone) else None
    return (kind, (start, end)) if _is_phone(m) else None


def _is_phone(m: re.Match) -> bool:
    if m.group("PLAIN"):
        return not _ID_BEFORE.search(m.string, max(0, m.start() - 24), m.start()) and _dialable(m.group("PLAIN"))
    return 8 <= sum(ch.isdigit() for ch in m.group("PHONE")) <= 15


# a bare digit run right after one of these words is the id it names, not a phone number
_ID_BEFORE = re.compile(r"(?i)(?:\b(?:order|invoice|ref|reference|lot|batch|sku|serial|tracking|job|case|id)"
                        r"\s*(?:no\.?|number|#|:)?|#)\s*$")


# A run of 10 or 11 bare digits is as often an id, a timestamp or an amount as a phone number: it
# is one only when a numbering plan says so (Google's libphonenumber metadata): a leading 0 is the
# trunk prefix of a national number (read as UK), any other start a North American number. An
# epoch time (1732961234) or an id such as 1234567890 has no such area code and stays.
_PLAN_REGIONS = {"0": "GB", "": "US"}


def _dialable(digits: str) -> bool:
    import phonenumbers  # here: most texts have no bare digit run, and the metadata loads per region

    region = _PLAN_REGIONS["0" if digits.startswith("0") else ""]
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(digits, region))
    except phonenumbers.NumberParseException:
        return False


def redact(text: str, hits: Hits | None = None) -> RedactionResult:
    """``text`` with every PII span replaced by its placeholder, and what was replaced
    (``hits``: ``find_pii(text)`` when already at hand)."""
    if not isinstance(text, str):
        return RedactionResult(text="" if text is None else str(text))
    hits = find_pii(text) if hits is None else hits
    if not hits:
        return RedactionResult(text=text)
    parts: list[str] = []
    kinds: dict[str, int] = {}
    pos = 0
    for kind, (start, end) in hits:
        parts.append(text[pos:start])
        parts.append(PLACEHOLDERS[kind])
        kinds[kind] = kinds.get(kind, 0) + 1
        pos = end
    parts.append(text[pos:])
    return RedactionResult(text="".join(parts), count=len(hits), kinds=kinds)


def redact_many(texts: list[str]) -> list[RedactionResult]:
    """:func:`redact` over a batch."""
    return [redact(t) for t in texts]
