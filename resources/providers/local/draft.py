"""Answering a ``draft`` task locally: the family's Jinja template, rendered in a sandbox.

The template (``task.spec.template``, relative to the family folder, which is also where
``{% include %}`` looks) sees:

- every input of the item by name: record fields (``channel``), the answers of the tasks it
  ``uses`` (``topic``, ``topic_confidence``, ``invoice.total`` of an extract task) and each joined
  lookup as a nested mapping under its name (``crm.name``, ``crm.is_active``);
- ``documents``: the retrieved documents to cite, best first, at most :data:`MAX_DOCUMENTS`;
  when ``retrieval.prefer_group_of`` names a task and some retrieved document is filed under
  that task's answer, only those. Each is a mapping ``id, title, url, body, group, score`` plus
  ``gist``: the body's first plain sentence (empty when it holds PII-like text).

Rendering: ``jinja2.sandbox.SandboxedEnvironment`` (a template cannot reach Python internals),
no HTML escaping, ``trim_blocks`` and ``lstrip_blocks`` (a block tag on its own line leaves no
blank line), and a lenient undefined: a missing name or a lookup the record has no row for
renders empty and is falsy, as ``None`` does. The output is stripped. ``cited_ids`` are the
documents given whose id, title or url appear in the text. Nothing of the record's text reaches
the draft unless the template writes it.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from resources.expressions import nest
from resources.providers.base import Document, Item, content_hash
from resources.redaction import find_pii

from .values import is_missing

if TYPE_CHECKING:  # pragma: no cover
    from resources.providers.definition import TaskDefinition

MAX_DOCUMENTS = 3
_FIRST_SENTENCE = re.compile(r"^([^\n]{20,220}?[.!?])(?:\s|$)")
ENVIRONMENT = {"trim_blocks": True, "lstrip_blocks": True, "keep_trailing_newline": False, "autoescape": False}
VERSION = content_hash("template-v1", ENVIRONMENT, _FIRST_SENTENCE.pattern, MAX_DOCUMENTS, "chainable-undefined")


class TemplateError(ValueError):
    """A draft template that cannot be read or compiled; names the file and line."""


@functools.lru_cache(maxsize=8192)
def gist(body: str) -> str:
    """The document's first sentence (empty when it is not a plain sentence or holds PII-like text)."""
    m = _FIRST_SENTENCE.match((body or "").strip())
    text = m.group(1).strip() if m else ""
    return "" if text and find_pii(text) else text


class Fields(dict):
    """A mapping whose keys also read as attributes, so ``doc.title`` finds the key without the
    exception a plain dict costs Jinja's attribute lookup (~1.5 us, a dozen times per render)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _finalize(value: Any) -> Any:
    # a missing value (None, NaN of an absent lookup column) renders as nothing, never "None" / "nan"
    return "" if is_missing(value) else value


@functools.lru_cache(maxsize=32)
def _environment(root: str):
    from jinja2 import ChainableUndefined, FileSystemLoader
    from jinja2.sandbox import SandboxedEnvironment

    class Sandbox(SandboxedEnvironment):
        """The sandbox, with a fast path for our own mappings: reading a key of a :class:`Fields`
        is always safe, so it skips the attribute checks (the most frequent operation of a render)."""

        def getattr(self, obj: Any, attribute: str) -> Any:
            if type(obj) is Fields and attribute in obj:
                return obj[attribute]
            return super().getattr(obj, attribute)

    return Sandbox(loader=FileSystemLoader(root), undefined=ChainableUndefined, finalize=_finalize, **ENVIRONMENT)


def template_path(task: "TaskDefinition") -> Path:
    return Path(task.root) / task.spec.template


def template_source(task: "TaskDefinition") -> str:
    """The template file's text; :class:`TemplateError` when it cannot be read."""
    path = template_path(task)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read the draft template: {exc.strerror or exc}") from None


def load_template(task: "TaskDefinition"):
    """The compiled template of a draft task; :class:`TemplateError` names the file and line."""
    from jinja2 import TemplateError as JinjaError
    from jinja2 import TemplateSyntaxError

    template_source(task)  # a clear error for a missing file
    try:
        return _environment(str(Path(task.root).resolve())).get_template(Path(task.spec.template).as_posix())
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{template_path(task)}: line {exc.lineno}: {exc.message}") from None
    except JinjaError as exc:
        raise TemplateError(f"{template_path(task)}: {exc}") from None


@functools.lru_cache(maxsize=64)
def template_names(root: str, source: str) -> frozenset[str] | None:
    """The names a template reads, or None when it includes, imports or extends others (then it
    gets every input: what those read is not known here)."""
    from jinja2 import meta, nodes

    ast = _environment(root).parse(source)
    if any(True for _ in ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends))):
        return None
    return frozenset(meta.find_undeclared_variables(ast))


def pick_documents(task: "TaskDefinition", item: Item) -> list[Document]:
    """The documents a draft cites: those filed under the preferred task's answer when any, else all."""
    docs = list(item.documents)
    retrieval = task.spec.retrieval
    limit = min(MAX_DOCUMENTS, retrieval.k) if retrieval is not None else MAX_DOCUMENTS
    group_task = retrieval.prefer_group_of if retrieval is not None else None
    if group_task:
        label = item.fields.get(group_task)
        same = [d for d in docs if label and d.group == label]
        docs = same or docs
    return docs[:limit]


def _document(d: Document) -> Fields:
    return Fields(id=d.id, title=d.title, url=d.url, body=d.body, group=d.group, score=d.score, gist=gist(d.body))


def variables(item: Item, documents: Sequence[Document], names: frozenset[str] | None = None) -> dict[str, Any]:
    """What the template sees for one item (see the module docstring); ``names``: only those."""
    fields = item.fields
    if names is None:
        values = nest({k: None if is_missing(v) else v for k, v in fields.items()})
        values = {k: Fields(v) if isinstance(v, dict) else v for k, v in values.items()}
    else:  # the few names the template reads: the inputs of that name, or the lookup's nested row
        values = {}
        for name in names:
            if name in fields:
                v = fields[name]
                values[name] = None if is_missing(v) else v
            else:
                prefix = name + "."
                inner = Fields((k[len(prefix):], None if is_missing(v) else v) for k, v in fields.items()
                               if k.startswith(prefix))
                if inner:
                    values[name] = inner
    values["documents"] = [_document(d) for d in documents]
    return values


def cited(text: str, documents: Sequence[Document]) -> list[str]:
    """Ids of the documents whose id, title or url the text names."""
    return [d.id for d in documents if any(s and s in text for s in (d.id, d.title, d.url))]


def render(task: "TaskDefinition", items: Sequence[Item]) -> list[tuple[dict[str, Any] | None, str | None]]:
    """(output, error) per item: ``{"text", "cited_ids"}`` or the reason the template failed."""
    from jinja2 import TemplateError as JinjaError

    template = load_template(task)
    names = template_names(str(Path(task.root).resolve()), template_source(task))
    out: list[tuple[dict[str, Any] | None, str | None]] = []
    for item in items:
        docs = pick_documents(task, item)
        try:
            text = template.render(variables(item, docs, names)).strip()
        except (JinjaError, TypeError, ValueError, AttributeError, KeyError) as exc:
            out.append((None, f"template {task.spec.template}: {type(exc).__name__}: {exc}"))
            continue
        if not text:
            out.append((None, f"template {task.spec.template} rendered an empty text"))
            continue
        out.append(({"text": text, "cited_ids": cited(text, docs)}, None))
    return out
