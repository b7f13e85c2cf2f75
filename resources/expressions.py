"""Safe conditions in specs: CEL (Common Expression Language), never ``eval``.

Policy rules (``when: "topic == 'hardware' && topic_confidence < 0.6"``) and ordered-label rules are
CEL expressions, compiled once at load by the ``common-expression-language`` package (a Rust
implementation: about 5 microseconds per evaluation). :func:`compile_condition` reports a syntax
error or an unknown name; :func:`evaluate` turns pandas/numpy values into CEL ones (NaN and NaT
become null; timestamps become CEL timestamps) and returns the result or raises
:class:`ConditionError`, so a caller decides what an undecidable rule means.

Null-safety: comparing null with ``==`` is fine (``customer.is_vip == true`` is false for a record
whose lookup found no row), but ordering a null (``amount > 5``) is an error. Guard it:
``amount != null && amount > 5.0`` (CEL's ``&&`` ignores an error on one side when the other is false).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping


class ConditionError(ValueError):
    """A condition that does not compile, names an unknown value, or cannot be evaluated for a row."""


@dataclass(frozen=True)
class Condition:
    source: str
    program: Any
    names: tuple[str, ...]

    def __call__(self, values: Mapping[str, Any]) -> bool:
        return evaluate(self, values)


@functools.cache
def _cel() -> Any:
    """The compiled CEL core.

    ``import cel`` also imports the package's interactive CLI (prompt_toolkit, typer: ~0.14 s on every
    code-location load), so the compiled extension is loaded on its own when it can be found.
    """
    import importlib.util
    import sys
    from pathlib import Path

    package = importlib.util.find_spec("cel") if "cel" not in sys.modules else None
    folders = list(package.submodule_search_locations or []) if package else []
    cores = [p for folder in folders for p in Path(folder).glob("cel.*.so")]
    spec = importlib.util.spec_from_file_location("cel.cel", cores[0]) if cores else None
    if spec is not None and spec.loader is not None:
        try:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except ImportError:
            module = None
        if module is not None and hasattr(module, "compile"):
            # registered under its own name, so a later `import cel` reuses it: initialising the
            # extension a second time aborts the process
            sys.modules["cel.cel"] = module
            return module
    import cel

    return cel


def compile_condition(source: str, known: Iterable[str] | None = None) -> Condition:
    """Compile ``source``; every name it reads must be in ``known`` (``None``: names are not checked)."""
    try:
        program = _cel().compile(source)
    except Exception as exc:  # noqa: BLE001 - the library raises ValueError with the position; keep its text
        raise ConditionError(_first_lines(str(exc))) from None
    names = tuple(program.variables())
    unknown = [] if known is None else sorted(set(names) - set(known))
    if unknown:
        raise ConditionError(
            f"unknown name(s) {unknown} in {source!r}; known: {', '.join(sorted(known)) or '(none)'}"
        )
    return Condition(source, program, names)


def evaluate(condition: Condition, values: Mapping[str, Any]) -> bool:
    """The condition's truth for one row of ``values`` (only the names it reads are converted)."""
    return evaluate_converted(condition, {n: to_cel(values.get(n)) for n in condition.names})


def evaluate_converted(condition: Condition, activation: Mapping[str, Any]) -> bool:
    """:func:`evaluate` on values already passed through :func:`to_cel`: a caller that evaluates many
    conditions on one row converts each value once, not once per condition."""
    try:
        result = condition.program.execute(activation)
    except Exception as exc:  # noqa: BLE001 - a type error on this row's values: the caller decides
        raise ConditionError(_first_lines(str(exc), 1)) from None
    if not isinstance(result, bool):
        raise ConditionError(f"{condition.source!r} gave {type(result).__name__}, not true/false")
    return result


def to_cel(value: Any) -> Any:
    """A pandas/numpy/python value as CEL takes it (NaN/NaT/None -> null, numpy scalars -> python)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k): to_cel(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_cel(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalars and arrays
        return to_cel(value.tolist())
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.datetime):
        if str(value) == "NaT":
            return None
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if type(value).__name__ == "NaTType":
        return None
    return value


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"lookup.column": 1}`` -> ``{"lookup": {"column": 1}}`` (CEL reads maps with dots)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        head, dot, tail = key.partition(".")
        if dot:
            inner = out.setdefault(head, {})
            if isinstance(inner, dict):
                inner[tail] = value
        else:
            out.setdefault(key, value)
    return out


def _first_lines(text: str, n: int = 3) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines()[:n] if line.strip())
