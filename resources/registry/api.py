"""The registry's plain API (no Dagster): versions, aliases, promotions, rollbacks and evaluations.

Every operation names the family and the task: one registry serves every family of a
deployment, and two families with a task of the same name never see each other's versions.
"""

import json
from typing import Any, Sequence
from uuid import uuid4

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import orm

from resources.providers.base import content_hash

from .aliases import UNSET as _UNSET
from .aliases import AliasBook
from .aliases import of as _of
from .records import (
    ALIASES,
    CHALLENGER,
    CHAMPION,
    EvaluationRecord,
    PromotionConflict,
    RegistryError,
    VersionInfo,
    default_actor,
    now_iso,
)
from .schema import AliasHistory, Evaluation, ModelAlias, ModelVersion, ensure_schema

# attempts of a registration whose alias move lost a race to a concurrent one (PostgreSQL)
_REGISTER_ATTEMPTS = 3
SNAPSHOT_METRICS = ("macro_f1", "accuracy", "rubric_score", "cost_per_item_usd", "latency_ms_per_item",
                    "last_evaluation_id")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _filtered(stmt: Any, model: Any, family: str | None, task: str | None) -> Any:
    if family:
        stmt = stmt.where(model.family == family)
    if task:
        stmt = stmt.where(model.task == task)
    return stmt


class ModelRegistry:
    """Plain API over the registry tables of one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.aliases = AliasBook(ModelAlias, AliasHistory)
        ensure_schema(engine)

    @classmethod
    def for_warehouse(cls, warehouse: Any) -> "ModelRegistry":
        """The registry in a :class:`resources.warehouse.Warehouse`."""
        return cls(warehouse.engine)

    # ---- versions ----------------------------------------------------------------------
    def register(
        self, *, family: str, task: str, version: str, provider: str, model_id: str,
        params: dict[str, Any] | None = None, prompt_template: str | None = None,
        training_data_hash: str | None = None, training_rows: int | None = None, artifact: str | None = None,
        metrics: dict[str, Any] | None = None, training_report: dict[str, Any] | None = None,
        description: str | None = None, created_by: str | None = None, alias: str | None = None,
        reason: str | None = None,
    ) -> tuple[VersionInfo, bool]:
        """Add a version; idempotent: an existing (family, task, version) comes back unchanged, ``created=False``.

        With ``alias`` (e.g. ``"challenger"``) a newly created version takes that alias (the previous
        holder is retired), recorded in the history with ``reason``.
        """
        if alias is not None and alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; one of {', '.join(ALIASES)}")
        actor = created_by or default_actor()
        for attempt in range(_REGISTER_ATTEMPTS):
            try:
                with orm.Session(self.engine) as s, s.begin():
                    existing = self._version_row(s, family, task, version)
                    if existing is not None:
                        return VersionInfo.of(existing, self.aliases.alias_of(s, family, task, version)), False
                    row = ModelVersion(
                        family=family, task=task, version=version, provider=provider, model_id=model_id,
                        params=_dumps(params or {}), prompt_template=prompt_template,
                        prompt_hash=content_hash(prompt_template) if prompt_template else None,
                        training_data_hash=training_data_hash, training_rows=training_rows, artifact=artifact,
                        metrics=_dumps(metrics or {}),
                        training_report=_dumps(training_report) if training_report is not None else None,
                        description=description, created_by=actor, created_at=now_iso(),
                    )
                    s.add(row)
                    s.flush()
                    if alias is not None:
                        self.aliases.move(s, family, task, version, alias, actor, reason or f"registered as {alias}")
                    return VersionInfo.of(row, alias), True
            except sa.exc.IntegrityError:
                # a concurrent registration of the same version (theirs stands) or a concurrent
                # alias move (retry against the new holder)
                got = self.get(family, task, version)
                if got is not None:
                    return got, False
                if attempt == _REGISTER_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, family: str, task: str, version: str) -> VersionInfo | None:
        with orm.Session(self.engine) as s:
            row = self._version_row(s, family, task, version)
            return VersionInfo.of(row, self.aliases.alias_of(s, family, task, version)) if row else None

    def update_metrics(self, family: str, task: str, version: str, metrics: dict[str, Any]) -> None:
        """Merge ``metrics`` into the version's stored metrics (the latest evaluation of it)."""
        with orm.Session(self.engine) as s, s.begin():
            self._merge_metrics(s, family, task, version, metrics)

    def versions(self, family: str | None = None, task: str | None = None) -> list[VersionInfo]:
        with orm.Session(self.engine) as s:
            stmt = _filtered(sa.select(ModelVersion), ModelVersion, family, task)
            stmt = stmt.order_by(ModelVersion.family, ModelVersion.task, ModelVersion.id)
            aliases = {(a.family, a.task, a.version): a.alias
                       for a in s.scalars(_filtered(sa.select(ModelAlias), ModelAlias, family, task))}
            return [VersionInfo.of(r, aliases.get((r.family, r.task, r.version))) for r in s.scalars(stmt)]

    # ---- aliases -----------------------------------------------------------------------
    def alias(self, family: str, task: str, alias: str) -> VersionInfo | None:
        """The version holding ``alias`` (champion / challenger) for the task, or None."""
        with orm.Session(self.engine) as s:
            a = s.scalar(sa.select(ModelAlias).where(*_of(ModelAlias, family, task), ModelAlias.alias == alias))
            row = self._version_row(s, family, task, a.version) if a is not None else None
            return VersionInfo.of(row, alias) if row else None

    def champion(self, family: str, task: str) -> VersionInfo | None:
        return self.alias(family, task, CHAMPION)

    def challenger(self, family: str, task: str) -> VersionInfo | None:
        return self.alias(family, task, CHALLENGER)

    def set_alias(self, family: str, task: str, version: str, alias: str, *, actor: str | None = None,
                  reason: str, evaluation_id: str | None = None) -> None:
        """Give ``version`` the alias (the previous holder of an exclusive alias is retired)."""
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; one of {', '.join(ALIASES)}")
        if alias == CHAMPION:  # the champion only moves by compare-and-set
            self.promote(family, task, version, actor=actor, reason=reason, evaluation_id=evaluation_id)
            return
        with orm.Session(self.engine) as s, s.begin():
            self._require_version(s, family, task, version)
            self.aliases.move(s, family, task, version, alias, actor or default_actor(), reason, evaluation_id)

    def promote(self, family: str, task: str, version: str, *, actor: str | None = None, reason: str,
                evaluation_id: str | None = None, expected_champion: str | None = _UNSET) -> str | None:
        """Make ``version`` the champion; the old champion is retired. Returns the old champion.

        ``expected_champion``: the champion the decision was based on (the one the evaluation
        compared against; ``None`` for "there was none"). If the champion is another version by
        the time the promotion commits, :class:`PromotionConflict` is raised and nothing changes
        (a compare-and-set in the database: :meth:`.aliases.AliasBook.swap_champion`).
        """
        actor = actor or default_actor()
        try:
            with orm.Session(self.engine) as s, s.begin():
                self._require_version(s, family, task, version)
                return self.aliases.swap_champion(s, family, task, version, actor, reason, evaluation_id,
                                                  expected_champion)
        except sa.exc.IntegrityError as exc:
            raise PromotionConflict(
                f"{family}.{task}: another promotion committed first; {version} was not made champion"
            ) from exc

    def rollback(self, family: str, task: str, *, to_version: str | None = None, actor: str | None = None,
                 reason: str | None = None) -> tuple[str | None, str]:
        """Restore the previous champion (or ``to_version``); returns (old champion, new champion).

        The history keeps every row; the rollback is one more.
        """
        return self.aliases.rollback(self.engine, family, task, to_version, actor or default_actor(), reason,
                                     require=lambda s, target: self._require_version(s, family, task, target))

    def history(self, family: str | None = None, task: str | None = None) -> pd.DataFrame:
        """Every alias change, oldest first."""
        stmt = _filtered(sa.select(AliasHistory.__table__), AliasHistory, family, task).order_by(AliasHistory.id)
        with self.engine.connect() as conn:
            return pd.read_sql(stmt, conn)

    # ---- evaluations -------------------------------------------------------------------
    def record_evaluation(
        self, *, family: str, task: str, challenger_version: str | None, champion_version: str | None,
        golden_set_hash: str, golden_rows: int, metrics: dict[str, dict[str, Any]], gates: Sequence[dict[str, Any]],
        passed: bool, run_id: str | None = None, created_by: str | None = None,
    ) -> EvaluationRecord:
        """Store an evaluation; each evaluated version's metrics become its latest metrics."""
        rec = Evaluation(
            evaluation_id=f"eval-{uuid4().hex[:12]}", family=family, task=task,
            challenger_version=challenger_version, champion_version=champion_version,
            golden_set_hash=golden_set_hash, golden_rows=golden_rows, metrics=_dumps(metrics),
            gates=_dumps(list(gates)), passed=bool(passed), run_id=run_id,
            created_by=created_by or default_actor(), created_at=now_iso(),
        )
        with orm.Session(self.engine) as s, s.begin():
            s.add(rec)
            s.flush()
            for version, m in metrics.items():
                if version and self._version_row(s, family, task, version) is not None:
                    self._merge_metrics(s, family, task, version, {"last_evaluation_id": rec.evaluation_id, **m})
            return EvaluationRecord.of(rec)

    def evaluation(self, evaluation_id: str) -> EvaluationRecord | None:
        with orm.Session(self.engine) as s:
            rec = s.get(Evaluation, evaluation_id)
            return EvaluationRecord.of(rec) if rec else None

    def latest_evaluation(self, family: str, task: str,
                          challenger_version: str | None = _UNSET) -> EvaluationRecord | None:
        """The newest evaluation of the task (of that challenger, when given)."""
        with orm.Session(self.engine) as s:
            stmt = sa.select(Evaluation).where(*_of(Evaluation, family, task))
            if challenger_version is not _UNSET:
                stmt = stmt.where(Evaluation.challenger_version == challenger_version)
            rec = s.scalar(stmt.order_by(Evaluation.created_at.desc(), Evaluation.evaluation_id.desc()).limit(1))
            return EvaluationRecord.of(rec) if rec else None

    def evaluations(self, family: str | None = None, task: str | None = None) -> pd.DataFrame:
        stmt = _filtered(sa.select(Evaluation.__table__), Evaluation, family, task).order_by(Evaluation.created_at)
        with self.engine.connect() as conn:
            return pd.read_sql(stmt, conn)

    # ---- views -------------------------------------------------------------------------
    def snapshot(self, family: str | None = None, task: str | None = None) -> pd.DataFrame:
        """Every version with its current alias, its last alias change and its latest golden-set metrics."""
        cols = ["family", "task", "version", "alias", "provider", "model_id", "params", "prompt_hash",
                "training_data_hash", "training_rows", "created_by", "created_at", "alias_updated_by",
                "alias_updated_at", "alias_reason", *SNAPSHOT_METRICS]
        rows = []
        with orm.Session(self.engine) as s:
            aliases = {(a.family, a.task, a.version): a
                       for a in s.scalars(_filtered(sa.select(ModelAlias), ModelAlias, family, task))}
            stmt = _filtered(sa.select(ModelVersion), ModelVersion, family, task)
            for r in s.scalars(stmt.order_by(ModelVersion.family, ModelVersion.task, ModelVersion.id)):
                a = aliases.get((r.family, r.task, r.version))
                m = json.loads(r.metrics or "{}")
                rows.append({
                    "family": r.family, "task": r.task, "version": r.version, "alias": a.alias if a else None,
                    "provider": r.provider, "model_id": r.model_id, "params": r.params, "prompt_hash": r.prompt_hash,
                    "training_data_hash": r.training_data_hash, "training_rows": r.training_rows,
                    "created_by": r.created_by, "created_at": r.created_at,
                    "alias_updated_by": a.updated_by if a else None, "alias_updated_at": a.updated_at if a else None,
                    "alias_reason": a.reason if a else None, **{k: m.get(k) for k in SNAPSHOT_METRICS},
                })
        return pd.DataFrame(rows, columns=cols)

    def promotions_per_week(self, family: str | None = None, task: str | None = None) -> pd.DataFrame:
        """Deployment frequency: champion changes per ISO week (week start, family, task, promotions)."""
        h = self.history(family, task)
        h = h[h["alias"] == CHAMPION] if len(h) else h
        if h.empty:
            return pd.DataFrame(columns=["week", "family", "task", "promotions"])
        ts = pd.to_datetime(h["recorded_at"], utc=True, format="ISO8601")
        h = h.assign(week=ts.dt.tz_localize(None).dt.to_period("W-SUN").dt.start_time.dt.date.astype(str))
        return h.groupby(["week", "family", "task"]).size().rename("promotions").reset_index()

    # ---- internals ---------------------------------------------------------------------
    @staticmethod
    def _version_row(s: orm.Session, family: str, task: str, version: str) -> ModelVersion | None:
        stmt = sa.select(ModelVersion).where(*_of(ModelVersion, family, task), ModelVersion.version == version)
        return s.scalar(stmt)

    def _require_version(self, s: orm.Session, family: str, task: str, version: str) -> None:
        if self._version_row(s, family, task, version) is None:
            known = s.scalars(sa.select(ModelVersion.version).where(*_of(ModelVersion, family, task))).all()
            raise RegistryError(f"unknown {family}.{task} version {version!r}; known: {', '.join(known) or 'none'}")

    def _merge_metrics(self, s: orm.Session, family: str, task: str, version: str, metrics: dict[str, Any]) -> None:
        row = self._version_row(s, family, task, version)
        if row is None:
            raise RegistryError(f"unknown {family}.{task} version {version!r}")
        row.metrics = _dumps({**json.loads(row.metrics or "{}"), **metrics})
