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
One combined pattern scans each text once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
_PHONE_ONLY = re.compile(_PHONE)
_NON_DIGIT = re.compile(r"\D")
_DIGITS = re.compile(r"\d")


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


def find_pii(text: str) -> list[tuple[str, tuple[int, int]]]:
    """``[(kind, (start, end)), ...]`` of PII in ``text``, in order, non-overlapping."""
    if not text or not isinstance(text, str):
        return []
    has_at = "@" in text
    if not has_at and not _DIGITS.search(text):
        return []
    found: list[tuple[str, tuple[int, int]]] = []
    for m in _PII.finditer(text):
        kind = m.lastgroup
        start, end = m.span()
        if kind == "EMAIL":
            found.append((kind, (start, end)))
        elif kind == "IBAN":
            span = _iban_span(text, start, end)
            if span:
                found.append((kind, span))
        elif kind == "CARD":
            digits = _NON_DIGIT.sub("", m.group())
            # no payment card number starts with 0, and 0044 7911 123456 may pass the Luhn check by chance
            if 13 <= len(digits) <= 19 and digits[0] != "0" and luhn_ok(digits) and len(set(digits)) > 1:
                found.append((kind, (start, end)))
            else:
                # not a card: it may still hold a phone number (e.g. "+1 415 555 0123" has no '+' here)
                phone = _PHONE_ONLY.match(text, start)
                if phone and _is_phone(phone):
                    found.append(("PHONE", phone.span()))
        elif _is_phone(m):
            found.append((kind, (start, end)))
    return found


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


def redact(text: str) -> RedactionResult:
    """``text`` with every PII span replaced by its placeholder, and what was replaced."""
    if not isinstance(text, str):
        return RedactionResult(text="" if text is None else str(text))
    hits = find_pii(text)
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
