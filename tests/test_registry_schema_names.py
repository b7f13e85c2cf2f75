"""The registry's tables keep their names, columns, constraints and indexes: databases made by earlier releases
are used as they are (the alias and history tables of models and prompts share their column definitions)."""

import sqlalchemy as sa

from resources.registry.schema import ensure_schema

ALIAS_COLUMNS = ["id", "family", "task", "version", "alias", "updated_by", "updated_at", "reason"]
HISTORY_COLUMNS = ["id", "family", "task", "alias", "from_version", "to_version", "actor", "reason",
                   "evaluation_id", "recorded_at"]


def _schema(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    ensure_schema(engine)
    return engine, sa.inspect(engine)


def test_alias_and_history_tables_keep_their_columns_and_constraint_names(tmp_path):
    engine, insp = _schema(tmp_path)
    for prefix in ("model", "prompt"):
        aliases, history = f"{prefix}_aliases", f"{prefix}_alias_history"
        assert [c["name"] for c in insp.get_columns(aliases)] == ALIAS_COLUMNS
        assert [c["name"] for c in insp.get_columns(history)] == HISTORY_COLUMNS
        assert [u["name"] for u in insp.get_unique_constraints(aliases)] == [f"uq_{aliases}_family_task_version"]
        assert [c["name"] for c in insp.get_check_constraints(aliases)] == [f"ck_{aliases}_alias"]
        assert {i["name"] for i in insp.get_indexes(history)} == {f"ix_{history}_family_task"}
        with engine.connect() as conn:
            index_sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"),
                                     {"n": f"uq_{aliases}_one_per_family_task"}).scalar_one()
        assert "UNIQUE" in index_sql and "WHERE alias IN ('champion', 'challenger')" in index_sql
    for versions in ("model_versions", "prompt_versions"):
        assert [c["name"] for c in insp.get_columns(versions)][:4] == ["id", "family", "task", "version"]
        assert [u["name"] for u in insp.get_unique_constraints(versions)] == [f"uq_{versions}_family_task_version"]
    assert [c["name"] for c in insp.get_columns("prompt_versions")] == ["id", "family", "task", "version", "text",
                                                                         "created_by", "created_at"]
    engine.dispose()
