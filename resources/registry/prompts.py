"""Prompt versions in the registry: per (family, task) an immutable template text, its aliases, their history.

A prompt version is the content hash of its template text: registering the same text again is a
no-op, and a version's text never changes. Aliases are those of models (champion / challenger /
retired) with the same guarantees, in tables of their own (:mod:`.schema`): the database refuses a
second champion or challenger of a task, and the alias history refuses UPDATE, DELETE and TRUNCATE.

The first version registered for a task becomes its champion; any later new text becomes the
challenger (the previous challenger is retired). Nothing here promotes on its own: a challenger
becomes champion by :meth:`PromptRegistry.promote` (the registry CLI, or a gated evaluation).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import orm

from resources.providers.base import content_hash

from .aliases import UNSET as _UNSET
from .aliases import AliasBook
from .aliases import of as _of
from .records import CHALLENGER, CHAMPION, EXCLUSIVE_ALIASES, RETIRED, PromotionConflict, RegistryError
from .records import default_actor, now_iso
from .schema import PromptAlias, PromptAliasHistory, PromptText, ensure_schema

if TYPE_CHECKING:  # pragma: no cover
    from resources.providers.definition import TaskDefinition



@dataclass(frozen=True)
class PromptVersion:
    """One registered prompt template of a family's task, with its current alias."""

    version: str
    text: str
    created_at: str
    family: str = ""
    task: str = ""
    created_by: str = ""
    alias: str | None = None

    @property
    def key(self) -> str:
        """``family.task@version``, for messages."""
        return f"{self.family}.{self.task}@{self.version}"


def prompt_version_id(text: str) -> str:
    """The version of a template text: the hash of the text alone."""
    return content_hash("prompt", text)


class PromptRegistry:
    """Plain API over the prompt tables of one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.aliases = AliasBook(PromptAlias, PromptAliasHistory, noun="champion prompt", subject="prompt ",
                                 stale="{where}: {noun} is no longer {expected}; re-evaluate before promoting")
        ensure_schema(engine)

    # ---- versions ----------------------------------------------------------------------
    def register(self, family: str, task: str, text: str, *, actor: str | None = None) -> PromptVersion:
        """Add ``text`` as a version; the same text again returns the existing version unchanged.

        A task's first version becomes champion, a later one challenger (retiring the previous).
        """
        actor = actor or default_actor()
        version = prompt_version_id(text)
        for attempt in range(3):
            try:
                with orm.Session(self.engine) as s, s.begin():
                    row = self._row(s, family, task, version)
                    if row is not None:
                        return self._of_row(row, self.aliases.alias_of(s, family, task, version))
                    row = PromptText(family=family, task=task, version=version, text=text, created_by=actor,
                                     created_at=now_iso())
                    s.add(row)
                    s.flush()
                    if self.aliases.holder(s, family, task, CHAMPION) is None:
                        self.aliases.swap_champion(s, family, task, version, actor, "first prompt version", None, None)
                        return self._of_row(row, CHAMPION)
                    self.aliases.move(s, family, task, version, CHALLENGER, actor, "new prompt text registered")
                    return self._of_row(row, CHALLENGER)
            except sa.exc.IntegrityError:
                # a concurrent registration of the same text (theirs stands) or alias move (retry)
                with orm.Session(self.engine) as s:
                    row = self._row(s, family, task, version)
                    if row is not None:
                        return self._of_row(row, self.aliases.alias_of(s, family, task, version))
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, family: str, task: str, version: str) -> PromptVersion | None:
        with orm.Session(self.engine) as s:
            row = self._row(s, family, task, version)
            return self._of_row(row, self.aliases.alias_of(s, family, task, version)) if row else None

    def versions(self, family: str | None = None, task: str | None = None) -> list[PromptVersion]:
        """Every version with its current alias, oldest first per task."""
        with orm.Session(self.engine) as s:
            aliases = {(a.family, a.task, a.version): a.alias for a in s.scalars(_filtered(PromptAlias, family, task))}
            rows = s.scalars(_filtered(PromptText, family, task).order_by(PromptText.family, PromptText.task,
                                                                          PromptText.id))
            return [self._of_row(r, aliases.get((r.family, r.task, r.version))) for r in rows]

    # ---- aliases -----------------------------------------------------------------------
    def alias(self, family: str, task: str, alias: str) -> PromptVersion | None:
        """The version holding ``alias`` (champion / challenger) for the task, or None."""
        with orm.Session(self.engine) as s:
            version = self.aliases.holder(s, family, task, alias)
            row = self._row(s, family, task, version) if version is not None else None
            return self._of_row(row, alias) if row else None

    def resolve(self, family: str, task: str, ref: str) -> PromptVersion:
        """The version ``ref`` names: an alias (champion / challenger) or a version id."""
        if ref in EXCLUSIVE_ALIASES:
            found = self.alias(family, task, ref)
        elif ref == RETIRED:
            raise RegistryError(f"{family}.{task}: 'retired' names several prompt versions; give a version id")
        else:
            found = self.get(family, task, ref)
        if found is None:
            known = [f"{v.version} ({v.alias or '-'})" for v in self.versions(family, task)]
            raise RegistryError(f"{family}.{task}: no prompt version {ref!r}; registered: {', '.join(known) or 'none'}")
        return found

    def promote(self, family: str, task: str, version: str, *, actor: str | None = None, reason: str,
                evaluation_id: str | None = None, expected_champion: str | None = _UNSET) -> str | None:
        """Make ``version`` (or the version an alias names) the champion; returns the old champion.

        ``expected_champion``: the champion the decision was based on; if the champion is another
        by the time this commits, :class:`PromotionConflict` and nothing changes.
        """
        actor = actor or default_actor()
        version = self.resolve(family, task, version).version
        try:
            with orm.Session(self.engine) as s, s.begin():
                return self.aliases.swap_champion(s, family, task, version, actor, reason, evaluation_id,
                                                  expected_champion)
        except sa.exc.IntegrityError as exc:
            raise PromotionConflict(f"{family}.{task}: another prompt promotion committed first; "
                                    f"{version} was not made champion") from exc

    def rollback(self, family: str, task: str, *, to_version: str | None = None, actor: str | None = None,
                 reason: str | None = None) -> tuple[str | None, str]:
        """Restore the previous champion prompt (or ``to_version``); returns (old champion, new champion)."""
        target = self.resolve(family, task, to_version).version if to_version else None
        return self.aliases.rollback(self.engine, family, task, target, actor or default_actor(), reason)

    def history(self, family: str | None = None, task: str | None = None) -> pd.DataFrame:
        """Every prompt alias change, oldest first."""
        stmt = _filtered(PromptAliasHistory, family, task, sa.select(PromptAliasHistory.__table__))
        with self.engine.connect() as conn:
            return pd.read_sql(stmt.order_by(PromptAliasHistory.id), conn)

    # ---- internals ---------------------------------------------------------------------
    @staticmethod
    def _of_row(row: PromptText, alias: str | None) -> PromptVersion:
        return PromptVersion(version=row.version, text=row.text, created_at=row.created_at, family=row.family,
                             task=row.task, created_by=row.created_by, alias=alias)

    @staticmethod
    def _row(s: orm.Session, family: str, task: str, version: str) -> PromptText | None:
        return s.scalar(sa.select(PromptText).where(*_of(PromptText, family, task), PromptText.version == version))


def _filtered(model: Any, family: str | None, task: str | None, stmt: Any = None) -> Any:
    stmt = sa.select(model) if stmt is None else stmt
    if family:
        stmt = stmt.where(model.family == family)
    if task:
        stmt = stmt.where(model.task == task)
    return stmt


def bind_prompt(registry: PromptRegistry, task: "TaskDefinition", ref: str = CHAMPION, *,
                actor: str | None = None) -> "TaskDefinition":
    """``task`` bound to the registered prompt ``ref`` names (its LLM calls use that version's text).

    A task with no registered prompt yet registers its current template first (so the champion),
    as its ``<task>_prompt`` asset would: a first run works before that asset ever ran.
    """
    from resources.providers.prompt_templates import template_text
    from resources.providers.prompts import with_prompt

    if ref == CHAMPION and registry.alias(task.family, task.name, CHAMPION) is None \
            and not registry.versions(task.family, task.name):
        registry.register(task.family, task.name, template_text(task), actor=actor)
    found = registry.resolve(task.family, task.name, ref)
    return with_prompt(task, found.version, found.text)
