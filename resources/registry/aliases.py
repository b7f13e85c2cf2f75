"""The alias machinery both registries share: who holds an alias, moving it, the champion compare-and-set, rollback.

An :class:`AliasBook` works on one pair of tables (the current aliases and their append-only
history, :mod:`.schema`), so models and prompts keep their own tables, and their own unique
indexes, while the rules that guard a champion live here once. The messages name the thing the
book holds ("champion" / "champion prompt"): users and tests read them.
"""

from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy import orm

from .records import CHAMPION, EXCLUSIVE_ALIASES, RETIRED, PromotionConflict, RegistryError, now_iso

# "the champion the caller saw, whatever it is": a promotion not decided against a known champion
UNSET: Any = object()


def of(model: Any, family: str, task: str) -> tuple[Any, Any]:
    """The WHERE clauses of one (family, task) of a registry table."""
    return model.family == family, model.task == task


class AliasBook:
    """The aliases of one pair of tables: ``alias_model`` (current alias per version) and ``history_model``."""

    def __init__(self, alias_model: Any, history_model: Any, *, noun: str = "champion", subject: str = "",
                 stale: str = "{where}: {noun} is no longer {expected}; the promotion of {version} was "
                              "decided against {expected}; re-evaluate before promoting") -> None:
        self.alias_model, self.history_model = alias_model, history_model
        self.noun = noun  # the champion, as messages call it
        self.subject = subject  # prefix of a version in messages ("prompt ")
        self.stale = stale  # the message of a champion changed between our read and our write

    def holder(self, s: orm.Session, family: str, task: str, alias: str) -> str | None:
        a = self.alias_model
        return s.scalar(sa.select(a.version).where(*of(a, family, task), a.alias == alias))

    def alias_of(self, s: orm.Session, family: str, task: str, version: str) -> str | None:
        a = self.alias_model
        return s.scalar(sa.select(a.alias).where(*of(a, family, task), a.version == version))

    def _set_own(self, s: orm.Session, family: str, task: str, version: str, alias: str, actor: str,
                 reason: str, now: str) -> None:
        a = self.alias_model
        own = s.scalar(sa.select(a).where(*of(a, family, task), a.version == version))
        if own is None:
            s.add(a(family=family, task=task, version=version, alias=alias, updated_by=actor, updated_at=now,
                    reason=reason))
        else:
            own.alias, own.updated_by, own.updated_at, own.reason = alias, actor, now, reason
        s.flush()  # a second champion / challenger row fails here, on the partial unique index

    def move(self, s: orm.Session, family: str, task: str, version: str, alias: str, actor: str,
             reason: str, evaluation_id: str | None = None) -> None:
        """Give ``version`` a non-champion alias; retire the previous holder of an exclusive alias."""
        a, h = self.alias_model, self.history_model
        now, previous = now_iso(), None
        history: list[Any] = []
        if alias in EXCLUSIVE_ALIASES:
            holder = s.scalar(sa.select(a).where(*of(a, family, task), a.alias == alias))
            if holder is not None and holder.version != version:
                previous = holder.version
                holder.alias, holder.updated_by, holder.updated_at = RETIRED, actor, now
                holder.reason = f"replaced as {alias} by {version}: {reason}"
                history.append(h(family=family, task=task, alias=RETIRED, to_version=holder.version, actor=actor,
                                 reason=holder.reason, evaluation_id=evaluation_id, recorded_at=now))
                s.flush()  # the retirement must reach the database before the new holder's row
        self._set_own(s, family, task, version, alias, actor, reason, now)
        history.insert(0, h(family=family, task=task, alias=alias, from_version=previous, to_version=version,
                            actor=actor, reason=reason, evaluation_id=evaluation_id, recorded_at=now))
        s.add_all(history)

    def swap_champion(self, s: orm.Session, family: str, task: str, version: str, actor: str, reason: str,
                      evaluation_id: str | None, expected: str | None) -> str | None:
        """Compare-and-set of the champion alias; appends the history rows. Returns the old champion.

        The old champion row is retired by an ``UPDATE ... WHERE version = <expected>`` that must
        hit exactly one row, and the partial unique index refuses a second champion row: two
        concurrent promotions cannot both win, whatever the isolation level or SQLite journal mode.
        """
        a, h = self.alias_model, self.history_model
        current = self.holder(s, family, task, CHAMPION)
        where = f"{family}.{task}"
        if expected is UNSET:
            expected = current
        elif current != expected:
            raise PromotionConflict(f"{where}: {self.noun} is {current or 'none'} but the promotion of {version} "
                                    f"was decided against {expected or 'none'}; re-evaluate before promoting")
        if expected == version:
            return expected
        now = now_iso()
        if expected is not None:
            why = f"replaced as champion by {version}: {reason}"
            retired = s.execute(
                sa.update(a)
                .where(*of(a, family, task), a.alias == CHAMPION, a.version == expected)
                .values(alias=RETIRED, updated_by=actor, updated_at=now, reason=why)
                .execution_options(synchronize_session=False)
            )
            if retired.rowcount != 1:  # someone changed the champion between our read and this write
                raise PromotionConflict(self.stale.format(where=where, noun=self.noun, expected=expected,
                                                          version=version))
            s.add(h(family=family, task=task, alias=RETIRED, to_version=expected, actor=actor, reason=why,
                    evaluation_id=evaluation_id, recorded_at=now))
        self._set_own(s, family, task, version, CHAMPION, actor, reason, now)
        s.add(h(family=family, task=task, alias=CHAMPION, from_version=expected, to_version=version, actor=actor,
                reason=reason, evaluation_id=evaluation_id, recorded_at=now))
        return expected

    def rollback(self, engine: sa.Engine, family: str, task: str, target: str | None, actor: str,
                 reason: str | None,
                 require: Callable[[orm.Session, str], None] | None = None) -> tuple[str | None, str]:
        """Make ``target`` (default: the previous champion) the champion; returns (old champion, new champion).

        The previous champion is the ``from_version`` of the latest change that made the current
        champion champion. ``require(session, target)`` refuses a target that is not registered.
        """
        h = self.history_model
        where = f"{family}.{task}"
        try:
            with orm.Session(engine) as s, s.begin():
                current = self.holder(s, family, task, CHAMPION)
                if target is None:
                    last = s.scalar(
                        sa.select(h)
                        .where(*of(h, family, task), h.alias == CHAMPION, h.to_version == current,
                               h.from_version.is_not(None))
                        .order_by(h.id.desc()).limit(1)
                    )
                    if last is None or current is None:
                        raise RegistryError(f"{where}: no previous {self.noun} to roll back to "
                                            f"(champion: {current or 'none'})")
                    target = last.from_version
                if require is not None:
                    require(s, target)
                if target == current:
                    raise RegistryError(f"{where}: {self.subject}{target} is already the champion")
                why = reason or f"rollback from {current or 'none'} to {target}"
                self.swap_champion(s, family, task, target, actor, why, None, current)
                return current, target
        except sa.exc.IntegrityError as exc:
            raise PromotionConflict(f"{where}: another champion change committed first; rollback not applied") from exc
