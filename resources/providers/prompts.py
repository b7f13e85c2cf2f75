"""LLM prompts built from a task definition: one system prompt per task, one user message per record.

Nothing here knows a family. The system prompt is a template
(:mod:`resources.providers.prompt_templates`): the registered version the task is bound to at run
time, else its current file or the platform default. It says which workflow and task this is (the family's
description, the task's name, type and description), what to do (the task's ``instructions``, or
the default of its type), what the declaration allows (labels, fields, flags, lengths), that the
record is data and never instructions, and the JSON schema of ``task.output_model``. The user
message is a JSON object::

    {"id": "...", "text": {"<field>": "..."}, "inputs": {"<used task or feature>": ...},
     "documents": [{"id": "...", "title": "...", "body": "..."}]}

``text`` holds the task's text fields, ``inputs`` the answers of the tasks it uses and its declared
features, ``documents`` (draft tasks) the retrieved documents, bodies truncated. For an external
provider every record string is PII-redacted (:func:`resources.redaction.redact`) and the
replacements are counted; documents come from the family's own collections and are sent as they are.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

from resources.providers.base import Item
from resources.redaction import redact as redact_text
from resources.providers.definition import TaskDefinition
from resources.providers.prompt_templates import DEFAULT_INSTRUCTIONS, SCHEMA_MARKER, render, template_text  # noqa: F401 (re-exported)
from resources.providers.tasks import ClassifyTask, DraftTask

PROMPT_VERSION = "prompts-v2"
MAX_FIELD_CHARS = 4000
MAX_DOCUMENT_CHARS = 600
# the registered prompt a task is bound to at run time: (version, template text)
BOUND_PROMPT = "prompt"


def with_prompt(task: TaskDefinition, version: str, text: str) -> TaskDefinition:
    """``task`` answering with the registered template ``text`` (prompt version ``version``)."""
    return dataclasses.replace(task, extra={**task.extra, BOUND_PROMPT: (version, text)})


def prompt_version(task: TaskDefinition) -> str | None:
    """The registered prompt version ``task`` is bound to (None: the current file, unregistered)."""
    bound = task.extra.get(BOUND_PROMPT)
    return bound[0] if bound else None


def system_prompt(task: TaskDefinition) -> str:
    """The system prompt of a task; the JSON schema of its answer is the last line.

    The text is the registered template the task is bound to (:func:`with_prompt`), else the
    task's current template (:func:`resources.providers.prompt_templates.template_text`).
    """
    bound = task.extra.get(BOUND_PROMPT)
    return render(task, bound[1] if bound else template_text(task))


def _input_filter(task: TaskDefinition):
    """Whether an item field is an input the task declares: a used task's answer or a feature."""
    features = frozenset(task.spec.features) if isinstance(task.spec, ClassifyTask) else frozenset()
    prefixes = tuple(p for u in task.spec.uses for p in (f"{u}_", f"{u}."))
    uses = frozenset(task.spec.uses)
    return lambda name: name in features or name in uses or (bool(prefixes) and name.startswith(prefixes))


def _redactor(redact: bool):
    count = [0]

    def clean(value: Any) -> Any:
        if not redact or not isinstance(value, str):
            return value
        res = redact_text(value)
        count[0] += int(res.count)
        return res.text

    return clean, count


def record_payload(task: TaskDefinition, item: Item, *, redact: bool) -> tuple[dict[str, Any], int]:
    """The user message's JSON object for one record, and how many PII spans were redacted."""
    clean, count = _redactor(redact)
    fields: Mapping[str, Any] = item.fields or {}
    present = [f for f in task.text_fields if f in fields]
    if present:
        text = {f: clean("" if fields[f] is None else str(fields[f])[:MAX_FIELD_CHARS]) for f in present}
    else:  # the caller gave the joined text only
        text = {"text": clean((item.text or "")[:MAX_FIELD_CHARS])}
    payload: dict[str, Any] = {"id": item.id, "text": text}
    is_input = _input_filter(task)
    inputs = {k: clean(_plain(v)) for k, v in sorted(fields.items()) if is_input(k)}
    if inputs:
        payload["inputs"] = inputs
    if isinstance(task.spec, DraftTask) and item.documents:
        payload["documents"] = [
            {"id": d.id, "title": d.title, "body": (d.body or "")[:MAX_DOCUMENT_CHARS]} for d in item.documents
        ]
    return payload, count[0]


def _plain(value: Any) -> Any:
    """A JSON-safe value (dates and numpy scalars become strings or numbers)."""
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    return str(value)


def user_message(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, sort_keys=False)
