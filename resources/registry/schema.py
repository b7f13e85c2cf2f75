"""The registry's tables (SQLAlchemy 2 ORM), keyed by workflow family, and :func:`ensure_schema`.

- ``model_versions``: one row per (family, task, version): provider, model id, params, prompt
  template and its hash, training-data hash and size, artifact, metrics, the training report,
  who/when.
- ``model_aliases``: the current alias of each version (``champion`` / ``challenger`` /
  ``retired``). A partial unique index on (family, task, alias) for champion and challenger lets
  the *database* refuse a second champion (or challenger) of a task, whatever the code does.
- ``model_alias_history``: every alias change (who, when, from, to, why, which evaluation);
  database triggers refuse UPDATE and DELETE on it.
- ``prompt_versions`` / ``prompt_aliases`` / ``prompt_alias_history``: the LLM prompt templates of
  each (family, task), keyed by the hash of their text, with the same alias guarantees (their own
  partial unique index, an append-only history); the versions table is append-only too.
- ``model_evaluations``: every golden-set evaluation (metrics of challenger and champion, the
  gate results), referenced by the history row of a promotion.

Tables are created when missing and columns a newer release adds are added; nothing is dropped.
Tables of the release before families (no ``family`` column) are refused with a message that says
how to move on, since their rows cannot be attributed to a family.
"""

import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from resources.warehouse import make_append_only
from resources.warehouse_url import mask_url

from .records import ALIASES, EXCLUSIVE_ALIASES, RegistryError

NAME = 80  # width of family and task names (lower_snake_case identifiers)
VERSION = 120


class Base(orm.DeclarativeBase):
    metadata = sa.MetaData()


def _one_row_per_version(table: str) -> sa.UniqueConstraint:
    return sa.UniqueConstraint("family", "task", "version", name=f"uq_{table}_family_task_version")


class VersionKey:
    """The columns a per-version table starts with: its id and (family, task, version), unique."""

    @orm.declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (_one_row_per_version(cls.__tablename__),)

    # sort_order: these stay the first columns, before those of the table's own class
    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True, autoincrement=True, sort_order=-4)
    family: orm.Mapped[str] = orm.mapped_column(sa.String(NAME), nullable=False, sort_order=-3)
    task: orm.Mapped[str] = orm.mapped_column(sa.String(NAME), nullable=False, sort_order=-2)
    version: orm.Mapped[str] = orm.mapped_column(sa.String(VERSION), nullable=False, sort_order=-1)


class ModelVersion(VersionKey, Base):
    __tablename__ = "model_versions"

    provider: orm.Mapped[str] = orm.mapped_column(sa.String(80), nullable=False)
    model_id: orm.Mapped[str] = orm.mapped_column(sa.String(200), nullable=False)
    params: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False, default="{}")
    prompt_template: orm.Mapped[str | None] = orm.mapped_column(sa.Text, nullable=True)
    prompt_hash: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    training_data_hash: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    training_rows: orm.Mapped[int | None] = orm.mapped_column(sa.Integer, nullable=True)
    artifact: orm.Mapped[str | None] = orm.mapped_column(sa.Text, nullable=True)
    metrics: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False, default="{}")
    training_report: orm.Mapped[str | None] = orm.mapped_column(sa.Text, nullable=True)
    description: orm.Mapped[str | None] = orm.mapped_column(sa.Text, nullable=True)
    created_by: orm.Mapped[str] = orm.mapped_column(sa.String(200), nullable=False)
    created_at: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)


class AliasColumns(VersionKey):
    """The current alias of each version; the constraint and index names follow the table's name."""

    @orm.declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        name = cls.__tablename__
        return (
            _one_row_per_version(name),
            sa.CheckConstraint(f"alias IN {ALIASES!r}", name=f"ck_{name}_alias"),
            # the guarantee: at most one champion and one challenger per task, enforced by the database
            sa.Index(
                f"uq_{name}_one_per_family_task",
                "family",
                "task",
                "alias",
                unique=True,
                sqlite_where=sa.text(f"alias IN {EXCLUSIVE_ALIASES!r}"),
                postgresql_where=sa.text(f"alias IN {EXCLUSIVE_ALIASES!r}"),
            ),
        )

    alias: orm.Mapped[str] = orm.mapped_column(sa.String(20), nullable=False)
    updated_by: orm.Mapped[str] = orm.mapped_column(sa.String(200), nullable=False)
    updated_at: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)
    reason: orm.Mapped[str | None] = orm.mapped_column(sa.Text, nullable=True)


class AliasHistoryColumns:
    """Every alias change (append-only: :func:`ensure_schema` adds the triggers)."""

    @orm.declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (sa.Index(f"ix_{cls.__tablename__}_family_task", "family", "task"),)

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    family: orm.Mapped[str] = orm.mapped_column(sa.String(NAME), nullable=False)
    task: orm.Mapped[str] = orm.mapped_column(sa.String(NAME), nullable=False)
    alias: orm.Mapped[str] = orm.mapped_column(sa.String(20), nullable=False)
    from_version: orm.Mapped[str | None] = orm.mapped_column(sa.String(VERSION), nullable=True)
    to_version: orm.Mapped[str | None] = orm.mapped_column(sa.String(VERSION), nullable=True)
    actor: orm.Mapped[str] = orm.mapped_column(sa.String(200), nullable=False)
    reason: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False)
    evaluation_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    recorded_at: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)


class ModelAlias(AliasColumns, Base):
    __tablename__ = "model_aliases"


class AliasHistory(AliasHistoryColumns, Base):
    __tablename__ = "model_alias_history"


class Evaluation(Base):
    __tablename__ = "model_evaluations"
    __table_args__ = (sa.Index("ix_model_evaluations_family_task", "family", "task"),)

    evaluation_id: orm.Mapped[str] = orm.mapped_column(sa.String(64), primary_key=True)
    family: orm.Mapped[str] = orm.mapped_column(sa.String(NAME), nullable=False)
    task: orm.Mapped[str] = orm.mapped_column(sa.String(NAME), nullable=False)
    challenger_version: orm.Mapped[str | None] = orm.mapped_column(sa.String(VERSION), nullable=True)
    champion_version: orm.Mapped[str | None] = orm.mapped_column(sa.String(VERSION), nullable=True)
    golden_set_hash: orm.Mapped[str] = orm.mapped_column(sa.String(64), nullable=False)
    golden_rows: orm.Mapped[int] = orm.mapped_column(sa.Integer, nullable=False)
    metrics: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False)  # {version: {metric: value}}
    gates: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False, default="[]")
    passed: orm.Mapped[bool] = orm.mapped_column(sa.Boolean, nullable=False)
    run_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    created_by: orm.Mapped[str] = orm.mapped_column(sa.String(200), nullable=False)
    created_at: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)


# ---- prompts: the same alias guarantees, in tables of their own (a model champion and a prompt
# champion of one task are two different things and must never collide in one unique index)
class PromptText(VersionKey, Base):
    __tablename__ = "prompt_versions"

    text: orm.Mapped[str] = orm.mapped_column(sa.Text, nullable=False)
    created_by: orm.Mapped[str] = orm.mapped_column(sa.String(200), nullable=False)
    created_at: orm.Mapped[str] = orm.mapped_column(sa.String(40), nullable=False)


class PromptAlias(AliasColumns, Base):
    __tablename__ = "prompt_aliases"


class PromptAliasHistory(AliasHistoryColumns, Base):
    __tablename__ = "prompt_alias_history"


HISTORY_TABLE = AliasHistory.__tablename__
PROMPT_HISTORY_TABLE = PromptAliasHistory.__tablename__
PROMPT_TABLE = PromptText.__tablename__
TABLES = tuple(t.name for t in Base.metadata.sorted_tables)
_SCHEMA_READY: set[str] = set()
_SCHEMA_LOCK = threading.Lock()


def ensure_schema(engine: sa.Engine) -> None:
    """Create missing registry tables and add missing (nullable) columns; never drops anything.

    Raises :class:`RegistryError` when the database holds registry tables of the release before
    families: those rows cannot be keyed by family, so the user chooses what to do with them.
    """
    key = engine.url.render_as_string(hide_password=False)
    if key in _SCHEMA_READY:
        return
    with _SCHEMA_LOCK:
        if key in _SCHEMA_READY:
            return
        with engine.begin() as conn:
            insp = sa.inspect(conn)
            old = [t for t in TABLES if insp.has_table(t) and "family" not in _columns(insp, t)]
            if old:
                raise RegistryError(_old_release_message(engine, old))
            Base.metadata.create_all(conn, checkfirst=True)
            insp = sa.inspect(conn)
            for table in Base.metadata.sorted_tables:
                existing = _columns(insp, table.name)
                for col in table.columns:
                    if col.name not in existing:
                        col_type = col.type.compile(dialect=conn.dialect)
                        conn.execute(sa.text(f'ALTER TABLE "{table.name}" ADD COLUMN "{col.name}" {col_type}'))
            make_append_only(conn, HISTORY_TABLE)
            make_append_only(conn, PROMPT_HISTORY_TABLE)
            make_append_only(conn, PROMPT_TABLE)  # a prompt version's text never changes
        _SCHEMA_READY.add(key)


def _columns(insp: sa.Inspector, table: str) -> set[str]:
    return {c["name"] for c in insp.get_columns(table)}


def _old_release_message(engine: sa.Engine, tables: list[str]) -> str:
    where = mask_url(engine.url.render_as_string(hide_password=False))
    if engine.url.get_backend_name() == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        fix = (f"move the old file away (e.g. `mv {engine.url.database} {engine.url.database}.old`) "
               "or point WAREHOUSE_URL at a new database")
    else:
        fix = "point WAREHOUSE_URL at a new database, or rename the old tables (e.g. to model_versions_old)"
    return (
        f"the warehouse {where} holds model registry tables from the release before workflow families "
        f"({', '.join(tables)} without a 'family' column); this release keys every model version by "
        f"family and cannot use them. To continue, {fix}; then materialize the models again."
    )
