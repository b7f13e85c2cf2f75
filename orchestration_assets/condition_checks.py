"""What compiling a CEL condition cannot see: a typo that makes a rule silently never fire, or fail on every row.

CEL compiles ``order.stauts == 'refunded'`` and ``topic == 'Hardwre'`` without complaint: ``order``
is a map, and a string compares with any string. At run time the first fails on every record
(``POLICY_ERROR``: every record to review, after the models ran and spent) and the second is never
true. :func:`condition_problems` reads the condition's tokens and reports, for the family's names:

- a key of a map the family declares (a lookup's columns, an extract task's fields) that it lacks;
- a string literal compared (``==``, ``!=``, ``in [...]``, ``'x' in flags``) with a name whose values
  are declared (labels, ``values:`` of a field or column, an enum field, flag names) that is not one.
"""

from __future__ import annotations

import ast
import re
from typing import Mapping

_TOKEN = re.compile(
    r"""(?P<str>[rRbB]{0,2}(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    |(?P<num>0[xX][0-9a-fA-F]+[uU]?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[uU]?)
    |(?P<id>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,()\[\]{}])
    |(?P<ws>\s+)
    |(?P<other>.)""",
    re.X | re.S,
)


def _tokens(source: str) -> list[tuple[str, str]]:
    return [(m.lastgroup or "", m.group()) for m in _TOKEN.finditer(source) if m.lastgroup != "ws"]


def _literal(text: str) -> str | None:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) else None


def _operand(toks: list[tuple[str, str]], i: int) -> tuple[str | None, int]:
    """The name path (``topic`` or ``order.status``) starting at token ``i`` and the index after it."""
    if i >= len(toks) or toks[i][0] != "id" or (i and toks[i - 1][1] in (".", "+")):
        return None, i  # a member of something else, or part of a concatenation
    path, j = toks[i][1], i + 1
    if j + 1 < len(toks) and toks[j][1] == "." and toks[j + 1][0] == "id":
        path, j = f"{path}.{toks[j + 1][1]}", j + 2
    if j < len(toks) and toks[j][1] in (".", "(", "["):
        return None, i  # a method call, a deeper path or an index: not a plain value
    return path, j


def condition_problems(source: str, members: Mapping[str, set[str]],
                       values: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Problems of one (compiled) condition; ``members``: map name -> its keys, ``values``: name -> values."""
    toks = _tokens(source)
    problems: list[str] = []

    def unknown_value(path: str, text: str) -> None:
        allowed = values.get(path)
        value = _literal(text)
        if allowed and value is not None and value not in allowed:
            problems.append(f"{value!r} is never a value of {path} (values: {', '.join(allowed)})")

    for i, (kind, text) in enumerate(toks):
        prev = toks[i - 1][1] if i else ""
        if kind == "id" and prev != "." and text in members and i + 2 < len(toks) and toks[i + 1][1] == ".":
            key = toks[i + 2][1]
            called = i + 3 < len(toks) and toks[i + 3][1] == "("
            if toks[i + 2][0] == "id" and not called and key not in members[text]:
                problems.append(f"{text!r} has no key {key!r} (keys: {', '.join(sorted(members[text]))})")
        path, after = _operand(toks, i)
        if path is not None and after + 1 < len(toks) and toks[after][1] in ("==", "!=") \
                and toks[after + 1][0] == "str" and (after + 2 >= len(toks) or toks[after + 2][1] not in (".", "[", "+")):
            unknown_value(path, toks[after + 1][1])
        if path is not None and after < len(toks) and toks[after][1] == "in" and after + 1 < len(toks) \
                and toks[after + 1][1] == "[":
            j = after + 2
            while j < len(toks) and toks[j][1] != "]":
                if toks[j][0] == "str":
                    unknown_value(path, toks[j][1])
                j += 1
        if kind == "str" and i + 2 < len(toks) and prev not in (".", "+") and toks[i + 1][1] in ("==", "!=", "in"):
            target, _ = _operand(toks, i + 2)
            if target is not None and (toks[i + 1][1] != "in" or target in values):
                unknown_value(target, text)
    return list(dict.fromkeys(problems))


def vocabulary(spec, tasks: Mapping) -> tuple[dict[str, set[str]], dict[str, tuple[str, ...]]]:
    """(map name -> its keys, name -> its declared values) of a family's spec and resolved tasks."""
    members: dict[str, set[str]] = {}
    values: dict[str, tuple[str, ...]] = {n: tuple(f.values) for n, f in spec.record.fields.items() if f.values}
    for name, lk in spec.context.items():
        if lk.join_on is not None:
            alias = lk.alias(name)
            members[alias] = set(lk.columns)
            values.update({f"{alias}.{c}": tuple(col.values) for c, col in lk.columns.items() if col.values})
    for t in tasks.values():
        if t.type == "extract":
            members[t.name] = set(t.spec.fields)
            values.update({f"{t.name}.{f}": tuple(fs.values) for f, fs in t.spec.fields.items() if fs.values})
        elif t.type == "classify" and t.labels:
            values[t.name] = tuple(t.labels)
        elif t.type == "flag":
            values[t.name] = tuple(t.spec.rules)
    return members, values
