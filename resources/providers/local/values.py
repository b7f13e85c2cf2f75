"""How the local tasks read field values: what counts as missing, and side features as strings.

Records, lookups and labelled files give the same value in different types (a CSV's ``TRUE``, a
typed lookup's ``True``, pandas' ``NaN`` for an empty cell); training and inference must see one
value, so both go through :func:`feature_value`.
"""

from __future__ import annotations

import math
from typing import Any


def is_missing(value: Any) -> bool:
    """None, NaN, pandas' NA and NaT (an empty cell, a lookup without a row)."""
    kind = type(value)
    if kind is str or kind is bool or kind is int:
        return False
    if kind is float:
        return math.isnan(value)
    return value is None or kind.__name__ in ("NAType", "NaTType")


def feature_value(value: Any) -> str:
    """A side feature as the classifier sees it: ``""`` when missing, booleans ``true``/``false``,
    whole numbers without ``.0``, strings stripped and lower-cased (so a CSV's ``TRUE`` and a
    lookup's ``True`` are one value)."""
    if is_missing(value):
        return ""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().lower()


def label_value(value: Any) -> str:
    """A label as training reads it: ``""`` when missing, whole numbers without ``.0``, stripped."""
    if is_missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def text_value(value: Any) -> str:
    return "" if is_missing(value) else str(value).strip()
