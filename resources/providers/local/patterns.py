"""Case-insensitive regex search at case-sensitive speed: the pattern is compiled for lower-cased text.

Spec patterns are searched case-insensitively. Python's ``re.IGNORECASE`` is about three times
slower than a plain search (it disables the engine's prefix scan), and the local tasks run
dozens of patterns per record, so a :class:`Pattern` lower-cases its literals instead (escapes,
group names and ``\\N{...}`` are kept as written) and searches the lower-cased text, computed
once per record and shared by all patterns. Where lower-casing changes a text's length (a few
non-ASCII letters) or the pattern cannot be rewritten, the ``IGNORECASE`` original is used.

A regex engine pays for every position of a text it fails at; most records match none of a
spec's patterns. So a :class:`Pattern` also derives from the parsed pattern a few literal
strings one of which every match must contain (``lawyer``, ``attorney``, ... for
``\b(?:lawyers?|attorneys?)\b``) and runs the regex only on texts that contain one of them.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

try:  # the parser behind re.compile: Python 3.11+ / 3.10
    from re import _constants as _sre  # type: ignore[attr-defined]
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants as _sre  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

MIN_LITERAL = 3  # shorter required strings filter too little to pay for the checks
MAX_LITERALS = 40

_KEEP_AFTER = re.compile(r"\?P<[^>]*>|\?P=[^)]*\)|\?<[A-Za-z_][^>]*>")  # group names and references
_CASE_SENSITIVE_PART = re.compile(r"\(\?[a-zA-Z]*-[a-zA-Z]*i")  # (?-i:...) asks for exact case: keep IGNORECASE


def lowercase_pattern(source: str) -> str:
    """``source`` with its literal letters lower-cased (escapes and group names untouched)."""
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "\\" and i + 1 < n:
            nxt = source[i + 1]
            if nxt == "N" and i + 2 < n and source[i + 2] == "{":
                end = source.find("}", i)
                end = n - 1 if end < 0 else end
                out.append(source[i:end + 1])
                i = end + 1
                continue
            out.append(source[i:i + 2])
            i += 2
            continue
        if ch == "(" and i + 1 < n and source[i + 1] == "?":
            m = _KEEP_AFTER.match(source, i + 1)
            if m:
                out.append("(" + m.group())
                i = m.end()
                continue
        out.append(ch.lower())
        i += 1
    return "".join(out)


def _required(parsed: Any) -> set[str] | None:
    """Strings one of which every match of ``parsed`` (a parsed sequence) contains; None if unknown."""
    best: set[str] | None = None

    def consider(candidates: set[str] | None) -> None:
        nonlocal best
        if not candidates or min(map(len, candidates)) < MIN_LITERAL or len(candidates) > MAX_LITERALS:
            return
        if best is None or (min(map(len, candidates)), -len(candidates)) > (min(map(len, best)), -len(best)):
            best = candidates

    run: list[str] = []
    for op, av in parsed:
        if op is _sre.LITERAL:
            run.append(chr(av))
            continue
        consider({"".join(run)} if run else None)
        run = []
        if op is _sre.SUBPATTERN:
            consider(_required(av[-1]))
        elif op is _sre.BRANCH:
            parts = [_required(branch) for branch in av[1]]
            if all(p is not None for p in parts):
                consider(set().union(*parts))  # type: ignore[arg-type]
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, getattr(_sre, "POSSESSIVE_REPEAT", None)) and av[0] >= 1:
            consider(_required(av[2]))
        elif op is getattr(_sre, "ATOMIC_GROUP", None):
            consider(_required(av))
        # anything else (classes, anchors, lookarounds, back-references) needs no particular literal
    consider({"".join(run)} if run else None)
    return best


def required_literals(lowercase_source: str) -> tuple[str, ...]:
    """Literal strings one of which any match must contain (empty: no useful filter)."""
    try:
        found = _required(_sre_parse.parse(lowercase_source))
    except Exception:  # noqa: BLE001 - an unusual construct: no filter, the regex alone decides
        return ()
    return tuple(sorted(found, key=len, reverse=True)) if found else ()


class Pattern:
    """A regex searched case-insensitively; pass the lower-cased text too when you have it."""

    __slots__ = ("source", "exact", "fast", "literals")

    def __init__(self, source: str):
        self.source = source
        self.exact = re.compile(source, re.IGNORECASE)
        self.fast: re.Pattern | None = None
        if not _CASE_SENSITIVE_PART.search(source):
            try:
                self.fast = re.compile(lowercase_pattern(source))
            except re.error:  # e.g. an inline flag that only exists in upper case (?L)
                self.fast = None
        if self.fast is not None and self.fast.groupindex != self.exact.groupindex:
            self.fast = None
        self.literals = required_literals(self.fast.pattern) if self.fast is not None else ()

    def __repr__(self) -> str:
        return f"Pattern({self.source!r})"

    def _may_match(self, lowered: str) -> bool:
        if not self.literals:
            return True
        for literal in self.literals:  # a plain loop: ~2x faster than any() over a generator
            if literal in lowered:
                return True
        return False

    def _use_fast(self, text: str, low: str | None) -> str | None:
        if self.fast is None:
            return None
        low = text.lower() if low is None else low
        return low if len(low) == len(text) else None

    def search(self, text: str, low: str | None = None) -> bool:
        """Whether the pattern occurs in ``text`` (``low``: ``text.lower()``, if already computed)."""
        lowered = self._use_fast(text, low)
        if lowered is None:
            return self.exact.search(text) is not None
        if not self._may_match(lowered):
            return False
        return self.fast.search(lowered) is not None  # type: ignore[union-attr]

    def finditer(self, text: str, low: str | None = None) -> Iterator[re.Match]:
        """Matches in order; their spans index ``text`` (group values must be read from ``text``)."""
        lowered = self._use_fast(text, low)
        if lowered is None:
            return self.exact.finditer(text)
        if not self._may_match(lowered):
            return iter(())
        return self.fast.finditer(lowered)  # type: ignore[union-attr]
