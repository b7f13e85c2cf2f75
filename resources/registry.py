"""The model registry: model versions, their aliases and an append-only alias history, in the warehouse.

Tables (SQLAlchemy 2 ORM, created by the project with ``create_all(checkfirst=True)``; columns a
newer release adds are added to an existing table, nothing is ever dropped):

- ``model_versions``: one row per (task, version): provider, model id, params, prompt template
  and its hash, training-data hash and size (local models), artifact, who/when, metrics.
- ``model_aliases``: the current alias of each version (``champion`` / ``challenger`` /
  ``retired``). A partial unique index on ``task`` for ``alias IN ('champion', 'challenger')``
  lets the *database* refuse a second champion (or challenger) of a task, whatever the code does.
- ``model_alias_history``: every alias change (who, when, from version, to version, reason,
  evaluation id); SQLite and PostgreSQL triggers refuse UPDATE and DELETE on it.
- ``model_evaluations``: every golden-set evaluation (metrics of challenger and champion, the
  gate results), referenced by the history row of a promotion.

:class:`ModelRegistry` is the plain API (no Dagster); :class:`ModelRegistryResource` gives it to
assets, sensors and checks, together with the promotion thresholds.
"""


import getpass
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence
from uuid import uuid4

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy import orm

from .providers.base import content_hash
from .warehouse import Warehouse, make_append_only

CHAMPION, CHALLENGER, RETIRED = "champion", "challenger", "retired"
ALIASES = (CHAMPION, CHALLENGER, RETIRED)
# aliases a task may hold at most once at a time (enforced by a partial unique index)
EXCLUSIVE_ALIASES = (CHAMPION, CHALLENGER)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def default_actor() -> str:
    """Who is acting: ``REGISTRY_ACTOR`` if set, else ``user:<login>``."""
    if os.getenv("REGISTRY_ACTOR"):
        return os.environ["REGISTRY_ACTOR"]
    try:
        return f"user:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "user:unknown"


# ---- schema ------------------------------------------------------------------------------------


class Base(orm.DeclarativeBase):
    metadata = sa.MetaData()


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (sa.UniqueConstraint("task", "version", name="uq_model_versions_task_version"),)

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    task: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)
    version: orm.Mapped[str] = orm.mapped_column(sa.String(120), nullable=False)
    provider: orm.Mapped[str] = orm.mapped_column(sa.String(80), nullable=False)
    model_id: orm.Mapped[str] = orm.mapped_column(sa.String(200), nullable=False)
    params: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False, default="{}")
    prompt_template: orm.Mapped[str | None] = orm.mapped_column(sa.Text, nullable=True)
    prompt_hash: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    training_data_hash: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    training_rows: orm.Mapped[int | None] = orm.mapped_column(sa.Integer, nullable=True)
    artifact: orm.Mapped[str | None] = orm.mapped_column(sa.Text, nullable=True)
    metrics: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False, default="{}")
    description: orm.Mapped[str | None] = orm.mapped_column(sa.Text, nullable=True)
    created_by: orm.Mapped[str] = orm.mapped_column(sa.String(200), nullable=False)
    created_at: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)


class ModelAlias(Base):
    __tablename__ = "model_aliases"
    __table_args__ = (
        sa.UniqueConstraint("task", "version", name="uq_model_aliases_task_version"),
        sa.CheckConstraint(f"alias IN {ALIASES!r}", name="ck_model_aliases_alias"),
        # the guarantee: at most one champion and one challenger per task, enforced by the database
        sa.Index(
            "uq_model_aliases_one_per_task",
            "task",
            "alias",
            unique=True,
            sqlite_where=sa.text(f"alias IN {EXCLUSIVE_ALIASES!r}"),
            postgresql_where=sa.text(f"alias IN {EXCLUSIVE_ALIASES!r}"),
        ),
    )

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    task: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)
    version: orm.Mapped[str] = orm.mapped_column(sa.String(120), nullable=False)
    alias: orm.Mapped[str] = orm.mapped_column(sa.String(20), nullable=False)
    updated_by: orm.Mapped[str] = orm.mapped_column(sa.String(200), nullable=False)
    updated_at: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)
    reason: orm.Mapped[str | None] = orm.mapped_column(sa.Text, nullable=True)


class AliasHistory(Base):
    __tablename__ = "model_alias_history"

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    task: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)
    alias: orm.Mapped[str] = orm.mapped_column(sa.String(20), nullable=False)
    from_version: orm.Mapped[str | None] = orm.mapped_column(sa.String(120), nullable=True)
    to_version: orm.Mapped[str | None] = orm.mapped_column(sa.String(120), nullable=True)
    actor: orm.Mapped[str] = orm.mapped_column(sa.String(200), nullable=False)
    reason: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False)
    evaluation_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    recorded_at: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)


class Evaluation(Base):
    __tablename__ = "model_evaluations"

    evaluation_id: orm.Mapped[str] = orm.mapped_column(sa.String(64), primary_key=True)
    task: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)
    challenger_version: orm.Mapped[str | None] = orm.mapped_column(sa.String(120), nullable=True)
    champion_version: orm.Mapped[str | None] = orm.mapped_column(sa.String(120), nullable=True)
    golden_set_hash: orm.Mapped[str] = orm.mapped_column(sa.String(64), nullable=False)
    golden_rows: orm.Mapped[int] = orm.mapped_column(sa.Integer, nullable=False)
    metrics: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False)  # {version: {metric: value}}
    gates: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False, default="[]")
    passed: orm.Mapped[bool] = orm.mapped_column(sa.Boolean, nullable=False)
    run_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    created_by: orm.Mapped[str] = orm.mapped_column(sa.String(200), nullable=False)
    created_at: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)


HISTORY_TABLE = AliasHistory.__tablename__
_SCHEMA_READY: set[str] = set()
_SCHEMA_LOCK = threading.Lock()


def ensure_schema(engine: sa.Engine) -> None:
    """Create missing registry tables and add missing (nullable) columns; never drops anything."""
    key = str(engine.url)
    if key in _SCHEMA_READY:
        return
    with _SCHEMA_LOCK:
        with engine.begin() as conn:
            Base.metadata.create_all(conn, checkfirst=True)
            insp = sa.inspect(conn)
            for table in Base.metadata.sorted_tables:
                existing = {c["name"] for c in insp.get_columns(table.name)}
                for col in table.columns:
                    if col.name not in existing:
                        col_type = col.type.compile(dialect=conn.dialect)
                        conn.execute(sa.text(f'ALTER TABLE "{table.name}" ADD COLUMN "{col.name}" {col_type}'))
            make_append_only(conn, HISTORY_TABLE)
        _SCHEMA_READY.add(key)


# ---- plain records -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    task: str
    version: str
    provider: str
    model_id: str
    params: dict[str, Any]
    prompt_template: str | None
    prompt_hash: str | None
    training_data_hash: str | None
    training_rows: int | None
    artifact: str | None
    metrics: dict[str, Any]
    created_by: str
    created_at: str
    alias: str | None = None

    @classmethod
    def of(cls, row: ModelVersion, alias: str | None = None) -> "VersionInfo":
        return cls(
            task=row.task,
            version=row.version,
            provider=row.provider,
            model_id=row.model_id,
            params=json.loads(row.params or "{}"),
            prompt_template=row.prompt_template,
            prompt_hash=row.prompt_hash,
            training_data_hash=row.training_data_hash,
            training_rows=row.training_rows,
            artifact=row.artifact,
            metrics=json.loads(row.metrics or "{}"),
            created_by=row.created_by,
            created_at=row.created_at,
            alias=alias,
        )


@dataclass(frozen=True)
class EvaluationRecord:
    evaluation_id: str
    task: str
    challenger_version: str | None
    champion_version: str | None
    golden_set_hash: str
    golden_rows: int
    metrics: dict[str, dict[str, Any]]
    gates: list[dict[str, Any]]
    passed: bool
    run_id: str | None
    created_by: str
    created_at: str


class RegistryError(Exception):
    """A registry operation that cannot be done as asked (unknown version, nothing to roll back to)."""


class PromotionConflict(RegistryError):
    """The champion changed since the promotion was decided (or another promotion won the race)."""


_UNSET: Any = object()


class ModelRegistry:
    """Plain API over the registry tables of one database (no Dagster)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        ensure_schema(engine)

    @classmethod
    def for_warehouse(cls, warehouse: Warehouse) -> "ModelRegistry":
        return cls(warehouse.engine)

    # ---- versions ----------------------------------------------------------------------
    def register(
        self,
        *,
        task: str,
        version: str,
        provider: str,
        model_id: str,
        params: dict[str, Any] | None = None,
        prompt_template: str | None = None,
        training_data_hash: str | None = None,
        training_rows: int | None = None,
        artifact: str | None = None,
        metrics: dict[str, Any] | None = None,
        description: str | None = None,
        created_by: str | None = None,
        alias: str | None = None,
        reason: str | None = None,
    ) -> tuple[VersionInfo, bool]:
        """Add a version (idempotent: an existing (task, version) is returned unchanged, ``created=False``).

        With ``alias="challenger"`` a newly created version becomes the task's challenger (a
        previous challenger is retired), recorded in the history with ``reason``.
        """
        actor = created_by or default_actor()
        try:
            with orm.Session(self.engine) as s, s.begin():
                existing = s.scalar(sa.select(ModelVersion).where(ModelVersion.task == task, ModelVersion.version == version))
                if existing is not None:
                    return VersionInfo.of(existing, self._alias_of(s, task, version)), False
                row = ModelVersion(
                    task=task,
                    version=version,
                    provider=provider,
                    model_id=model_id,
                    params=json.dumps(params or {}, sort_keys=True, default=str),
                    prompt_template=prompt_template,
                    prompt_hash=content_hash(prompt_template) if prompt_template else None,
                    training_data_hash=training_data_hash,
                    training_rows=training_rows,
                    artifact=artifact,
                    metrics=json.dumps(metrics or {}, sort_keys=True, default=str),
                    description=description,
                    created_by=actor,
                    created_at=_now(),
                )
                s.add(row)
                s.flush()
                if alias is not None:
                    self._move_alias(s, task, version, alias, actor, reason or f"registered as {alias}", None)
                return VersionInfo.of(row, alias), True
        except sa.exc.IntegrityError:
            # another process registered the same (task, version) concurrently: theirs stands
            got = self.get(task, version)
            if got is None:
                raise
            return got, False

    def get(self, task: str, version: str) -> VersionInfo | None:
        with orm.Session(self.engine) as s:
            row = s.scalar(sa.select(ModelVersion).where(ModelVersion.task == task, ModelVersion.version == version))
            return VersionInfo.of(row, self._alias_of(s, task, version)) if row else None

    def update_metrics(self, task: str, version: str, metrics: dict[str, Any]) -> None:
        """Merge ``metrics`` into the version's stored metrics (the latest evaluation of it)."""
        with orm.Session(self.engine) as s, s.begin():
            row = s.scalar(sa.select(ModelVersion).where(ModelVersion.task == task, ModelVersion.version == version))
            if row is None:
                raise RegistryError(f"unknown {task} version {version!r}")
            row.metrics = json.dumps({**json.loads(row.metrics or "{}"), **metrics}, sort_keys=True, default=str)

    def versions(self, task: str | None = None) -> list[VersionInfo]:
        with orm.Session(self.engine) as s:
            stmt = sa.select(ModelVersion).order_by(ModelVersion.task, ModelVersion.id)
            if task:
                stmt = stmt.where(ModelVersion.task == task)
            aliases = {(a.task, a.version): a.alias for a in s.scalars(sa.select(ModelAlias))}
            return [VersionInfo.of(r, aliases.get((r.task, r.version))) for r in s.scalars(stmt)]

    # ---- aliases -----------------------------------------------------------------------
    def alias(self, task: str, alias: str) -> VersionInfo | None:
        """The version holding ``alias`` (champion / challenger) for ``task``, or None."""
        with orm.Session(self.engine) as s:
            a = s.scalar(sa.select(ModelAlias).where(ModelAlias.task == task, ModelAlias.alias == alias))
            if a is None:
                return None
            row = s.scalar(sa.select(ModelVersion).where(ModelVersion.task == task, ModelVersion.version == a.version))
            return VersionInfo.of(row, alias) if row else None

    def champion(self, task: str) -> VersionInfo | None:
        return self.alias(task, CHAMPION)

    def challenger(self, task: str) -> VersionInfo | None:
        return self.alias(task, CHALLENGER)

    def set_alias(
        self,
        task: str,
        version: str,
        alias: str,
        *,
        actor: str | None = None,
        reason: str,
        evaluation_id: str | None = None,
    ) -> None:
        """Give ``version`` the alias ``alias`` (the previous holder of an exclusive alias is retired)."""
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; one of {', '.join(ALIASES)}")
        if alias == CHAMPION:
            self.promote(task, version, actor=actor, reason=reason, evaluation_id=evaluation_id)
            return
        with orm.Session(self.engine) as s, s.begin():
            self._require_version(s, task, version)
            self._move_alias(s, task, version, alias, actor or default_actor(), reason, evaluation_id)

    def promote(
        self,
        task: str,
        version: str,
        *,
        actor: str | None = None,
        reason: str,
        evaluation_id: str | None = None,
        expected_champion: str | None = _UNSET,
    ) -> str | None:
        """Make ``version`` the champion of ``task``; the old champion is retired. Returns the old champion.

        ``expected_champion``: the champion the decision was based on (e.g. the one the evaluation
        compared against, ``None`` for "there was none"). If the champion is a different version by
        the time the promotion commits, :class:`PromotionConflict` is raised and nothing changes.

        The swap is a compare-and-set in the database: the old champion row is retired by an
        ``UPDATE ... WHERE version = <expected>`` that must hit exactly one row, and the partial
        unique index refuses a second champion row. So two concurrent promotions cannot both win,
        whatever the isolation level or SQLite journal mode; the loser gets :class:`PromotionConflict`.
        """
        actor = actor or default_actor()
        try:
            with orm.Session(self.engine) as s, s.begin():
                self._require_version(s, task, version)
                return self._swap_champion(s, task, version, actor, reason, evaluation_id, expected_champion)
        except sa.exc.IntegrityError as exc:
            raise PromotionConflict(
                f"{task}: another promotion committed first; {version} was not made champion ({exc.orig})"
            ) from exc

    def rollback(
        self, task: str, *, to_version: str | None = None, actor: str | None = None, reason: str | None = None
    ) -> tuple[str | None, str]:
        """Restore the previous champion (or ``to_version``); returns (old champion, new champion).

        The previous champion is the ``from_version`` of the latest champion change in the history.
        The history keeps every row; the rollback is one more.
        """
        actor = actor or default_actor()
        try:
            with orm.Session(self.engine) as s, s.begin():
                current_version = s.scalar(
                    sa.select(ModelAlias.version).where(ModelAlias.task == task, ModelAlias.alias == CHAMPION)
                )
                target = to_version
                if target is None:
                    last = s.scalar(
                        sa.select(AliasHistory)
                        .where(
                            AliasHistory.task == task,
                            AliasHistory.alias == CHAMPION,
                            AliasHistory.to_version == current_version,
                            AliasHistory.from_version.is_not(None),
                        )
                        .order_by(AliasHistory.id.desc())
                        .limit(1)
                    )
                    if last is None or current_version is None:
                        raise RegistryError(
                            f"{task}: no previous champion to roll back to (champion: {current_version or 'none'})"
                        )
                    target = last.from_version
                self._require_version(s, task, target)
                if target == current_version:
                    raise RegistryError(f"{task}: {target} is already the champion")
                why = reason or f"rollback from {current_version or 'none'} to {target}"
                self._swap_champion(s, task, target, actor, why, None, current_version)
                return current_version, target
        except sa.exc.IntegrityError as exc:
            raise PromotionConflict(f"{task}: another champion change committed first; rollback not applied") from exc

    def _swap_champion(
        self, s: orm.Session, task: str, version: str, actor: str, reason: str, evaluation_id: str | None,
        expected: str | None,
    ) -> str | None:
        current = s.scalar(sa.select(ModelAlias.version).where(ModelAlias.task == task, ModelAlias.alias == CHAMPION))
        if expected is _UNSET:
            expected = current
        elif current != expected:
            raise PromotionConflict(
                f"{task}: champion is {current or 'none'} but the promotion of {version} was "
                f"decided against {expected or 'none'}; re-evaluate before promoting"
            )
        if expected == version:
            return expected
        now = _now()
        if expected is not None:
            retired = s.execute(
                sa.update(ModelAlias)
                .where(ModelAlias.task == task, ModelAlias.alias == CHAMPION, ModelAlias.version == expected)
                .values(alias=RETIRED, updated_by=actor, updated_at=now,
                        reason=f"replaced as champion by {version}: {reason}")
                .execution_options(synchronize_session=False)
            )
            if retired.rowcount != 1:  # someone changed the champion between our read and this write
                raise PromotionConflict(
                    f"{task}: champion is no longer {expected}; the promotion of {version} was "
                    f"decided against {expected}; re-evaluate before promoting"
                )
            s.add(AliasHistory(task=task, alias=RETIRED, from_version=None, to_version=expected, actor=actor,
                               reason=f"replaced as champion by {version}: {reason}", evaluation_id=evaluation_id,
                               recorded_at=now))
        own = s.scalar(sa.select(ModelAlias).where(ModelAlias.task == task, ModelAlias.version == version))
        if own is None:
            s.add(ModelAlias(task=task, version=version, alias=CHAMPION, updated_by=actor, updated_at=now, reason=reason))
        else:
            own.alias, own.updated_by, own.updated_at, own.reason = CHAMPION, actor, now, reason
        s.flush()  # a second champion row fails here, on the partial unique index
        s.add(AliasHistory(task=task, alias=CHAMPION, from_version=expected, to_version=version, actor=actor,
                           reason=reason, evaluation_id=evaluation_id, recorded_at=now))
        return expected

    def history(self, task: str | None = None) -> pd.DataFrame:
        stmt = sa.select(AliasHistory.__table__).order_by(AliasHistory.id)
        if task:
            stmt = stmt.where(AliasHistory.task == task)
        with self.engine.connect() as conn:
            return pd.read_sql(stmt, conn)

    # ---- evaluations -------------------------------------------------------------------
    def record_evaluation(
        self,
        *,
        task: str,
        challenger_version: str | None,
        champion_version: str | None,
        golden_set_hash: str,
        golden_rows: int,
        metrics: dict[str, dict[str, Any]],
        gates: Sequence[dict[str, Any]],
        passed: bool,
        run_id: str | None = None,
        created_by: str | None = None,
    ) -> EvaluationRecord:
        rec = Evaluation(
            evaluation_id=f"eval-{uuid4().hex[:12]}",
            task=task,
            challenger_version=challenger_version,
            champion_version=champion_version,
            golden_set_hash=golden_set_hash,
            golden_rows=golden_rows,
            metrics=json.dumps(metrics, sort_keys=True, default=str),
            gates=json.dumps(list(gates), sort_keys=True, default=str),
            passed=bool(passed),
            run_id=run_id,
            created_by=created_by or default_actor(),
            created_at=_now(),
        )
        with orm.Session(self.engine) as s, s.begin():
            s.add(rec)
            s.flush()
            out = self._eval_record(rec)
        for version, m in metrics.items():
            if version and self.get(task, version) is not None:
                self.update_metrics(task, version, {"last_evaluation_id": out.evaluation_id, **m})
        return out

    def evaluation(self, evaluation_id: str) -> EvaluationRecord | None:
        with orm.Session(self.engine) as s:
            rec = s.get(Evaluation, evaluation_id)
            return self._eval_record(rec) if rec else None

    def latest_evaluation(self, task: str, challenger_version: str | None = _UNSET) -> EvaluationRecord | None:
        with orm.Session(self.engine) as s:
            stmt = sa.select(Evaluation).where(Evaluation.task == task)
            if challenger_version is not _UNSET:
                stmt = stmt.where(Evaluation.challenger_version == challenger_version)
            rec = s.scalar(stmt.order_by(Evaluation.created_at.desc(), Evaluation.evaluation_id.desc()).limit(1))
            return self._eval_record(rec) if rec else None

    def evaluations(self, task: str | None = None) -> pd.DataFrame:
        stmt = sa.select(Evaluation.__table__).order_by(Evaluation.created_at)
        if task:
            stmt = stmt.where(Evaluation.task == task)
        with self.engine.connect() as conn:
            return pd.read_sql(stmt, conn)

    # ---- views -------------------------------------------------------------------------
    def snapshot(self) -> pd.DataFrame:
        """Every version with its current alias and the time and reason of its last alias change."""
        cols = [
            "task", "version", "alias", "provider", "model_id", "params", "prompt_hash", "training_data_hash",
            "training_rows", "created_by", "created_at", "alias_updated_by", "alias_updated_at", "alias_reason",
            "macro_f1", "accuracy", "rubric_score", "cost_per_ticket_usd", "latency_ms_per_ticket",
        ]
        rows = []
        with orm.Session(self.engine) as s:
            aliases = {(a.task, a.version): a for a in s.scalars(sa.select(ModelAlias))}
            for r in s.scalars(sa.select(ModelVersion).order_by(ModelVersion.task, ModelVersion.id)):
                a = aliases.get((r.task, r.version))
                m = json.loads(r.metrics or "{}")
                rows.append({
                    "task": r.task, "version": r.version, "alias": a.alias if a else None,
                    "provider": r.provider, "model_id": r.model_id, "params": r.params,
                    "prompt_hash": r.prompt_hash, "training_data_hash": r.training_data_hash,
                    "training_rows": r.training_rows, "created_by": r.created_by, "created_at": r.created_at,
                    "alias_updated_by": a.updated_by if a else None, "alias_updated_at": a.updated_at if a else None,
                    "alias_reason": a.reason if a else None,
                    **{k: m.get(k) for k in ("macro_f1", "accuracy", "rubric_score", "cost_per_ticket_usd",
                                             "latency_ms_per_ticket")},
                })
        return pd.DataFrame(rows, columns=cols)

    def promotions_per_week(self, task: str | None = None) -> pd.DataFrame:
        """Deployment frequency: champion changes per ISO week (week start, task, promotions)."""
        h = self.history(task)
        h = h[(h["alias"] == CHAMPION)] if len(h) else h
        if h.empty:
            return pd.DataFrame(columns=["week", "task", "promotions"])
        ts = pd.to_datetime(h["recorded_at"], utc=True, format="ISO8601")
        h = h.assign(week=(ts.dt.tz_localize(None).dt.to_period("W-SUN").dt.start_time.dt.date.astype(str)))
        return h.groupby(["week", "task"]).size().rename("promotions").reset_index()

    # ---- internals ---------------------------------------------------------------------
    @staticmethod
    def _alias_of(s: orm.Session, task: str, version: str) -> str | None:
        return s.scalar(sa.select(ModelAlias.alias).where(ModelAlias.task == task, ModelAlias.version == version))

    @staticmethod
    def _require_version(s: orm.Session, task: str, version: str) -> None:
        if s.scalar(sa.select(ModelVersion.id).where(ModelVersion.task == task, ModelVersion.version == version)) is None:
            known = s.scalars(sa.select(ModelVersion.version).where(ModelVersion.task == task)).all()
            raise RegistryError(f"unknown {task} version {version!r}; known: {', '.join(known) or 'none'}")

    @staticmethod
    def _move_alias(
        s: orm.Session, task: str, version: str, alias: str, actor: str, reason: str, evaluation_id: str | None
    ) -> None:
        """Give ``version`` ``alias``; retire the previous holder of an exclusive alias. Appends history rows."""
        now = _now()
        history: list[AliasHistory] = []
        previous_holder: str | None = None
        if alias in EXCLUSIVE_ALIASES:
            holder = s.scalar(sa.select(ModelAlias).where(ModelAlias.task == task, ModelAlias.alias == alias))
            if holder is not None and holder.version != version:
                previous_holder = holder.version
                holder.alias, holder.updated_by, holder.updated_at = RETIRED, actor, now
                holder.reason = f"replaced as {alias} by {version}: {reason}"
                history.append(AliasHistory(task=task, alias=RETIRED, from_version=None, to_version=holder.version,
                                            actor=actor, reason=holder.reason, evaluation_id=evaluation_id,
                                            recorded_at=now))
                s.flush()  # the retirement must reach the database before the new holder's row
        own = s.scalar(sa.select(ModelAlias).where(ModelAlias.task == task, ModelAlias.version == version))
        if own is None:
            s.add(ModelAlias(task=task, version=version, alias=alias, updated_by=actor, updated_at=now, reason=reason))
        else:
            own.alias, own.updated_by, own.updated_at, own.reason = alias, actor, now, reason
        s.flush()
        history.insert(0, AliasHistory(task=task, alias=alias, from_version=previous_holder, to_version=version,
                                       actor=actor, reason=reason, evaluation_id=evaluation_id, recorded_at=now))
        s.add_all(history)

    @staticmethod
    def _eval_record(rec: Evaluation) -> EvaluationRecord:
        return EvaluationRecord(
            evaluation_id=rec.evaluation_id,
            task=rec.task,
            challenger_version=rec.challenger_version,
            champion_version=rec.champion_version,
            golden_set_hash=rec.golden_set_hash,
            golden_rows=rec.golden_rows,
            metrics=json.loads(rec.metrics),
            gates=json.loads(rec.gates or "[]"),
            passed=bool(rec.passed),
            run_id=rec.run_id,
            created_by=rec.created_by,
            created_at=rec.created_at,
        )


class ModelRegistryResource(dg.ConfigurableResource):
    """The model registry in the warehouse, and the thresholds that gate a promotion.

    A challenger becomes champion only when, on the golden set, its macro-F1 is not below the
    champion's by more than ``macro_f1_tolerance``, no class recall drops by more than
    ``max_class_recall_drop`` (or below ``min_class_recall``), its draft rubric score is at least
    ``min_rubric_score`` and its cost per ticket is at most ``max_cost_per_ticket_usd``.
    """

    warehouse: dg.ResourceDependency[Warehouse]
    macro_f1_tolerance: float = Field(0.01, ge=0, le=1, description="allowed macro-F1 drop vs the champion")
    max_class_recall_drop: float = Field(0.10, ge=0, le=1, description="allowed per-class recall drop vs the champion")
    min_class_recall: float = Field(0.30, ge=0, le=1, description="no class may fall below this recall")
    min_rubric_score: float = Field(0.75, ge=0, le=1, description="mean deterministic draft rubric score")
    max_cost_per_ticket_usd: float = Field(0.01, ge=0, description="model cost per golden ticket")
    golden_fraction: float = Field(0.2, gt=0, lt=1, description="share of the labelled set held out as golden set")
    labelled_path: str = Field("", description="labelled tickets CSV; empty = the bundled sample_data file")

    def get(self) -> ModelRegistry:
        return ModelRegistry(self.warehouse.engine)

    def thresholds(self):
        from .evaluation import PromotionThresholds

        return PromotionThresholds(
            macro_f1_tolerance=self.macro_f1_tolerance,
            max_class_recall_drop=self.max_class_recall_drop,
            min_class_recall=self.min_class_recall,
            min_rubric_score=self.min_rubric_score,
            max_cost_per_ticket_usd=self.max_cost_per_ticket_usd,
        )


# ---- the model lifecycle: train -> register -> evaluate -> promote (plain functions) -------------

CLASSIFY = "classify"
LABELLED_FILE = "labelled_tickets.csv"
FEEDBACK_TABLE = "review_feedback"
FEEDBACK_COLUMNS = ("ticket_id", "subject", "body", "label", "source", "recorded_at")


def load_labelled(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The labelled tickets (``ticket_id``, ``subject``, ``body``, ``category``); default: the bundled file."""
    from pathlib import Path

    from .sources import BUNDLED_SAMPLE_DIR

    p = Path(path) if path else BUNDLED_SAMPLE_DIR / LABELLED_FILE
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    missing = [c for c in ("ticket_id", "subject", "body", "category") if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: labelled tickets lack column(s) {missing}")
    return df


def read_feedback(warehouse: Warehouse) -> pd.DataFrame:
    """Reviewed labels from the ``review_feedback`` table; an empty frame when the table does not exist."""
    if not warehouse.has_table(FEEDBACK_TABLE):
        return pd.DataFrame(columns=list(FEEDBACK_COLUMNS))
    df = warehouse.read_table(FEEDBACK_TABLE)
    missing = [c for c in ("ticket_id", "subject", "body", "label") if c not in df.columns]
    if missing:
        raise ValueError(f"warehouse table {FEEDBACK_TABLE!r} lacks column(s) {missing}")
    return df


@dataclass(frozen=True)
class TrainingOutcome:
    version: str
    created: bool  # False: this data + params were already registered; no new challenger
    alias: str | None
    training_rows: int
    feedback_rows: int
    training_data_hash: str
    params: dict[str, Any]
    fit_s: float
    reason: str


def train_and_register(
    registry: ModelRegistry,
    store: Any,
    labelled: pd.DataFrame,
    feedback: pd.DataFrame | None = None,
    *,
    alias: str | None = CHALLENGER,
    actor: str | None = None,
    reason: str | None = None,
    golden_fraction: float | None = None,
) -> TrainingOutcome:
    """Train the local classifier on labelled (minus golden) + feedback rows, save it, register it.

    ``store`` is a :class:`resources.providers.local.LocalModelStore`. The version is the
    classifier's own content version (data + params), so retraining unchanged data with unchanged
    params registers nothing new and moves no alias.
    """
    import time

    from .evaluation import GOLDEN_FRACTION, data_hash, training_frame

    frac = golden_fraction or GOLDEN_FRACTION
    rows = training_frame(labelled, feedback, fraction=frac)
    dhash = data_hash(rows["text"].tolist(), rows["label"].tolist())
    start = time.perf_counter()
    trained = store.train(rows)
    fit_s = time.perf_counter() - start
    n_feedback = int(rows["source"].str.startswith("feedback").sum())
    actor = actor or default_actor()
    params = trained.params.model_dump(mode="json") if hasattr(trained.params, "model_dump") else dict(trained.params)
    info, created = registry.register(
        task=CLASSIFY,
        version=trained.version,
        provider="local",
        model_id=getattr(trained, "model_id", None) or "local",
        params=params,
        training_data_hash=dhash,
        training_rows=len(rows),
        artifact=str(store.path_for(trained.version)),
        metrics={"training_rows": len(rows), "feedback_rows": n_feedback, "fit_s": round(fit_s, 3)},
        description=f"local classifier on {len(rows)} tickets ({n_feedback} from reviewed feedback)",
        created_by=actor,
        alias=alias,
        reason=reason or f"trained on {len(rows)} tickets ({n_feedback} reviewed); data {dhash}",
    )
    return TrainingOutcome(
        version=info.version,
        created=created,
        alias=info.alias,
        training_rows=len(rows),
        feedback_rows=n_feedback,
        training_data_hash=dhash,
        params=info.params,
        fit_s=fit_s,
        reason=(f"new version registered as {alias}" if alias else "new version registered") if created
        else f"training data and params unchanged: version {info.version} already registered ({info.alias or 'no alias'})",
    )


def ensure_champion(
    registry: ModelRegistry,
    store: Any,
    *,
    actor: str,
    labelled_path: str | None = None,
    warehouse: Warehouse | None = None,
) -> VersionInfo:
    """The classify champion; with none yet, bootstrap one: train the default model, register it, promote it.

    Safe under concurrency: parallel bootstraps train the same deterministic version, registration
    is idempotent and only one promotion can win (the others read the winner).
    """
    champ = registry.champion(CLASSIFY)
    if champ is not None:
        return champ
    outcome = train_and_register(
        registry, store, load_labelled(labelled_path), read_feedback(warehouse) if warehouse is not None else None,
        alias=None, actor=actor, reason="bootstrap: no classify champion",
    )
    try:
        registry.promote(
            CLASSIFY, outcome.version, actor=actor, expected_champion=None,
            reason="bootstrap: no classify champion existed; the default local model was trained and promoted",
        )
    except PromotionConflict:
        pass  # another run bootstrapped at the same moment; use its champion
    champ = registry.champion(CLASSIFY)
    if champ is None:  # pragma: no cover - promote() either succeeded or another promotion did
        raise RegistryError("bootstrap failed: still no classify champion")
    return champ


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    champion: str | None
    previous: str | None
    challenger: str | None
    reason: str
    evaluation_id: str | None


def promote_if_passed(
    registry: ModelRegistry, evaluation: EvaluationRecord, thresholds: Any, *, actor: str
) -> PromotionDecision:
    """Move the champion alias to the evaluated challenger only if every gate passes, re-checked here.

    The promotion is conditional on the champion still being the one the evaluation compared
    against; if another promotion happened in between, nothing changes and the reason says so.
    """
    from .evaluation import promotion_gates, refusal_reason

    task = evaluation.task
    current = registry.champion(task)
    ch = evaluation.challenger_version
    if ch is None:
        return PromotionDecision(False, current.version if current else None, None, None,
                                 "no challenger was evaluated; champion unchanged", evaluation.evaluation_id)
    if current is not None and current.version == ch:
        return PromotionDecision(False, ch, None, ch, f"{ch} is already the champion", evaluation.evaluation_id)
    gates = promotion_gates(evaluation.metrics.get(ch), evaluation.metrics.get(evaluation.champion_version or ""),
                            thresholds)
    if not all(g.passed for g in gates):
        return PromotionDecision(False, current.version if current else None, None, ch,
                                 f"gate refused {ch}: {refusal_reason(gates)}", evaluation.evaluation_id)
    summary = "; ".join(g.reason for g in gates)
    try:
        previous = registry.promote(
            task, ch, actor=actor, evaluation_id=evaluation.evaluation_id,
            expected_champion=evaluation.champion_version,
            reason=f"passed promotion gates ({evaluation.evaluation_id}): {summary}",
        )
    except PromotionConflict as exc:
        now = registry.champion(task)
        return PromotionDecision(False, now.version if now else None, None, ch, str(exc), evaluation.evaluation_id)
    return PromotionDecision(True, ch, previous, ch, f"promoted {ch} over {previous or 'none'}: {summary}",
                             evaluation.evaluation_id)


RETRIEVED_ARTICLES = 3


def evaluate_candidates(
    registry: ModelRegistry,
    store: Any,
    labelled: pd.DataFrame,
    articles: pd.DataFrame | None,
    thresholds: Any,
    *,
    actor: str,
    run_id: str | None = None,
    judge: Any = None,
    golden_fraction: float | None = None,
    task: str = CLASSIFY,
) -> tuple[EvaluationRecord, dict[str, Any]]:
    """Score the challenger and the champion on the golden set, record the evaluation and its gates.

    Returns (the recorded evaluation, {role: ModelScore}). With no challenger only the champion is
    scored (the gates then pass with "nothing to promote").
    """
    from .evaluation import GOLDEN_FRACTION, evaluate_provider, golden_hash, promotion_gates, split_golden

    champion, challenger = registry.champion(task), registry.challenger(task)
    if champion is None and challenger is None:
        raise RegistryError(f"no {task} model is registered yet: materialize triage_classifier first")
    _, golden = split_golden(labelled, golden_fraction or GOLDEN_FRACTION)
    retrieved = None
    if articles is not None and len(articles):
        from .retrieval import KnowledgeBaseIndex

        texts = [f"{s}\n{b}" for s, b in zip(golden["subject"], golden["body"])]
        retrieved = KnowledgeBaseIndex.from_articles(articles).search(texts, k=RETRIEVED_ARTICLES)
    scores: dict[str, Any] = {}
    for role, info in (("challenger", challenger), ("champion", champion)):
        if info is not None:
            scores[role] = evaluate_provider(store.provider(version=info.version), golden, retrieved,
                                             version=info.version, judge=judge)
    gates = promotion_gates(
        scores["challenger"].as_metrics() if "challenger" in scores else None,
        scores["champion"].as_metrics() if "champion" in scores else None,
        thresholds,
    )
    record = registry.record_evaluation(
        task=task,
        challenger_version=challenger.version if challenger else None,
        champion_version=champion.version if champion else None,
        golden_set_hash=golden_hash(golden),
        golden_rows=len(golden),
        metrics={s.version: s.as_metrics() for s in scores.values()},
        gates=[g.as_dict() for g in gates],
        passed=all(g.passed for g in gates),
        run_id=run_id,
        created_by=actor,
    )
    return record, scores
