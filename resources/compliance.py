"""Compliance and risk flags of tickets: plain regex/lexicon rules, no model.

- ``legal_flag``: legal threats (lawyer, attorney, legal action, lawsuit, formal notice, ...).
- ``refund_over_threshold``: the ticket asks for a refund / money back and the largest amount it
  names is at least ``refund_threshold_usd`` (the help centre's policy: refunds of $500 or more
  need approval). Amounts like ``$1,250.00``, ``1250 USD``, ``EUR 600``, ``€600``, ``£75.50`` are
  converted to USD with the fixed rates in :data:`USD_RATES`.
- ``security_flag``: compromised accounts, phishing, unauthorised access or orders, breaches, CVEs.
- ``data_deletion_flag``: erasure requests (delete my data / account, right to be forgotten, GDPR
  Art. 17).
- ``prompt_injection_flag``: text that tries to instruct an AI system
  (:func:`find_injection_phrases`; the draft guardrail reuses it so drafts never echo them).
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import pandas as pd

# fixed conversion rates to USD (approximate; amounts are only compared with a threshold)
USD_RATES: dict[str, float] = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "AUD": 0.66, "CHF": 1.13, "JPY": 0.0067}
_SYMBOLS = {"$": "USD", "US$": "USD", "€": "EUR", "£": "GBP", "C$": "CAD", "A$": "AUD", "¥": "JPY"}

_NUMBER = r"\d{1,3}(?:[,\s]\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"
_AMOUNT = re.compile(
    rf"(?P<sym>US\$|C\$|A\$|[$€£¥])\s?(?P<n1>{_NUMBER})(?:\s?(?P<k1>[kK])\b)?"
    rf"|\b(?P<cur1>USD|EUR|GBP|CAD|AUD|CHF|JPY)\s?(?P<n2>{_NUMBER})\b"
    rf"|(?<![\w.,-])(?P<n3>{_NUMBER})\s?(?P<cur2>USD|EUR|GBP|CAD|AUD|CHF|JPY|dollars|euros|pounds)\b",
    re.IGNORECASE,
)
_WORD_CURRENCY = {"DOLLARS": "USD", "EUROS": "EUR", "POUNDS": "GBP"}

_REFUND = re.compile(
    r"\brefund|\bmoney back\b|\breimburs|\bchargeback\b|\bcharged (?:twice|again|after)|\bcredit (?:note|back)\b|\bwant (?:it|this) back\b",
    re.IGNORECASE,
)
_LEGAL = re.compile(
    r"\b(?:lawyers?|attorneys?|solicitors?|lawsuit|legal action|legal proceedings|sue (?:you|your company)|suing|"
    r"take (?:you|this|them) to court|small claims|formal (?:notice|complaint)|legal department has been|"
    r"ombudsman|consumer protection (?:agency|authority)|trading standards)\b",
    re.IGNORECASE,
)
_SECURITY = re.compile(
    r"\b(?:hacked|compromised|phishing|unauthori[sz]ed|breach(?:ed)?|account takeover|taken over|"
    r"suspicious (?:login|sign[- ]in|activity|email|link)|malware|ransomware|vulnerabilit(?:y|ies)|CVE-\d{4}-\d{3,}|"
    r"stolen (?:password|credentials|card)|credential stuffing|someone (?:else )?(?:logged|signed) in|"
    r"never made|did not make|didn't make)\b",
    re.IGNORECASE,
)
_DELETION = re.compile(
    r"\b(?:delete (?:all )?(?:of )?(?:my|our) (?:personal )?(?:data|information|info|account|details)|"
    r"erase (?:all )?(?:my|our) (?:personal )?(?:data|information)|erasure request|request(?:ing)? erasure|"
    r"right to (?:be forgotten|erasure)|article 17|remove (?:all )?(?:my|our) (?:personal )?(?:data|information|info)|"
    r"wipe (?:all )?(?:my|our) data)\b",
    re.IGNORECASE,
)
_INJECTION = re.compile(
    r"(?:\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+|my\s+)?"
    r"(?:previous\s+|prior\s+|above\s+|earlier\s+|preceding\s+|original\s+|system\s+)?"
    r"(?:instructions?|rules|guidelines|prompts?|policies|directions|safeguards)\b"
    r"|\byou are now (?:in )?(?:an? )?[\w-]+ mode\b|\b(?:admin|developer|god|jailbreak|dan) mode\b"
    r"|(?:^|\n|\.\s)\s*(?:SYSTEM|AI assistant|Assistant|ChatGPT)\s*:"
    r"|\b(?:reveal|print|show|repeat) (?:your |the )?(?:system prompt|hidden instructions|initial instructions)\b"
    r"|\breveal the (?:email addresses|personal data|details) of (?:your )?other customers\b"
    r"|\breply only with\b|\brespond only with\b|\bnew instructions\s*:|\bpretend (?:to be|you are)\b"
    r"|\bact as (?:an? )?(?:admin|administrator|system|developer)\b)",
    re.IGNORECASE,
)

FLAG_COLUMNS = ("legal_flag", "refund_over_threshold", "security_flag", "data_deletion_flag", "prompt_injection_flag")
COLUMNS = ("ticket_id", *FLAG_COLUMNS[:2], "refund_amount_usd", *FLAG_COLUMNS[2:], "flags")
_FLAG_NAMES = {
    "legal_flag": "legal",
    "refund_over_threshold": "refund_over_threshold",
    "security_flag": "security",
    "data_deletion_flag": "data_deletion",
    "prompt_injection_flag": "prompt_injection",
}


def find_injection_phrases(text: str) -> list[str]:
    """Prompt-injection phrases in ``text``, as written there (stripped of leading separators)."""
    if not text or not isinstance(text, str):
        return []
    out = []
    for m in _INJECTION.finditer(text):
        phrase = m.group().strip().lstrip(".").strip()
        if phrase and phrase not in out:
            out.append(phrase)
    return out


def _to_float(number: str) -> float:
    return float(re.sub(r"[,\s]", "", number))


def extract_amounts_usd(text: str) -> list[float]:
    """Money amounts in ``text`` converted to USD, in order of appearance."""
    if not text or not isinstance(text, str):
        return []
    out = []
    for m in _AMOUNT.finditer(text):
        if m.group("sym"):
            cur = _SYMBOLS.get(m.group("sym").upper(), "USD")
            value = _to_float(m.group("n1")) * (1000 if m.group("k1") else 1)
        elif m.group("cur1"):
            cur, value = m.group("cur1").upper(), _to_float(m.group("n2"))
        else:
            c = m.group("cur2").upper()
            cur, value = _WORD_CURRENCY.get(c, c), _to_float(m.group("n3"))
        out.append(round(value * USD_RATES.get(cur, 1.0), 2))
    return out


def refund_amount_usd(text: str) -> float | None:
    """The largest amount a refund request names, in USD; ``None`` when it is not a refund request."""
    if not text or not _REFUND.search(text):
        return None
    amounts = extract_amounts_usd(text)
    return max(amounts) if amounts else None


def _texts_and_ids(tickets) -> tuple[list[str], list[str]]:
    if isinstance(tickets, pd.DataFrame):
        if "text" in tickets.columns:
            texts = tickets["text"].fillna("").astype(str)
        else:
            subject = tickets["subject"].fillna("").astype(str) if "subject" in tickets.columns else ""
            texts = subject + "\n" + tickets["body"].fillna("").astype(str)
        return texts.tolist(), tickets["ticket_id"].astype(str).tolist()
    items = list(tickets)
    return [t.text for t in items], [t.ticket_id for t in items]


def flag_compliance(tickets: "pd.DataFrame | Sequence", refund_threshold_usd: float = 500.0) -> pd.DataFrame:
    """One row per ticket: the five flags, the refund amount in USD (or NaN) and the list of flag names.

    ``tickets``: a DataFrame with ``ticket_id`` and ``subject``/``body`` (or ``text``), or TicketInputs.
    A refund is over the threshold when its amount is at least ``refund_threshold_usd``.
    """
    texts, ids = _texts_and_ids(tickets)
    rows = []
    for tid, text in zip(ids, texts):
        amount = refund_amount_usd(text)
        row = {
            "ticket_id": tid,
            "legal_flag": bool(_LEGAL.search(text)),
            "refund_over_threshold": amount is not None and amount >= refund_threshold_usd,
            "refund_amount_usd": amount,
            "security_flag": bool(_SECURITY.search(text)),
            "data_deletion_flag": bool(_DELETION.search(text)),
            "prompt_injection_flag": bool(_INJECTION.search(text)),
        }
        row["flags"] = [_FLAG_NAMES[c] for c in FLAG_COLUMNS if row[c]]
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["refund_amount_usd"] = df["refund_amount_usd"].astype(float)
    for c in FLAG_COLUMNS:
        df[c] = df[c].astype(bool)
    return df


def flagged(df: pd.DataFrame, names: Iterable[str]) -> pd.Series:
    """Rows of a :func:`flag_compliance` frame carrying any of the flag ``names``."""
    wanted = set(names)
    return df["flags"].map(lambda fl: bool(wanted & set(fl)))
