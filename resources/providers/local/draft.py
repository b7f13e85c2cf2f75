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
import operator
import re
from itertools import repeat
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
    """(output, error) per item: ``{"text", "cited_ids"}`` or the reason the template failed.

    A render is a pure function of what the template reads (its names and the documents), so items
    that give it equal values share one render: records of one customer and answer with the same
    articles. Equal means same type and value (floats by ``repr``: ``0.0`` and ``-0.0`` render
    apart); an item holding any other type of value, or a template that includes others or draws
    random values, is rendered on its own.
    """
    template = load_template(task)
    root, source = str(Path(task.root).resolve()), template_source(task)
    names = template_names(root, source)
    memo: dict[Any, tuple[dict[str, Any] | None, str | None]] | None = (
        {} if names is not None and deterministic(root, source) else None)
    reads = template_reads(root, source) if memo is not None else {}
    out: list[tuple[dict[str, Any] | None, str | None]] = []
    for item in items:
        docs = pick_documents(task, item)
        key = _memo_key(item, docs, reads) if memo is not None else None
        if key is not None:
            hit = memo.get(key)  # type: ignore[union-attr]
            if hit is not None:  # each item its own output dict: callers may change one
                output, error = hit
                out.append(({"text": output["text"], "cited_ids": list(output["cited_ids"])}, None)
                           if output is not None else (None, error))
                continue
        answer = _render_one(task, template, item, docs, names)
        if key is not None:
            memo[key] = answer  # type: ignore[index]
        out.append(answer)
    return out


def _render_one(task: "TaskDefinition", template: Any, item: Item, docs: list[Document],
                names: frozenset[str] | None) -> tuple[dict[str, Any] | None, str | None]:
    from jinja2 import TemplateError as JinjaError

    try:
        text = template.render(variables(item, docs, names)).strip()
    except (JinjaError, TypeError, ValueError, AttributeError, KeyError) as exc:
        return None, f"template {task.spec.template}: {type(exc).__name__}: {exc}"
    if not text:
        return None, f"template {task.spec.template} rendered an empty text"
    return {"text": text, "cited_ids": cited(text, docs)}, None


@functools.lru_cache(maxsize=64)
def deterministic(root: str, source: str) -> bool:
    """False when the template draws random values (the ``random`` filter, ``lipsum``)."""
    from jinja2 import nodes

    ast = _environment(root).parse(source)
    drawn = (n for n in ast.find_all((nodes.Filter, nodes.Name))
             if isinstance(n, nodes.Filter) and n.name == "random" or isinstance(n, nodes.Name) and n.name == "lipsum")
    return next(drawn, None) is None


class _Unkeyable(Exception):
    pass


_ABSENT = object()  # a column the item does not have (reads as undefined, unlike a None value)


def _atom(value: Any) -> Any:
    kind = type(value)
    if kind is str or value is None or value is _ABSENT:
        return value
    if kind is int or kind is bool:
        return kind, value  # the type too: 1, 1.0 and True are equal keys but render apart
    if kind is float:
        return kind, repr(value)  # 0.0 and -0.0 render apart
    raise _Unkeyable


def _memo_key(item: Item, docs: Sequence[Document], reads: dict[str, Any]) -> Any:
    """What one render reads, as a hashable key; None when a value is not of a type keyed exactly."""
    fields = item.fields
    try:
        parts: list[Any] = []
        for name, columns in reads["names"]:
            if name in fields:
                parts.append(_atom(fields[name]))
                continue
            prefix = name + "."
            if columns is None:  # the whole row is read (iterated, printed, indexed)
                parts.append(tuple((k, _atom(v)) for k, v in fields.items() if k.startswith(prefix)))
                continue
            row = tuple(map(_atom, map(fields.get, columns, repeat(_ABSENT))))
            # a row holding none of them is still truthy when it has other columns; no row is undefined
            parts.append(row if row.count(_ABSENT) < len(row) else (row, any(k.startswith(prefix) for k in fields)))
        getter = reads["documents"]
        parts.extend(tuple(map(_atom, getter(d))) for d in docs)
    except _Unkeyable:
        return None
    return tuple(parts)


_DOCUMENT_ATTRS = ("id", "title", "url", "body", "group", "score")
_CITED = ("id", "title", "url")


@functools.lru_cache(maxsize=64)
def template_reads(root: str, source: str) -> dict[str, Any]:
    """What a render can read: per name, the columns it reads of it (``account.name``) or None when
    it uses the value itself; and a getter of the document attributes it can show. Call only when
    :func:`template_names` is not None."""
    from jinja2 import meta, nodes

    ast = _environment(root).parse(source)
    names = meta.find_undeclared_variables(ast)
    attrs: dict[str, set[str]] = {n: set() for n in names}
    covered: set[int] = set()
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in attrs:
            attrs[node.node.name].add(node.attr)
            covered.add(id(node.node))
    whole = {n.name for n in ast.find_all(nodes.Name) if n.name in attrs and id(n) not in covered}
    columns = [(n, None if n in whole or not attrs[n] else tuple(f"{n}.{a}" for a in sorted(attrs[n])))
               for n in sorted(names) if n != "documents"]
    return {"names": columns, "documents": operator.attrgetter(*(_document_reads(ast) or _DOCUMENT_ATTRS))}


def _document_reads(ast: Any) -> tuple[str, ...] | None:
    """The document attributes a render can show when the template only tests ``documents`` and
    loops over it reading attributes of the loop variable; None (all of them) otherwise."""
    from jinja2 import nodes

    loops = [f for f in ast.find_all(nodes.For) if isinstance(f.iter, nodes.Name) and f.iter.name == "documents"]
    if not all(isinstance(f.target, nodes.Name) for f in loops):
        return None
    targets = {f.target.name for f in loops}
    allowed = {id(f.iter) for f in loops} | {id(f.target) for f in loops}
    allowed |= {id(n.test) for n in ast.find_all(nodes.If) if isinstance(n.test, nodes.Name)}
    read = set(_CITED)
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in targets:
            allowed.add(id(node.node))
            read.add("body" if node.attr == "gist" else node.attr)
    if any(n.name in targets | {"documents"} and id(n) not in allowed for n in ast.find_all(nodes.Name)):
        return None
    return tuple(a for a in _DOCUMENT_ATTRS if a in read)
