"""Answering an ``extract`` task locally: typed fields found by declared patterns, builtins and keywords.

Per field, every match of its ``patterns`` is a candidate, in order of appearance (a regex gives
its group named ``value``, else its first group, else the whole match; patterns are searched
case-insensitively, as everywhere in a spec). ``builtin:money`` gives amounts with their own
currency, ``builtin:currency`` ISO codes, ``builtin:email`` addresses; an ``enum`` field's
``keywords`` give the value whose words appear. Without patterns, an ``email`` field looks for
addresses and an ``enum`` field for its values' own words. Candidates are coerced to the field's
type (ones that do not coerce are skipped), converted to one currency when ``convert`` says so,
and ``pick`` chooses one; a field nothing matched gets its ``default``.

Confidence per record: 1.0 when every required field was found, ``0.5 x share found`` when some
required field is missing; with no required field, the share of fields found.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from resources.providers.base import content_hash
from resources.providers.tasks import ExtractField, ExtractTask

from . import money
from .patterns import Pattern

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
                    r"\.[A-Za-z]{2,24}\b")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d %B %Y", "%d %b %Y", "%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%b %d %Y")
VERSION = content_hash("extract-v1", _EMAIL.pattern, _NUMBER.pattern, sorted(_TRUE), sorted(_FALSE), _DATE_FORMATS,
                       money.VERSION_PARTS)


@dataclass(frozen=True, slots=True)
class Candidate:
    value: Any
    start: int
    currency: str | None = None


def _squash(value: str) -> str:
    return re.sub(r"[\s_-]+", " ", value.strip().lower())


def _coerce_date(raw: str) -> str | None:
    raw = raw.strip().rstrip(".")
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(raw, fmt).date().isoformat()
        except ValueError:
            continue
    return None


class FieldExtractor:
    """One field of an extract task, compiled."""

    def __init__(self, name: str, spec: ExtractField):
        self.name = name
        self.spec = spec
        patterns = list(spec.patterns)
        if not patterns and not spec.keywords and spec.type == "email":
            patterns = ["builtin:email"]
        self.builtins = [p.removeprefix("builtin:") for p in patterns if p.startswith("builtin:")]
        self.regexes = [Pattern(p) for p in patterns if not p.startswith("builtin:")]
        keywords = dict(spec.keywords)
        if spec.type == "enum" and not patterns and not keywords:
            keywords = {v: [v.replace("_", " ")] for v in spec.values or ()}
        self.keywords = [
            (value, Pattern("|".join(rf"(?<!\w){re.escape(w)}(?!\w)" for w in words)))
            for value, words in keywords.items() if words
        ]
        self.allowed = {_squash(v): v for v in spec.values} if spec.values else None
        self.order = {v: i for i, v in enumerate(spec.values or ())}

    # ---- candidates ----------------------------------------------------------------------
    def candidates(self, text: str, low: str) -> list[Candidate]:
        """Every match, as written in ``text`` (``low`` is ``text.lower()``, which the searches run on)."""
        found: list[Candidate] = []
        for builtin in self.builtins:
            if builtin == "money":
                numeric = self.spec.type in ("number", "integer")
                found += [Candidate(m.amount if numeric else f"{m.amount:.2f} {m.currency}", m.start, m.currency)
                          for m in money.find_amounts(text, low)]
            elif builtin == "currency":
                found += [Candidate(code, pos) for code, pos in money.find_currencies(text)]
            else:  # email
                found += [Candidate(m.group(), m.start()) for m in _EMAIL.finditer(text)]
        for rx in self.regexes:
            group = "value" if "value" in rx.exact.groupindex else (1 if rx.exact.groups else 0)
            for m in rx.finditer(text, low):
                start, end = m.span(group)
                if start >= 0:  # a group that did not take part in the match is -1
                    found.append(Candidate(text[start:end], start))
        for value, rx in self.keywords:
            found += [Candidate(value, m.start()) for m in rx.finditer(text, low)]
        if len(self.builtins) + len(self.regexes) + len(self.keywords) > 1:
            found.sort(key=lambda c: c.start)
        return found

    def coerce(self, raw: Any) -> Any:
        """``raw`` as the field's type, or None when it is not one."""
        kind = self.spec.type
        if kind in ("number", "integer"):
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                number = float(raw)
            else:
                m = _NUMBER.search(str(raw))
                if m is None:
                    return None
                number = float(m.group().replace(",", ""))
            if kind == "integer":
                return int(number) if number.is_integer() else None
            return number
        text = str(raw).strip()
        if not text:
            return None
        if kind == "boolean":
            low = text.lower()
            # a pattern that matched something other than a truth word still says "yes, present"
            return False if low in _FALSE else True
        if kind == "date":
            return _coerce_date(text)
        if kind == "email":
            m = _EMAIL.search(text)
            return m.group() if m else None
        if self.allowed is not None:
            return self.allowed.get(_squash(text))
        return text

    def pick(self, values: list[tuple[Any, int]]) -> Any:
        how = self.spec.pick
        if how == "first":
            return values[0][0]
        if how == "last":
            return values[-1][0]
        if self.spec.type == "enum":
            key = lambda vs: self.order.get(vs[0], -1)  # noqa: E731 - rank in the declared values
        else:
            key = lambda vs: vs[0]  # noqa: E731
        try:
            return (max if how == "max" else min)(values, key=key)[0]
        except TypeError:  # mixed types cannot be ordered: fall back to the first match
            return values[0][0]

    def answer(self, text: str, low: str, known: dict[str, Any]) -> tuple[Any, bool]:
        """(value, found) for one text; ``known`` holds the fields answered before this one."""
        values: list[tuple[Any, int]] = []
        convert = self.spec.convert
        for c in self.candidates(text, low):
            value = self.coerce(c.value)
            if value is None:
                continue
            if convert is not None:
                currency = c.currency or (known.get(convert.currency_field) if convert.currency_field else None) \
                    or convert.to
                value = money.convert(float(value), str(currency), convert.to, convert.rates)
                if value is None:  # no declared rate for this currency: not an amount we can compare
                    continue
            values.append((value, c.start))
        if not values:
            return self.spec.default, False
        return self.pick(values), True


class Extractor:
    """An extract task compiled once: fields in an order where a ``currency_field`` comes first."""

    def __init__(self, task_spec: ExtractTask):
        fields = [FieldExtractor(n, f) for n, f in task_spec.fields.items()]
        first = [f for f in fields if not (f.spec.convert and f.spec.convert.currency_field)]
        self.fields = first + [f for f in fields if f not in first]
        self.names = list(task_spec.fields)
        self.required = [n for n, f in task_spec.fields.items() if f.required]

    def answer(self, text: str) -> tuple[dict[str, Any], float]:
        """(fields by name, confidence) for one text."""
        text = text if isinstance(text, str) else ""
        low = text.lower()
        values: dict[str, Any] = {}
        found: dict[str, bool] = {}
        for f in self.fields:
            values[f.name], found[f.name] = f.answer(text, low, values)
        if self.required:
            hit = sum(found[n] for n in self.required)
            confidence = 1.0 if hit == len(self.required) else 0.5 * hit / len(self.required)
        else:
            confidence = sum(found.values()) / len(found)
        return {n: values[n] for n in self.names}, round(confidence, 4)
