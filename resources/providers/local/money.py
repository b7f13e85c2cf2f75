"""Money amounts and currencies in free text: ``$1,250.00``, ``1250 USD``, ``EUR 600``, ``€600``, ``$2k``.

Each match keeps its own currency (ISO code); conversion to one currency happens in the
``extract`` task with the rates the family declares, so no rate lives in platform code.
A bare number is never money: an amount needs a symbol, a code or a currency word, which keeps
order numbers, dates and error codes (``ORD-2026-118842``, ``0x80070005``) out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .patterns import lowercase_pattern

SYMBOLS = {"$": "USD", "US$": "USD", "€": "EUR", "£": "GBP", "C$": "CAD", "A$": "AUD", "¥": "JPY", "₹": "INR"}
CODES = ("USD", "EUR", "GBP", "CAD", "AUD", "CHF", "JPY", "NZD", "SEK", "NOK", "DKK", "INR", "CNY", "SGD", "HKD")
WORDS = {"DOLLARS": "USD", "DOLLAR": "USD", "EUROS": "EUR", "EURO": "EUR", "POUNDS": "GBP", "POUND": "GBP"}

_CODE = "|".join(CODES)
_WORD = "|".join(WORDS)
_NUMBER = r"\d{1,3}(?:[,\s]\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"
_AMOUNT = re.compile(
    rf"(?P<sym>US\$|C\$|A\$|[$€£¥₹])\s?(?P<n1>{_NUMBER})(?:\s?(?P<k1>[kK])\b)?"
    rf"|\b(?P<cur1>{_CODE})\s?(?P<n2>{_NUMBER})(?:\s?(?P<k2>[kK])\b|\b)"
    rf"|(?<![\w.,-])(?P<n3>{_NUMBER})(?:\s?(?P<k3>[kK]))?\s?(?P<cur2>{_CODE}|{_WORD})\b",
    re.IGNORECASE,
)
_CURRENCY = re.compile(rf"US\$|C\$|A\$|[$€£¥₹]|\b(?:{_CODE}|{_WORD})\b", re.IGNORECASE)
# the same patterns for lower-cased text: IGNORECASE makes a search ~3x slower
_AMOUNT_LOWER = re.compile(lowercase_pattern(_AMOUNT.pattern))
_DIGIT = re.compile(r"\d")
# every amount names a currency: a text with none of these is skipped without running the regex
_MARKERS = tuple(sorted({*(s.lower() for s in SYMBOLS), *(c.lower() for c in CODES), "dollar", "euro", "pound"}))
_SEPARATORS = re.compile(r"[,\s]")
VERSION_PARTS = ("money-v1", _AMOUNT.pattern, _CURRENCY.pattern, SYMBOLS, WORDS)


@dataclass(frozen=True, slots=True)
class Money:
    """One amount found in a text, in its own currency."""

    amount: float
    currency: str
    start: int
    end: int


def _currency(token: str) -> str:
    upper = token.upper()
    return SYMBOLS.get(upper) or SYMBOLS.get(token) or WORDS.get(upper) or upper


def find_amounts(text: str, low: str | None = None) -> list[Money]:
    """Money amounts in ``text``, in order of appearance (``k`` multiplies by 1,000).

    ``low``: ``text.lower()`` when the caller has it (the search runs on it; spans index ``text``).
    """
    if not text or not isinstance(text, str) or _DIGIT.search(text) is None:
        return []
    low = text.lower() if low is None else low
    if len(low) != len(text):  # a letter whose lower case is longer: search the text as written
        matches = _AMOUNT.finditer(text)
    elif any(marker in low for marker in _MARKERS):
        matches = _AMOUNT_LOWER.finditer(low)
    else:
        return []
    out = []
    for m in matches:
        if m.group("sym"):
            cur, number, k = _currency(m.group("sym")), m.group("n1"), m.group("k1")
        elif m.group("cur1"):
            cur, number, k = m.group("cur1").upper(), m.group("n2"), m.group("k2")
        else:
            cur, number, k = _currency(m.group("cur2")), m.group("n3"), m.group("k3")
        value = float(_SEPARATORS.sub("", number)) * (1000 if k else 1)
        out.append(Money(value, cur, m.start(), m.end()))
    return out


def find_currencies(text: str) -> list[tuple[str, int]]:
    """ISO codes of the currencies ``text`` names (symbols, codes, words), with their positions."""
    if not text or not isinstance(text, str):
        return []
    return [(_currency(m.group()), m.start()) for m in _CURRENCY.finditer(text)]


def convert(amount: float, currency: str, to: str, rates: dict[str, float]) -> float | None:
    """``amount`` in ``to``; ``rates[X]`` is one X in ``to``. None when no rate is declared."""
    currency, to = currency.upper(), to.upper()
    if currency == to:
        return round(amount, 2)
    rate = rates.get(currency)
    if rate is None:
        return None
    return round(amount * rate, 2)
